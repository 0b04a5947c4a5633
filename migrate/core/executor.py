"""The one choke point for side effects.

An `Executor` is built in dry-run unless told otherwise. Reads are declared safe by calling
`read`, `read_file` or `stat_mode`, and always run, so that plans rest on facts. Everything that
changes a host goes through `execute(operation)`: in dry-run the operation is recorded and
rendered; otherwise it receives an `_Effects` object, the only handle that can act. Step code
never looks at the mode.

Long operations (an archive import) report progress through `_Effects.progress`; what shows it
is chosen by whoever drives the run, with `show_progress(factory)` around it. Without one,
progress goes nowhere.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

from .ops import Operation
from .secrets import redact
from .transport import Connections, Result


class RunLog:
    """One log file per run: every command executed or simulated, redacted, line-buffered."""

    def __init__(self, path: Path | None):
        self.path = path
        self._fh = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(path, "a", encoding="utf-8", buffering=1)

    def write(self, kind: str, host: str, text: str, extra: str = "") -> None:
        if self._fh is None:
            return
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        line = f"{stamp} {kind:<8} {host:<16} {text}" + (f"  [{extra}]" if extra else "")
        self._fh.write(redact(line).replace("\n", "\\n") + "\n")

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class ProgressHandle:
    """Progress of one long operation; this base class shows nothing.

    `advance` and `update` may be called from several threads.
    """

    def advance(self, amount: float = 1) -> None:
        pass

    def update(self, *, completed: float | None = None, total: float | None = None) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> "ProgressHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# (description, total or None) -> a handle; set by `show_progress` for the executors built inside.
ProgressFactory = Callable[[str, "float | None"], ProgressHandle]
_progress_factory: ContextVar[ProgressFactory | None] = ContextVar("migrate_progress", default=None)


@contextmanager
def show_progress(factory: ProgressFactory) -> Iterator[None]:
    """Executors created inside this block show operations' progress with `factory`."""
    token = _progress_factory.set(factory)
    try:
        yield
    finally:
        _progress_factory.reset(token)


class Executor:
    def __init__(self, connections: Connections, *, dry_run: bool = True, log: RunLog | None = None,
                 on_record: Callable[[Operation], None] | None = None,
                 progress: ProgressFactory | None = None):
        self._connections = connections
        self._dry_run = dry_run
        self.log = log or RunLog(None)
        self._on_record = on_record
        self._progress = progress if progress is not None else _progress_factory.get()
        self.recorded: list[Operation] = []

    @property
    def dry_run(self) -> bool:
        return self._dry_run

    @property
    def connections(self) -> Connections:
        return self._connections

    # -- safe reads: always performed -----------------------------------------------------------
    def read(self, host: str, argv: Sequence[str], *, input: bytes | str | None = None,
             env: Mapping[str, str] | None = None, cwd: str | None = None,
             timeout: float | None = None) -> Result:
        """Run a command that only reads. The caller vouches that it changes nothing."""
        result = self._connections.get(host).run(argv, input=input, env=env, cwd=cwd, timeout=timeout)
        self.log.write("read", host, result.command, f"exit {result.exited}, {result.duration * 1000:.0f} ms")
        return result

    def read_file(self, host: str, path: str) -> bytes | None:
        data = self._connections.get(host).read_file(path)
        self.log.write("read", host, f"get {path}", "absent" if data is None else f"{len(data)} bytes")
        return data

    def stat_mode(self, host: str, path: str) -> int | None:
        return self._connections.get(host).stat_mode(path)

    def stat_owner(self, host: str, path: str) -> tuple[str, str] | None:
        return self._connections.get(host).stat_owner(path)

    def service(self, kind: str, host: str):
        """The read-only view of an API service (e.g. GET-only REST): safe in every mode."""
        return self._connections.service(kind, host).reader

    # -- the choke point -----------------------------------------------------------------------
    def execute(self, op: Operation) -> Result | None:
        """Perform `op`, or in dry-run record it and return None."""
        if self._dry_run:
            self.recorded.append(op)
            self.log.write("dry-run", op.host, op.describe())
            if self._on_record is not None:
                self._on_record(op)
            return None
        self.log.write("apply", op.host, op.describe())
        return op.perform(_Effects(self))


class _Effects:
    """The acting side, handed to an operation's `perform` only by a non-dry-run executor."""

    def __init__(self, executor: Executor):
        self._ex = executor

    def run(self, host: str, argv: Sequence[str], *, input: bytes | str | None = None,
            env: Mapping[str, str] | None = None, cwd: str | None = None,
            timeout: float | None = None, on_output: Callable[[str], None] | None = None) -> Result:
        """Run a command; `on_output` receives its stdout while it runs (see Transport.run)."""
        # Passed only when asked for, so that transports without streaming keep working.
        streaming = {"on_output": on_output} if on_output is not None else {}
        result = self._ex.connections.get(host).run(argv, input=input, env=env, cwd=cwd, timeout=timeout,
                                                    **streaming)
        self._ex.log.write("run", host, result.command, f"exit {result.exited}, {result.duration * 1000:.0f} ms")
        return result

    def progress(self, description: str, total: float | None = None) -> ProgressHandle:
        """A progress indicator for a long operation: a bar on a terminal, nothing otherwise."""
        factory = self._ex._progress
        return factory(description, total) if factory is not None else ProgressHandle()

    def write_file(self, host: str, path: str, data: bytes, mode: int = 0o644, *,
                   owner: str | None = None, group: str | None = None) -> None:
        started = time.monotonic()
        # Passed only when asked for, so that transports without ownership keep working.
        ownership = {k: v for k, v in (("owner", owner), ("group", group)) if v}
        self._ex.connections.get(host).write_file(path, data, mode, **ownership)
        owned = f", owner {owner or ''}{':' + group if group else ''}" if ownership else ""
        self._ex.log.write("put", host, f"{path} ({len(data)} bytes, mode {mode:04o}{owned})",
                           f"{(time.monotonic() - started) * 1000:.0f} ms")

    def remove_file(self, host: str, path: str) -> None:
        self._ex.connections.get(host).remove_file(path)
        self._ex.log.write("remove", host, path)

    def read_file(self, host: str, path: str) -> bytes | None:
        return self._ex.read_file(host, path)

    def service(self, kind: str, host: str):
        """The full API service, able to change things; only operations get it."""
        return self._ex.connections.service(kind, host)
