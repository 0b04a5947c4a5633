"""Steps moving Mailman 2 archives into HyperKitty: prepare the mbox, import it before the window
(prestage) and what arrived since inside it (delta), verify by Message-ID.

Where the archive is: `{mailman2_var_dir}/archives/private/<list>.mbox/<list>.mbox` on the
legacy host. `archives.prepare` writes the cleaned copy next to it as `<list>.mbox.prepared`
(escaped From lines, normalised and assigned Message-IDs: `mbox.prepare`).

The watermark. Mailman 2 only ever appends to the mbox (`Mailbox.AppendMessage`, which adds a
newline first when the file does not end with one), so the byte size at import time marks what
HyperKitty already holds. A prestage records, per list, that size, the SHA-256 of those bytes and
the number of messages before them, with the operation in the run's journal. A delta reads the
mbox from the newest watermark on, refuses when the mbox shrank, its first `offset` bytes no
longer hash the same or what follows them does not start a message (by `mbox`'s separator rule),
prepares only that slice and imports it; its own watermark names the run it built on, so rolling
back that run invalidates it. Which messages are new is decided by bytes, never by dates: every
import passes an explicit `--since` far in the past.

A file read while Mailman 2 appends to it may end in the middle of a message: an import takes
only whole messages (it stops at the last separator unless the data ends with a newline); the
rest comes with the next delta.

Lists are imported in steps of a few lists: the reads around an import (each a mailman-web
start-up, half a second) are made once per step, and one `ImportArchives` operation runs the
lists' `hyperkitty_import`s, `parallel` at a time. A failing list rolls back its step; the other
steps go on.
"""

from __future__ import annotations

import base64
import hashlib
import json
import posixpath
import tempfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..core.errors import MigrateError
from ..core.ops import Operation, WriteFile, register
from ..core.step import Check, Step, StepContext, Verification, fail
from ..mailman import convert, mm2
from ..mailman.mm3 import KIND as MAILMAN3, get_list
from ..mailman.steps import checked_name, legacy_host, list_address, lists_host, read_list_config, refuse_invalid_name
from . import mbox
from .hyperkitty import (
    SINCE, ArchivedList, DiscardImportCopy, HyperKittyState, ImportArchives, IndexMessages, UpdateSearchIndex,
    mailman_web_command, read_state, reader_runner, wait_for_imports,
)
from .missing import Difference, missing_messages

PREPARED_SUFFIX = ".prepared"


def mbox_path(inventory, name: str) -> str:
    var_dir = legacy_host(inventory).var("mailman2_var_dir")
    name = checked_name(name)
    return posixpath.join(var_dir, "archives", "private", f"{name}.mbox", f"{name}.mbox")


def prepared_path(inventory, name: str) -> str:
    return mbox_path(inventory, name) + PREPARED_SUFFIX


def import_folder(inventory) -> str:
    return str(lists_host(inventory).var("hyperkitty_import_dir"))


def import_copy_path(inventory, name: str) -> str:
    return posixpath.join(import_folder(inventory), f"migrate-{checked_name(name)}.mbox")


# -- mbox bytes on the controller ------------------------------------------------------------

@contextmanager
def _scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="migrate-archive-") as folder:
        yield Path(folder)


def scan_bytes(data: bytes) -> mbox.MboxReport:
    with _scratch() as folder:
        (folder / "in.mbox").write_bytes(data)
        return mbox.scan(folder / "in.mbox")


def prepare_bytes(data: bytes, *, list_name: str, fallback_charset: str | None) -> tuple[bytes, mbox.PrepareResult]:
    with _scratch() as folder:
        (folder / "in.mbox").write_bytes(data)
        result = mbox.prepare(folder / "in.mbox", folder / "out.mbox", list_name=list_name,
                              fallback_charset=fallback_charset)
        return (folder / "out.mbox").read_bytes(), result


# A mbox unchanged for this long is not being written to: Mailman 2 writes a message at once.
SETTLED_SECONDS = 10

# Size and mtime of a file, and the host's clock (its own, so that clock skew does not matter).
_STAT = 'stat -c "%s %Y" -- "$1" && date +%s'


