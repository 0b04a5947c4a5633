"""Run journals, and the lock that keeps two mutating runs off one inventory.

A journal is an append-only JSON-lines file, one event per line, each line fsync'd before the
action it announces. A SIGKILL at any moment therefore leaves a readable file: at worst a last,
partial line, which `load_run` ignores. The state of a run (which steps are done, which were
interrupted, what each operation found before changing it) is recomputed by folding the events.

Layout under the state folder:
    runs/<run-id>/journal.jsonl   the events
    runs/<run-id>/run.log         every command executed or simulated, redacted
    runs/<run-id>/blobs/          file contents captured or written (root only)
The lock lives outside it, machine-wide (paths.DEFAULT_LOCK_DIR/<inventory name>.lock).
"""

from __future__ import annotations

import dataclasses
import getpass
import hashlib
import json
import os
import re
import secrets as _random
import socket
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import LockHeld, MigrateError
from .secrets import RedactionError, redact_obj


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + _random.token_hex(3)


def operator() -> str:
    return os.environ.get("SUDO_USER") or getpass.getuser()


class BlobStore:
    """File contents captured or written by a run, by SHA-256, readable by root only.

    Kept beside the journal so that a rollback from a later process can restore a replaced file,
    while the journal itself stays small and free of whatever those files contain.
    """

    def __init__(self, folder: Path):
        self.folder = folder

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        target = self.folder / digest
        if not target.exists():
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = self.folder / f".{digest}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, target)
        return digest

    def get(self, digest: str) -> bytes:
        try:
            data = (self.folder / digest).read_bytes()
        except FileNotFoundError:
            raise MigrateError(f"content {digest[:12]} is missing from {self.folder}") from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise MigrateError(f"content {digest[:12]} in {self.folder} is corrupt")
        return data