def whole_messages(data: bytes, report: mbox.MboxReport, *, settled: bool) -> int:
    """How many leading bytes of `data` hold only whole messages (see the module docstring).

    Data that ends with a newline, or was read from a settled file, is whole; otherwise the last
    message may still be being written and is left for the next import.
    """
    if settled or not data or data.endswith(b"\n"):
        return len(data)
    return report.offsets[-1] if report.offsets else 0


def _is_settled(line: str, size_read: int) -> bool:
    """From `size mtime` and the host's `now` (two lines of _STAT output)."""
    parts = line.split()
    size, mtime, now = int(parts[0]), int(parts[1]), int(parts[2])
    return size == size_read and now - mtime >= SETTLED_SECONDS


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_READ_BASE64 = 'test -f "$1" || exit 3; base64 -w 0 -- "$1"'


def read_archive_file(reader, inventory, path: str) -> bytes | None:
    """A file of the legacy host, byte for byte (None when absent).

    Through sudo the transport reads files as command output, which it decodes as UTF-8: the
    8-bit bytes of an mbox would not survive. There the file comes base64-encoded instead.
    """
    host = legacy_host(inventory)
    if not host.sudo:
        return reader.read_file(host.name, path)
    result = reader.read(host.name, ["sh", "-c", _READ_BASE64, "sh", path])
    if result.exited == 3:
        return None
    return base64.b64decode(result.check().stdout.strip())


# -- one list's archive ------------------------------------------------------------------------

class _Archive:
    """One list's Mailman 2 side, read once per step instance."""

    def __init__(self, name: str, mail_host: str | None = None):
        self.name = name
        self.mail_host = mail_host
        self._config: dict | None = None
        self._mbox: bytes | None = None
        self._mbox_read = False

    def config(self, ctx: StepContext) -> dict:
        if self._config is None:
            self._config = read_list_config(ctx, self.name)
        return self._config

    def fqdn(self, ctx: StepContext) -> str:
        return list_address(self.name, self.mail_host, self.config(ctx))

    def archive_policy(self, ctx: StepContext) -> str:
        """What Mailman 2's archive and archive_private become on Mailman 3 (import21's rule)."""
        return convert.expected_settings(self.config(ctx), list_name=self.name)["archive_policy"]

    def charset(self, ctx: StepContext) -> str | None:
        """The charset of the list's language: what undeclared 8-bit headers were most likely in."""
        return mm2.charset_for(str(self.config(ctx).get("preferred_language") or "en"))

    def mbox(self, ctx: StepContext) -> bytes | None:
        if not self._mbox_read:
            self._mbox = read_archive_file(ctx.executor, ctx.inventory, mbox_path(ctx.inventory, self.name))
            self._mbox_read = True
        return self._mbox

    def check_name(self) -> None:
        refuse_invalid_name(self.name)

    def check_config(self, ctx: StepContext) -> None:
        try:
            self.config(ctx)
            self.fqdn(ctx)
        except MigrateError as exc:
            fail(str(exc))


class ArchiveParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    list: str = Field(..., description="Mailman 2 list name (the folder under lists/)")
    mail_host: str | None = Field(None, description="Mailman 3 domain; default: the list's Mailman 2 host_name")


# -- prepare -----------------------------------------------------------------------------------

class PrepareArchive(Step):
    """Write the cleaned copy `<list>.mbox.prepared` next to the Mailman 2 mbox (same mode).

    The copy is computed on the controller with `mbox.prepare` and is the same bytes for the same
    mbox, so a second run finds nothing to write. `result` holds every change made (for the report).
    """

    id = "archives.prepare"
    title = "Prepare a list's mbox for HyperKitty"
    Params = ArchiveParams
    example = {"list": "announce"}

    def __init__(self, params=None):
        super().__init__(params)
        self.archive = _Archive(self.params.list, self.params.mail_host)
        self.result: mbox.PrepareResult | None = None
        self._prepared: bytes | None = None

    def describe(self) -> str:
        return f"{self.title}: {self.params.list}"

    def fail_for_invalid_list_name(self, ctx: StepContext) -> None:
        self.archive.check_name()

    def fail_for_unreadable_config(self, ctx: StepContext) -> None:
        self.archive.check_config(ctx)

    def fail_for_missing_mbox(self, ctx: StepContext) -> None:
        if self.archive.mbox(ctx) is None:
            fail(f"list {self.archive.name}: no archive mbox {mbox_path(ctx.inventory, self.archive.name)}")

    def prepared(self, ctx: StepContext) -> bytes:
        if self._prepared is None:
            data = self.archive.mbox(ctx) or b""
            self._prepared, self.result = prepare_bytes(data, list_name=self.archive.fqdn(ctx),
                                                        fallback_charset=self.archive.charset(ctx))
            # Name the files where they are, not the scratch copies prepare worked on.
            self.result.src = mbox_path(ctx.inventory, self.archive.name)
            self.result.dst = prepared_path(ctx.inventory, self.archive.name)
        return self._prepared

    def plan(self, ctx: StepContext) -> list:
        host = legacy_host(ctx.inventory).name
        target = prepared_path(ctx.inventory, self.archive.name)
        content = self.prepared(ctx)
        mode = ctx.executor.stat_mode(host, mbox_path(ctx.inventory, self.archive.name)) or 0o640
        if read_archive_file(ctx.executor, ctx.inventory, target) == content and \
                ctx.executor.stat_mode(host, target) == mode:
            return []
        return [WriteFile(host, target, content, mode)]

    def verify(self, ctx: StepContext) -> Verification:
        result = Verification(f"{self.id} {self.archive.name}")
        written = read_archive_file(ctx.executor, ctx.inventory, prepared_path(ctx.inventory, self.archive.name))
        result.add("prepared copy is the cleaned mbox", True, written == self.prepared(ctx))
        if written is None:
            return result
        report = scan_bytes(written)
        result.add("messages", self.result.messages, report.messages)
        for kind in ("unescaped_from_line", "missing_message_id", "decorated_message_id"):
            result.add(f"left in the copy: {kind}", 0, report.counts[kind])
        return result


# -- watermarks --------------------------------------------------------------------------------

@dataclass
class Watermark:
    """How far into a list's Mailman 2 mbox HyperKitty is known to hold everything."""

    list: str
    offset: int  # bytes of the mbox imported
    sha256: str  # of those bytes
    messages: int  # messages in those bytes
    run: str = ""  # the run that recorded it
    mode: str = "prestage"
    base_run: str | None = None  # for a delta: the run whose watermark it started from

    def to_dict(self) -> dict:
        return asdict(self)


def find_watermarks(state_dir, names: list[str]) -> tuple[dict[str, Watermark], dict[str, str]]:
    """The newest watermark per list from the journals of completed import steps.

    Returns (watermarks, problems): a list whose newest watermark builds on a run that was rolled
    back since gets a problem instead, naming both runs.
    """
    done: dict[str, dict[str, Watermark]] = {name: {} for name in names}
    order: dict[str, list[str]] = {name: [] for name in names}
    for run in state_dir.list_runs():
        # Only applied steps end `done` (a dry run's never do), and a rollback marks them undone.
        for step in run.steps:
            if step.id != ImportArchive.id or step.status != "done":
                continue
            for record in step.ops:
                for entry in _watermark_entries(record.op):
                    name = entry["list"]
                    if name not in done:
                        continue
                    mark = Watermark(**{**entry, "run": run.run_id})
                    done[name][run.run_id] = mark
                    if run.run_id in order[name]:
                        order[name].remove(run.run_id)
                    order[name].append(run.run_id)
    found, problems = {}, {}
    for name in names:
        if not order[name]:
            continue
        mark = done[name][order[name][-1]]
        link = mark
        while link.base_run is not None:
            base = done[name].get(link.base_run)
            if base is None:
                problems[name] = (f"list {name}: the newest import ({mark.run}) builds on run {link.base_run}, "
                                  f"which is no longer applied: roll back {mark.run} too, or import with --prestage")
                break
            link = base
        else:
            found[name] = mark
    return found, problems


def _watermark_entries(op: dict) -> list[dict]:
    if op.get("type") == ImportArchives.__name__:
        return [dict(e["watermark"], list=e["list"]) for e in op.get("lists", []) if "watermark" in e]
    if op.get("type") == RecordWatermark.__name__:
        return [dict(op["watermark"], list=op["list"])]
    return []