class Journal:
    """Appends events to one run's journal, durably."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.path = run_dir / "journal.jsonl"
        self.blobs = BlobStore(run_dir / "blobs")
        run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        # A crash can leave a partial last line; start ours on a fresh line.
        if self.path.stat().st_size and not self.path.read_bytes().endswith(b"\n"):
            os.write(self._fd, b"\n")

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    def append(self, event: str, **data: Any) -> None:
        """Write one event. Its data is converted and redacted by `redact_obj`, keys included, so
        nothing reaches json.dumps that redaction has not seen."""
        try:
            record = {"event": event, "at": now(), **redact_obj(data)}
        except RedactionError as exc:
            raise MigrateError(f"{self.path}: cannot journal the {event} event: {exc}; "
                               "this is a defect of the step that produced the data") from None
        line = json.dumps(record, ensure_ascii=False, sort_keys=False) + "\n"
        os.write(self._fd, line.encode("utf-8"))
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass
class OpRecord:
    index: int
    op: dict
    pre_state: Any = None
    started: bool = False
    ended: bool = False
    ok: bool | None = None
    error: str = ""
    rolled_back: bool = False


@dataclass
class StepRecord:
    index: int
    ref: str
    id: str
    params: dict
    title: str = ""
    status: str = "pending"  # pending, running, done, failed, verify_failed, rolled_back
    ops: list[OpRecord] = field(default_factory=list)
    planned: bool = False
    started_at: str = ""
    ended_at: str = ""
    verification: dict | None = None
    error: str = ""

    @property
    def applied_ops(self) -> list[OpRecord]:
        """Operations that may have changed something and are not yet undone."""
        return [o for o in self.ops if o.started and not o.rolled_back]


@dataclass
class RunState:
    run_id: str
    path: Path
    header: dict
    steps: list[StepRecord]
    status: str = "running"  # running (or killed), interrupted, done, verify_failed, rolling_back, rolled_back, ...
    ended_at: str = ""
    exit_code: int | None = None
    events: int = 0
    truncated: bool = False

    @property
    def dry_run(self) -> bool:
        return bool(self.header.get("dry_run"))

    @property
    def blobs(self) -> BlobStore:
        return BlobStore(self.path.parent / "blobs")

    @property
    def inventory(self) -> str:
        return self.header.get("inventory", "")


def load_run(run_dir: Path) -> RunState:
    """Fold a journal's events into the run's state."""
    path = run_dir / "journal.jsonl"
    if not path.exists():
        raise MigrateError(f"no journal for run {run_dir.name} in {run_dir.parent}")
    events = []
    truncated = False
    for line in path.read_bytes().split(b"\n"):
        if not line.strip():
            continue
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            truncated = True  # a line cut by a crash: the action it announced never started
    if not events or events[0]["event"] != "run_start":
        raise MigrateError(f"journal {path} does not start with run_start")
    header = events[0]
    steps = [StepRecord(i, s["ref"], s["id"], s.get("params", {}), s.get("title", ""))
             for i, s in enumerate(header["steps"])]
    state = RunState(header["run_id"], path, header, steps, events=len(events), truncated=truncated)
    for ev in events[1:]:
        kind = ev["event"]
        step = steps[ev["step"]] if "step" in ev else None
        if kind == "step_start":
            step.status, step.started_at = "running", ev["at"]
        elif kind == "step_planned":
            step.ops = [OpRecord(i, op) for i, op in enumerate(ev["ops"])]
            step.planned = True
        elif kind == "op_start":
            rec = step.ops[ev["op"]]
            rec.started, rec.pre_state, rec.rolled_back = True, ev.get("pre_state"), False
            rec.ended, rec.ok = False, None
        elif kind == "op_end":
            rec = step.ops[ev["op"]]
            rec.ended, rec.ok, rec.error = True, ev["ok"], ev.get("error", "")
        elif kind == "op_rolled_back":
            step.ops[ev["op"]].rolled_back = True
        elif kind == "step_verified":
            step.verification = {"ok": ev["ok"], "checks": ev.get("checks", [])}
        elif kind == "step_end":
            step.status, step.ended_at, step.error = ev["status"], ev["at"], ev.get("error", "")
        elif kind == "step_replan":
            step.ops, step.planned, step.status = [], False, "pending"
        elif kind == "run_resumed":
            state.status, state.ended_at, state.exit_code = "running", "", None
        elif kind == "rollback_start":
            # Until its run_end, a rollback is under way: a kill leaves it for a rollback to finish.
            state.status, state.ended_at, state.exit_code = "rolling_back", "", None
        elif kind == "run_end":
            state.status, state.ended_at, state.exit_code = ev["status"], ev["at"], ev.get("exit_code")
    return state


class StateDir:
    """The folder holding journals, and where the machine-wide locks are."""

    def __init__(self, root: Path, lock_dir: Path | None = None):
        from .paths import DEFAULT_LOCK_DIR

        self.root = Path(root)
        self.lock_dir = Path(lock_dir) if lock_dir is not None else DEFAULT_LOCK_DIR

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def run_dir(self, run_id: str) -> Path:
        if not run_id or "/" in run_id or run_id.startswith("."):
            raise MigrateError(f"invalid run id {run_id!r}")
        return self.runs / run_id

    def new_journal(self) -> Journal:
        return Journal(self.run_dir(new_run_id()))

    def open_journal(self, run_id: str) -> Journal:
        run_dir = self.run_dir(run_id)
        if not (run_dir / "journal.jsonl").exists():
            raise MigrateError(f"no run {run_id} in {self.runs}")
        return Journal(run_dir)

    def list_runs(self) -> list[RunState]:
        if not self.runs.is_dir():
            return []
        states = []
        for run_dir in sorted(self.runs.iterdir()):
            try:
                states.append(load_run(run_dir))
            except (MigrateError, KeyError, IndexError, json.JSONDecodeError):
                continue
        return states

    def find_run(self, run_id: str) -> RunState:
        """A run by id or by a unique prefix; `last` is the newest run."""
        if run_id == "last":
            runs = [r for r in self.list_runs() if not r.dry_run]
            if not runs:
                raise MigrateError(f"no runs in {self.runs}")
            return runs[-1]
        exact = self.run_dir(run_id)
        if exact.exists():
            return load_run(exact)
        matches = [p for p in self.runs.glob(f"{run_id}*")] if self.runs.is_dir() else []
        if len(matches) == 1:
            return load_run(matches[0])
        if not matches:
            raise MigrateError(f"no run {run_id} in {self.runs} (see `invoke runs.list`)")
        raise MigrateError(f"run id {run_id} is ambiguous: {', '.join(p.name for p in matches)}")

    def lock(self, inventory, run_id: str, reason: str = "") -> "InventoryLock":
        return InventoryLock(self.lock_dir, inventory, run_id, reason)


# Process ids are positive C ints: anything else in a lock file names no process.
_PID_LIMIT = 2 ** 31


@dataclass
class LockInfo:
    run_id: str
    operator: str
    since: str
    pid: int
    hostname: str
    inventory: str
    reason: str = ""
    # Set when the lock file cannot be read as a run writes it: then no holder can be named.
    problem: str = ""

    @classmethod
    def parse(cls, data: bytes, path: Path) -> "LockInfo":
        """What a lock file says, checked field by field; an odd file gives an unreadable lock."""
        try:
            fields = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return cls.unreadable(path, "not the JSON a run writes")
        if not isinstance(fields, dict):
            return cls.unreadable(path, "not a JSON object")
        names = {f.name for f in dataclasses.fields(cls)} - {"problem"}
        missing, unknown = names - {"reason"} - set(fields), set(fields) - names
        if missing or unknown:
            return cls.unreadable(path, "; ".join(
                ([f"missing {', '.join(sorted(missing))}"] if missing else [])
                + ([f"unknown {', '.join(sorted(unknown))}"] if unknown else [])))
        pid = fields["pid"]
        if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid < _PID_LIMIT:
            return cls.unreadable(path, f"pid {pid!r} is not a process id")
        odd = sorted(name for name in names - {"pid"} if not isinstance(fields.get(name, ""), str))
        if odd:
            return cls.unreadable(path, f"{', '.join(odd)} not text")
        return cls(**fields)

    @classmethod
    def unreadable(cls, path: Path, problem: str) -> "LockInfo":
        return cls("?", "?", "?", 0, socket.gethostname(), "", problem=f"{path}: {problem}")

    def to_json(self) -> bytes:
        return json.dumps({k: v for k, v in dataclasses.asdict(self).items() if k != "problem"}).encode()

    def holder_alive(self) -> bool:
        if self.problem:
            return False  # no process can be named as its holder
        if self.hostname != socket.gethostname():
            return True  # cannot tell from here: assume alive
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def describe(self) -> str:
        if self.problem:
            return f"an unreadable lock file ({self.problem}), which names no run"
        return (f"run {self.run_id} by {self.operator} since {self.since} "
                f"(pid {self.pid} on {self.hostname}"
                + (", reason: " + self.reason if self.reason else "") + ")")


class InventoryLock:
    """An exclusive lock per inventory name, created with O_EXCL so two runs cannot both win.

    Keyed by the inventory's name rather than its path: copies of one inventory in two
    checkouts describe the same hosts.
    """

    def __init__(self, lock_dir: Path, inventory, run_id: str, reason: str = ""):
        self.lock_dir = lock_dir
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", inventory.name) or "inventory"
        self.path = lock_dir / f"{safe}.lock"
        self.info = LockInfo(run_id, operator(), now(), os.getpid(), socket.gethostname(),
                             str(Path(inventory.path).resolve()), reason)
        self.held = False

    def current(self) -> LockInfo | None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            return LockInfo.unreadable(self.path, exc.strerror or str(exc))
        return LockInfo.parse(data, self.path)

    def acquire(self) -> "InventoryLock":
        if not self.lock_dir.is_dir():
            self.lock_dir.mkdir(parents=True, exist_ok=True)
            # Sticky and world-writable like /run/lock itself: any operator may take a lock,
            # only its owner (or root) may remove it.
            os.chmod(self.lock_dir, 0o1777)
        data = self.info.to_json()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder = self.current()
            if holder is None or holder.holder_alive():
                hint = "; wait for it to finish"
            elif holder.problem:
                hint = "; break it with `invoke runs.unlock` once you are sure no run of this inventory is going on"
            else:
                hint = "; its process is gone: break it with `invoke runs.unlock`"
            inventory = holder.inventory if holder is not None and holder.inventory else self.info.inventory
            raise LockHeld(f"inventory {inventory} is locked by "
                           f"{holder.describe() if holder else 'an unknown holder'}{hint}") from None
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.held = True
        return self

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def break_stale(self, force: bool = False) -> LockInfo | None:
        """Remove a lock whose holder is dead (or any lock with force). Returns what was removed."""
        holder = self.current()
        if holder is None:
            return None
        if holder.holder_alive() and not force:
            raise LockHeld(f"the lock is held by a live process: {holder.describe()}; "
                           "refusing to break it (use --force only if you are sure)")
        self.path.unlink(missing_ok=True)
        return holder

    def __enter__(self) -> "InventoryLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