@register
@dataclass
class RecordWatermark(Operation):
    """Record in the journal that HyperKitty already holds a list's mbox up to `watermark`.

    Changes nothing: written when an import finds every message of its slice already there, so the
    next delta still starts from the right byte.
    """

    list: str = ""
    watermark: dict = field(default_factory=dict)

    def describe(self) -> str:
        return (f"record watermark of {self.list}: {self.watermark.get('offset')} bytes, "
                f"{self.watermark.get('messages')} messages (HyperKitty holds them all already)")

    def perform(self, effects) -> None:
        return None


# -- import ------------------------------------------------------------------------------------

@dataclass
class _Payload:
    """What one import takes from one list's mbox."""

    name: str
    fqdn: str
    archive_policy: str
    original: bytes  # the mbox bytes from `start` to `end`
    start: int
    end: int
    sha256: str  # of the mbox's first `end` bytes
    messages_before: int  # messages in the mbox before `start`
    prepared: bytes = b""
    result: mbox.PrepareResult | None = None
    report: mbox.MboxReport | None = None

    @property
    def ids(self) -> list[str]:
        seen: dict[str, None] = {}
        for msgid in self.result.message_ids if self.result else []:
            seen.setdefault(msgid, None)
        return list(seen)

    @property
    def messages(self) -> int:
        return self.result.messages if self.result else 0

    def watermark(self, mode: str, base_run: str | None) -> dict:
        return {"offset": self.end, "sha256": self.sha256, "messages": self.messages_before + self.messages,
                "mode": mode, "base_run": base_run}


class ImportParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lists: list[str] = Field(..., min_length=1, description="Mailman 2 list names imported together")
    mode: Literal["prestage", "delta"] = Field(..., description="prestage: the whole mbox; delta: what "
                                                                "arrived after the watermark in `base`")
    parallel: int = Field(1, ge=1, description="how many of the lists' imports run at once")
    base: dict[str, dict] = Field(default_factory=dict, description="delta: each list's watermark to start from")


# Line 1: size, mtime and the host's clock; line 2: SHA-256 of the first $2 bytes; line 3: the
# bytes after them, base64 (command output is text).
_READ_TAIL = r'''
test -f "$1" || exit 3
printf '%s %s\n' "$(stat -c '%s %Y' -- "$1")" "$(date +%s)"
head -c "$2" -- "$1" | sha256sum | cut -d " " -f 1
tail -c "+$(($2 + 1))" -- "$1" | base64 -w 0
'''

_HASH_PREFIX = 'head -c "$2" -- "$1" | sha256sum | cut -d " " -f 1'


class ImportArchive(Step):
    """Import lists' Mailman 2 archives into HyperKitty: the whole prepared mbox (prestage) or
    what arrived after the last watermark (delta), then update each list's search index.

    Only after the list exists on Mailman 3 with the archive policy Mailman 2 implies, and HyperKitty
    holds it with that policy (created so if missing): a private archive is never public, not even
    while its messages arrive. Rollback deletes exactly the messages this import added.
    """

    id = "archives.import"
    title = "Import archives into HyperKitty"
    Params = ImportParams
    example = {"lists": ["announce"], "mode": "prestage"}

    def __init__(self, params=None):
        super().__init__(params)
        self.archives = [_Archive(name) for name in self.params.lists]
        self._state: HyperKittyState | None = None
        self._payloads: dict[str, _Payload] = {}
        self._tails: dict[str, tuple[str, str, bytes]] = {}

    def describe(self) -> str:
        return f"{self.title} ({self.params.mode}): {', '.join(self.params.lists)}"

    # -- reading --------------------------------------------------------------------------------
    def hyperkitty(self, ctx: StepContext, *, refresh: bool = False) -> HyperKittyState:
        if self._state is None or refresh:
            host = lists_host(ctx.inventory)
            wait_for_imports(lambda argv: ctx.read(host.name, argv), host.name, import_folder(ctx.inventory))
            addresses = [a.fqdn(ctx) for a in self.archives]
            self._state = read_state(reader_runner(ctx.executor, host.name), host.name,
                                     mailman_web_command(host), addresses, ids=True)
        return self._state

    def _tail(self, ctx: StepContext, archive: _Archive) -> tuple[str, str, bytes]:
        """(`size mtime now`, SHA-256 of the watermark's bytes, the bytes after them) from the
        legacy host, in one command."""
        if archive.name not in self._tails:
            host = legacy_host(ctx.inventory).name
            offset = int(self.params.base[archive.name]["offset"])
            result = ctx.read(host, ["sh", "-c", _READ_TAIL, "sh", mbox_path(ctx.inventory, archive.name), str(offset)])
            if result.exited == 3:
                fail(f"list {archive.name}: its mbox {mbox_path(ctx.inventory, archive.name)} is gone")
            result.check()
            stat, digest, encoded = (result.stdout.split("\n", 2) + ["", ""])[:3]
            self._tails[archive.name] = (stat, digest.strip(), base64.b64decode(encoded.strip()))
        return self._tails[archive.name]

    def payload(self, ctx: StepContext, archive: _Archive) -> _Payload:
        if archive.name in self._payloads:
            return self._payloads[archive.name]
        if self.params.mode == "prestage":
            data = archive.mbox(ctx) or b""
            end = whole_messages(data, scan_bytes(data), settled=self._settled(ctx, archive, len(data)))
            payload = _Payload(archive.name, archive.fqdn(ctx), archive.archive_policy(ctx), data[:end],
                               0, end, sha256(data[:end]), 0)
        else:
            base = self.params.base[archive.name]
            stat, _, tail = self._tail(ctx, archive)
            start = int(base["offset"])
            end = start + whole_messages(tail, scan_bytes(tail), settled=_is_settled(stat, start + len(tail)))
            if end == start:
                digest = base["sha256"]
            else:
                host = legacy_host(ctx.inventory).name
                digest = ctx.read(host, ["sh", "-c", _HASH_PREFIX, "sh", mbox_path(ctx.inventory, archive.name),
                                         str(end)]).check().stdout.strip()
            payload = _Payload(archive.name, archive.fqdn(ctx), archive.archive_policy(ctx), tail[:end - start],
                               start, end, digest, int(base["messages"]))
        payload.report = scan_bytes(payload.original)
        payload.prepared, payload.result = prepare_bytes(payload.original, list_name=payload.fqdn,
                                                         fallback_charset=archive.charset(ctx))
        self._payloads[archive.name] = payload
        return payload

    def _settled(self, ctx: StepContext, archive: _Archive, size_read: int) -> bool:
        if not size_read:
            return True
        result = ctx.read(legacy_host(ctx.inventory).name, ["sh", "-c", _STAT, "sh",
                                                           mbox_path(ctx.inventory, archive.name)])
        return result.ok and _is_settled(result.stdout.replace("\n", " "), size_read)

    # -- preflight ------------------------------------------------------------------------------
    def fail_for_invalid_list_names(self, ctx: StepContext) -> None:
        for archive in self.archives:
            archive.check_name()
        if self.params.mode == "delta":
            missing = [a.name for a in self.archives if a.name not in self.params.base]
            if missing:
                fail(f"list(s) {', '.join(missing)}: no watermark to import a delta from: "
                     "import them with --prestage first")

    def fail_for_unreadable_configs(self, ctx: StepContext) -> None:
        for archive in self.archives:
            archive.check_config(ctx)

    # A delta reads only the end of the mbox (`_tail`), which checks the file itself; these two
    # read the whole of it, which only a prestage needs.
    def fail_for_missing_mbox(self, ctx: StepContext) -> None:
        if self.params.mode != "prestage":
            return
        for archive in self.archives:
            if archive.mbox(ctx) is None and archive.archive_policy(ctx) != "never":
                fail(f"list {archive.name}: archiving is on, but there is no mbox "
                     f"{mbox_path(ctx.inventory, archive.name)}")

    def fail_for_archive_off_with_messages(self, ctx: StepContext) -> None:
        if self.params.mode != "prestage":
            return
        for archive in self.archives:
            if archive.archive_policy(ctx) == "never" and (archive.mbox(ctx) or b"").strip():
                # HyperKitty shows a list with policy `never` like a public one.
                fail(f"list {archive.name}: archiving is off on Mailman 2, but its mbox holds messages; "
                     "HyperKitty would show them to everyone. Decide the policy on Mailman 3 first")

    def fail_for_list_missing_on_mailman3(self, ctx: StepContext) -> None:
        try:
            client = ctx.executor.service(MAILMAN3, lists_host(ctx.inventory).name)
        except MigrateError as exc:
            fail(str(exc))
        for archive in self.archives:
            mlist = get_list(client, archive.fqdn(ctx))
            if mlist is None:
                fail(f"list {archive.fqdn(ctx)} does not exist on Mailman 3: migrate it first "
                     "(`mailman.migrate`); its archive policy must be there before any message")
            policy = mlist.settings.get("archive_policy")
            if policy != archive.archive_policy(ctx):
                fail(f"list {archive.fqdn(ctx)}: Mailman 3's archive policy is {policy}, Mailman 2's settings "
                     f"mean {archive.archive_policy(ctx)}; fix it on Mailman 3 before importing")

    def fail_for_unreachable_hyperkitty(self, ctx: StepContext) -> None:
        try:
            self.hyperkitty(ctx)
        except MigrateError as exc:
            fail(str(exc))

    def fail_for_other_policy_in_hyperkitty(self, ctx: StepContext) -> None:
        for archive in self.archives:
            held = self.hyperkitty(ctx).lists.get(archive.fqdn(ctx))
            if held is not None and held.archive_policy != archive.archive_policy(ctx):
                fail(f"list {archive.fqdn(ctx)}: HyperKitty holds it as {held.archive_policy}, Mailman 3 as "
                     f"{archive.archive_policy(ctx)}: run `mailman-web mailman_sync` on "
                     f"{lists_host(ctx.inventory).name} first")

    def fail_for_parallel_imports_on_sqlite(self, ctx: StepContext) -> None:
        if self.params.parallel > 1 and len(self.archives) > 1 and self.hyperkitty(ctx).single_writer:
            fail(f"HyperKitty's database is {self.hyperkitty(ctx).engine}: two imports at once lose "
                 "messages to 'database is locked'; import one list at a time (--parallel 1)")

    def fail_for_unsafe_import_folder(self, ctx: StepContext) -> None:
        host = lists_host(ctx.inventory)
        try:
            folder = import_folder(ctx.inventory)
        except MigrateError as exc:
            fail(str(exc))
        mode = ctx.executor.stat_mode(host.name, folder)
        if mode is None or not ctx.read(host.name, ["test", "-d", folder]).ok:
            fail(f"{host.name}: folder {folder} (hyperkitty_import_dir) does not exist")
        if mode & 0o007:
            # The copies are readable by the mailman-web user; the folder must keep others out.
            fail(f"{host.name}: folder {folder} (hyperkitty_import_dir) is open to other users "
                 f"(mode {mode:04o}): private archives would be readable there; chmod o-rwx it")

    def fail_for_stale_prepared_copy(self, ctx: StepContext) -> None:
        if self.params.mode != "prestage":
            return
        for archive in self.archives:
            if archive.mbox(ctx) is None:
                continue
            reviewed = read_archive_file(ctx.executor, ctx.inventory, prepared_path(ctx.inventory, archive.name))
            if reviewed is None:
                fail(f"list {archive.name}: no prepared copy {prepared_path(ctx.inventory, archive.name)}: "
                     "run `archives.prepare` first and review its report")
            # The mbox only grows: what prepare wrote must be the start of what it gives now.
            if not self.payload(ctx, archive).prepared.startswith(reviewed):
                fail(f"list {archive.name}: the prepared copy no longer matches the mbox: "
                     "run `archives.prepare` again")

    def fail_for_changed_mbox(self, ctx: StepContext) -> None:
        if self.params.mode != "delta":
            return
        for archive in self.archives:
            base = self.params.base[archive.name]
            stat, digest, tail = self._tail(ctx, archive)
            size = int(stat.split()[0])
            offset = int(base["offset"])
            if size < offset:
                fail(f"list {archive.name}: the mbox shrank to {size} bytes since run {base.get('run')} imported "
                     f"{offset}: it was edited; import it again with --prestage")
            if digest != base["sha256"]:
                fail(f"list {archive.name}: the first {offset} bytes of the mbox changed since run "
                     f"{base.get('run')} imported them: it was edited; import it again with --prestage")
            if tail.strip(b"\r\n") and not mbox.starts_with_message(tail):
                fail(f"list {archive.name}: the mbox does not continue with a new message at byte {offset}: "
                     "it was edited; import it again with --prestage")

    # -- plan -------------------------------------------------------------------------------------
    def plan(self, ctx: StepContext) -> list:
        host = lists_host(ctx.inventory)
        command = mailman_web_command(host)
        state = self.hyperkitty(ctx)
        base_runs = {name: wm.get("run") for name, wm in self.params.base.items()}
        to_import: list[_Payload] = []
        records: list[RecordWatermark] = []
        for archive in self.archives:
            payload = self.payload(ctx, archive)
            if not payload.messages:
                continue
            held = state.lists.get(payload.fqdn)
            mark = payload.watermark(self.params.mode, base_runs.get(archive.name))
            if held is not None and held.ids is not None and set(payload.ids) <= held.ids:
                records.append(RecordWatermark(host.name, archive.name, mark))
                continue
            to_import.append(payload)
        if not to_import:
            return list(records)
        entries = [{"list": p.name, "fqdn": p.fqdn, "archive_policy": p.archive_policy,
                    "path": import_copy_path(ctx.inventory, p.name), "messages": p.messages,
                    "watermark": p.watermark(self.params.mode, base_runs.get(p.name))}
                   for p in to_import]
        ids = json.dumps({p.fqdn: p.ids for p in to_import}, sort_keys=True).encode()
        # Readable by the mailman-web user, which runs the import; the folder keeps others out.
        ops: list = [WriteFile(host.name, e["path"], p.prepared, 0o644) for p, e in zip(to_import, entries)]
        ops.append(ImportArchives(host.name, list(command), entries, ids, SINCE,
                                  min(self.params.parallel, len(to_import))))
        if self.params.mode == "prestage":
            ops += [UpdateSearchIndex(host.name, command, p.fqdn, import_folder(ctx.inventory)) for p in to_import]
        else:
            ops.append(IndexMessages(host.name, list(command), ids, import_folder(ctx.inventory)))
        ops += [DiscardImportCopy(host.name, e["path"]) for e in entries]
        return ops + records

    # -- verify -----------------------------------------------------------------------------------
    def verify(self, ctx: StepContext) -> Verification:
        result = Verification(f"{self.id} {self.params.mode} {', '.join(self.params.lists)}")
        state = self.hyperkitty(ctx, refresh=True)
        for archive in self.archives:
            payload = self.payload(ctx, archive)
            held = state.lists.get(payload.fqdn)
            if not payload.messages:
                result.add(f"{archive.name}: nothing new in the mbox", True, True)
                continue
            result.add(f"{archive.name}: HyperKitty archive policy", payload.archive_policy,
                       held.archive_policy if held else None)
            present = held.ids if held is not None and held.ids is not None else frozenset()
            differences = missing_messages(payload.original, payload.report, payload.result, present)
            unexplained = [d for d in differences if not d.explained]
            result.checks.append(Check(
                f"{archive.name}: messages of this import in HyperKitty", not unexplained, len(payload.ids),
                len(set(payload.ids) & present), _detail(differences)))
        return result


# -- verification --------------------------------------------------------------------------------

def _detail(differences: list[Difference], limit: int = 5) -> str:
    text = "; ".join(d.describe() for d in differences[:limit])
    if len(differences) > limit:
        text += f"; and {len(differences) - limit} more"
    return text


@dataclass
class ArchiveComparison:
    """A list's Mailman 2 mbox against HyperKitty's archive, by count and by Message-ID."""

    list: str
    fqdn: str
    archive_policy: str
    hyperkitty_policy: str | None
    mbox_messages: int
    mbox_ids: int  # distinct ids after normalisation (and the ids prepare assigns)
    hyperkitty_messages: int
    duplicates: dict[str, list[int]] = field(default_factory=dict)
    missing: list[Difference] = field(default_factory=list)
    extra: list[Difference] = field(default_factory=list)
    watermark: dict | None = None
    error: str = ""

    @property
    def unexplained(self) -> list[Difference]:
        return [d for d in self.missing + self.extra if not d.explained]

    @property
    def policy_ok(self) -> bool:
        """A list HyperKitty does not hold has no policy to get wrong (its messages are missing)."""
        return self.hyperkitty_policy in (None, self.archive_policy)

    @property
    def ok(self) -> bool:
        return not self.error and self.policy_ok and not self.unexplained

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        data["policy_ok"] = self.policy_ok
        data["unexplained"] = len(self.unexplained)
        return data


def compare_archives(ctx: StepContext, names: list[str], watermarks: dict[str, Watermark] | None = None,
                     mail_hosts: dict[str, str] | None = None,
                     importer_problems: dict[str, list[str]] | None = None) -> list[ArchiveComparison]:
    """Compare each list's whole current mbox (prepared the way an import would) with HyperKitty.

    One mailman-web query reads every list's ids; nothing is written anywhere. `importer_problems`:
    hyperkitty_import's lines per list address (`missing.importer_lines`), for the reasons.
    """
    archives = [_Archive(name, (mail_hosts or {}).get(name)) for name in names]
    comparisons: list[ArchiveComparison] = []
    readable = []
    for archive in archives:
        try:
            archive.fqdn(ctx)
            readable.append(archive)
        except MigrateError as exc:
            comparisons.append(ArchiveComparison(archive.name, "", "", None, 0, 0, 0, error=str(exc)))
    host = lists_host(ctx.inventory)
    state = read_state(reader_runner(ctx.executor, host.name), host.name, mailman_web_command(host),
                       [a.fqdn(ctx) for a in readable], ids=True)
    for archive in readable:
        comparisons.append(_compare(ctx, archive, state.lists.get(archive.fqdn(ctx)),
                                    (watermarks or {}).get(archive.name),
                                    (importer_problems or {}).get(archive.fqdn(ctx), [])))
    order = {name: i for i, name in enumerate(names)}
    return sorted(comparisons, key=lambda c: order[c.list])


def _compare(ctx: StepContext, archive: _Archive, held: ArchivedList | None,
             watermark: Watermark | None, importer_lines: list[str]) -> ArchiveComparison:
    data = archive.mbox(ctx) or b""
    report = scan_bytes(data)
    _, prepared = prepare_bytes(data, list_name=archive.fqdn(ctx), fallback_charset=archive.charset(ctx))
    expected = set(prepared.message_ids)
    present = held.ids if held is not None and held.ids is not None else frozenset()
    comparison = ArchiveComparison(
        archive.name, archive.fqdn(ctx), archive.archive_policy(ctx), held.archive_policy if held else None,
        prepared.messages, len(expected), held.count if held else 0, dict(prepared.duplicates),
        watermark=watermark.to_dict() if watermark else None)
    comparison.missing = missing_messages(data, report, prepared, present,
                                          pending_from=watermark.offset if watermark else None,
                                          importer_lines=importer_lines)
    comparison.extra = [Difference(msgid, "extra", reason="not in the Mailman 2 mbox")
                        for msgid in sorted(present - expected)]
    return comparison


class VerifyArchive(Step):
    """Compare a list's Mailman 2 mbox with HyperKitty by count and Message-ID (read-only)."""

    id = "archives.verify"
    title = "Verify a list's archive in HyperKitty"
    Params = ArchiveParams
    example = {"list": "announce"}

    def describe(self) -> str:
        return f"{self.title}: {self.params.list}"

    def plan(self, ctx: StepContext) -> list:
        return []

    def verify(self, ctx: StepContext) -> Verification:
        mail_hosts = {self.params.list: self.params.mail_host} if self.params.mail_host else None
        comparison = compare_archives(ctx, [self.params.list], mail_hosts=mail_hosts)[0]
        return comparison_checks(f"{self.id} {self.params.list}", comparison)


def comparison_checks(name: str, comparison: ArchiveComparison) -> Verification:
    result = Verification(name)
    if comparison.error:
        result.checks.append(Check("readable", False, detail=comparison.error))
        return result
    result.checks.append(Check("archive policy in HyperKitty", comparison.policy_ok, comparison.archive_policy,
                               comparison.hyperkitty_policy))
    duplicates = sum(len(v) - 1 for v in comparison.duplicates.values())
    result.checks.append(Check("messages (distinct Message-IDs)", not comparison.unexplained,
                               comparison.mbox_ids, comparison.hyperkitty_messages,
                               f"{comparison.mbox_messages} in the mbox, {duplicates} duplicate(s) kept once"))
    result.checks.append(Check("missing from HyperKitty", not [d for d in comparison.missing if not d.explained],
                               0, len(comparison.missing), _detail(comparison.missing)))
    result.checks.append(Check("extra in HyperKitty", not comparison.extra, 0, len(comparison.extra),
                               _detail(comparison.extra)))
    return result
