"""HyperKitty on the lists host, through `mailman-web` commands run over SSH.

Reads and deletions run small Python programs with `mailman-web shell -c CODE`: the programs are
constants of this module, each passed as ONE argument, and every value they need (list addresses,
message ids) arrives as JSON on their standard input. Nothing is ever formatted into the code.
They answer with one line `MIGRATE-HYPERKITTY <json>` on stdout, since Django and HyperKitty may
print other things there.

What hyperkitty_import 1.3.12 does, and what the operations here rely on (read in
hyperkitty/management/commands/hyperkitty_import.py and checked on the lab):
- Without `--since` it skips every message dated before the newest one the list already holds,
  silently. Every import here passes an explicit `--since` far in the past: which messages are
  new is decided by the byte watermark of the Mailman 2 mbox, never by dates.
- With `--since` it also skips a whole mbox file whose mtime is older, unless `--ignore-mtime`:
  always passed.
- Unless `--no-sync-mailman`, it first copies the list's settings, the archive policy among them,
  from Mailman core (`MailingList.update_from_mailman`), the CVE-2021-33038 fix. That option is
  never passed. `ImportArchives` goes further: a list HyperKitty does not know yet is created
  with its archive policy before the import, because `get_or_create` would create it public and
  core may be unreachable from HyperKitty, in which case the sync does nothing without a word.
- With `--since` set its progress is a spinner: one `\\r` plus `|/-\\` per message read (a
  percentage `\\rNN%` without `--since`), no newline. `ImportProgress` counts these.
- Messages whose Message-ID the list already holds are skipped (that makes re-runs harmless);
  messages it cannot convert or store are skipped with a line on stderr, and the command still
  exits 0. Verification by Message-ID is what finds them.
- It does not update the search index: `update_index_one_list LIST` does, for the whole list
  (after a prestage); after a delta only the new messages are indexed (`IndexMessages`), since
  re-indexing a list costs time in proportion to all its messages, inside the window.
- On SQLite, two imports at once fail with "database is locked" and the importer skips the
  messages that hit the lock; `HyperKittyState.single_writer` lets callers import one list at a
  time there. PostgreSQL (production's and the lab's) takes concurrent imports.
- A controller that dies (SIGKILL, a dropped connection) does not stop what it started there:
  without a terminal, sshd only closes the command's pipes, and the importer writes its progress
  into a buffer, so it carries on, up to the end of a small list. The programs that change
  HyperKitty (imports, index updates, deletions) therefore hold the import folder's lock
  (`flock --shared`) while they run, and what reads or undoes their work after an interruption
  first waits for that lock (`wait_for_imports`): else a resumed run would verify, or delete,
  messages that are still arriving.
"""

from __future__ import annotations

import json
import posixpath
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from ..core import names
from ..core.errors import CommandError, MigrateError
from ..core.ops import Operation, register
from ..core.transport import Result

MARK = "MIGRATE-HYPERKITTY "

# Far enough in the past to hold every real archive, late enough to stay clear of datetime's
# limits: hyperkitty_import compares aware datetimes and only catches ValueError, so a message
# dated near year 1 with a time zone would raise OverflowError and stop the whole import.
SINCE = "1900-01-01T00:00:00+00:00"

_PROLOGUE = '''
import json, sys
from hyperkitty.models import ArchivePolicy, Email, MailingList
request = json.loads(sys.stdin.read())
def answer(data):
    sys.stdout.write("\\nMIGRATE-HYPERKITTY " + json.dumps(data) + "\\n")
    sys.stdout.flush()
'''

# {"lists": [address...], "ids": bool} -> {"engine": ..., "lists": {address: null | {...}}}
_READ = _PROLOGUE + '''
from django.conf import settings
found = {}
for name in request["lists"]:
    mlist = MailingList.objects.filter(name=name).first()
    if mlist is None:
        found[name] = None
        continue
    emails = Email.objects.filter(mailinglist=mlist)
    entry = {"archive_policy": ArchivePolicy(mlist.archive_policy).name, "count": emails.count()}
    if request.get("ids"):
        entry["ids"] = sorted(emails.values_list("message_id", flat=True))
    found[name] = entry
answer({"engine": settings.DATABASES["default"]["ENGINE"], "lists": found})
'''

# {"lists": {address: policy name}} -> {"lists": {address: {"created", "archive_policy", "count"}}};
# exit 3 when HyperKitty (or core, through the sync) holds a list with another policy.
_PROTECT = _PROLOGUE + '''
found, wrong = {}, False
for name, policy in request["lists"].items():
    wanted = ArchivePolicy[policy]
    mlist, created = MailingList.objects.get_or_create(name=name, defaults={"archive_policy": wanted.value})
    if mlist.archive_policy == wanted.value:
        mlist.update_from_mailman()
        mlist.refresh_from_db()
    found[name] = {"created": created, "archive_policy": ArchivePolicy(mlist.archive_policy).name,
                   "count": Email.objects.filter(mailinglist=mlist).count()}
    wrong = wrong or mlist.archive_policy != wanted.value
answer({"lists": found})
if wrong:
    sys.exit(3)
'''

# {"lists": {address: [stored id...]}, "forget": [address...]} -> {"deleted": {address: n},
# "kept": {address: n}}. Messages one by one, so that HyperKitty's delete hooks re-link replies
# and drop emptied threads, and each leaves the search index with it; each is read afresh just
# before, since deleting one re-links the others in the database. Lists in "forget" are deleted
# once empty; one still holding messages is kept and makes the exit status 3.
_DELETE = _PROLOGUE + '''
from haystack import connections
index = connections["default"].get_unified_index().get_index(Email)
deleted, kept = {}, {}
for name, ids in request["lists"].items():
    deleted[name] = 0
    keys = []
    for start in range(0, len(ids), 500):
        keys += Email.objects.filter(mailinglist__name=name, message_id__in=ids[start:start + 500]).values_list(
            "pk", flat=True)
    for key in keys:
        email = Email.objects.filter(pk=key).first()
        if email is None:
            continue
        index.remove_object(email)
        email.delete()
        deleted[name] += 1
for name in request.get("forget", []):
    mlist = MailingList.objects.filter(name=name).first()
    if mlist is None:
        continue
    count = Email.objects.filter(mailinglist=mlist).count()
    if count:
        kept[name] = count
    else:
        mlist.delete()
answer({"deleted": deleted, "kept": kept})
if kept:
    sys.exit(3)
'''


# {"lists": {address: [stored id...]}} -> {"indexed": {address: n}}: those messages into the search
# index, in one write (what update_index does for a list, for these messages only).
_INDEX = _PROLOGUE + '''
from haystack import connections
index = connections["default"].get_unified_index().get_index(Email)
backend = connections["default"].get_backend()
indexed = {}
for name, ids in request["lists"].items():
    emails = []
    for start in range(0, len(ids), 500):
        emails += list(Email.objects.filter(mailinglist__name=name, message_id__in=ids[start:start + 500]))
    if emails:
        backend.update(index, emails)
    indexed[name] = len(emails)
answer({"indexed": indexed})
'''


class HyperKittyError(MigrateError):
    """mailman-web failed or answered something unexpected; the message names host and list."""


# How long a resumed run or a rollback waits for imports an interrupted process left running.
IMPORT_WAIT_SECONDS = 6 * 3600

# Waits for the lock of folder $1 (at most $2 seconds); changes nothing, not even a missing
# folder, which flock would create as a file.
_WAIT_FOR_IMPORTS = 'test -d "$1" || exit 0; exec flock --exclusive --wait "$2" "$1" true'


def holding_import_lock(folder: str, argv: list[str]) -> list[str]:
    """`argv` run while holding the import folder's lock, shared with the other imports."""
    return ["flock", "--shared", folder, *argv] if folder else list(argv)


def wait_for_imports(run: Callable[[list[str]], Result], host: str, folder: str) -> None:
    """Return once no import or index update holds the import folder's lock: one an interrupted
    process started may still be running (see the module docstring)."""
    if not folder:
        return
    result = run(["sh", "-c", _WAIT_FOR_IMPORTS, "sh", folder, str(IMPORT_WAIT_SECONDS)])
    if not result.ok:
        raise HyperKittyError(f"{host}: an import or index update started by an interrupted run still holds "
                              f"{folder} after {IMPORT_WAIT_SECONDS // 3600} h: find it with `fuser -v {folder}`, "
                              "let it end or stop it, then resume or roll back again")


def mailman_web_command(host) -> list[str]:
    """The argv prefix running `mailman-web` on the lists host, from its inventory vars.

    `mailman_web_user` runs it as that user (runuser): HyperKitty's files and its database must
    stay that user's. `mailman_web_config` is its settings file (MAILMAN_WEB_CONFIG; a
    DJANGO_SETTINGS_MODULE in the environment would win over it, hence `env -u`).
    """
    argv: list[str] = []
    user = host.var("mailman_web_user", None)
    if user:
        argv += ["runuser", "-u", str(user), "--"]
    argv += ["env", "-u", "DJANGO_SETTINGS_MODULE"]
    config = host.var("mailman_web_config", None)
    if config:
        argv.append(f"MAILMAN_WEB_CONFIG={config}")
    argv.append(str(host.var("mailman_web_bin", "mailman-web")))
    return argv


def stored_id(msgid: str) -> str:
    """HyperKitty stores Message-IDs without their angle brackets."""
    return msgid[1:-1] if msgid.startswith("<") and msgid.endswith(">") else msgid


def bracketed(stored: str) -> str:
    return f"<{stored}>"


# -- running the programs --------------------------------------------------------------------

Runner = Callable[[list[str], str], Result]


def _call(run: Runner, host: str, command: list[str], code: str, request: dict,
          what: str) -> tuple[dict | None, Result]:
    result = run([*command, "shell", "-c", code], json.dumps(request))
    line = next((l for l in reversed(result.stdout.splitlines()) if l.startswith(MARK)), None)
    data = json.loads(line[len(MARK):]) if line is not None else None
    if data is None and result.ok:
        raise HyperKittyError(f"{host}: mailman-web printed no answer while {what}")
    if data is None:
        raise HyperKittyError(f"{host}: mailman-web failed while {what} (exit {result.exited}): "
                              f"{_tail(result.stderr)}")
    return data, result


def _tail(text: str, lines: int = 3) -> str:
    kept = [l for l in text.strip().splitlines() if l.strip() and not _DJANGO_NOISE.match(l)]
    return " | ".join(kept[-lines:]) or "(no output)"


# Django's system-check warnings about mailman-web's own settings, printed by every command.
_DJANGO_NOISE = re.compile(r"^(System check identified|WARNINGS:|\?: settings\.|\s*$|\d\d:\d\d:\d\d \[Q\] )")


def reader_runner(reader, host: str) -> Runner:
    """Run programs as safe reads (executor or step context)."""
    return lambda argv, stdin: reader.read(host, argv, input=stdin)


def effects_runner(effects, host: str) -> Runner:
    return lambda argv, stdin: effects.run(host, argv, input=stdin)


@dataclass
class ArchivedList:
    """What HyperKitty holds for one list."""

    address: str
    archive_policy: str
    count: int
    ids: frozenset[str] | None = None  # with angle brackets, as msgid.normalise gives them


@dataclass
class HyperKittyState:
    engine: str
    lists: dict[str, ArchivedList | None] = field(default_factory=dict)

    @property
    def single_writer(self) -> bool:
        """SQLite: one writer at a time, so imports must not overlap."""
        return "sqlite" in self.engine


def read_state(run: Runner, host: str, command: list[str], addresses: list[str], *,
               ids: bool) -> HyperKittyState:
    """HyperKitty's database engine and, per list, its archive policy, count and (with ids) ids."""
    data, _ = _call(run, host, command, _READ, {"lists": sorted(addresses), "ids": ids},
                    "reading HyperKitty's archives")
    state = HyperKittyState(data["engine"])
    for address, entry in data["lists"].items():
        if entry is None:
            state.lists[address] = None
            continue
        state.lists[address] = ArchivedList(
            address, entry["archive_policy"], entry["count"],
            frozenset(bracketed(i) for i in entry["ids"]) if "ids" in entry else None)
    return state


# -- progress --------------------------------------------------------------------------------

_TICK = re.compile(r"\r(?:([|/\\-])|(\d{1,3})%)")


class ImportProgress:
    """Counts hyperkitty_import's progress marks in its streamed stdout and moves a bar.

    One mark per message read: a spinner character when --since is given (always, here), else a
    percentage. A mark can be split between two chunks, so the last character is held back.
    """

    def __init__(self, handle, total: int):
        self.handle = handle
        self.total = total
        self.count = 0
        self._carry = ""
        self._lock = threading.Lock()

    def feed(self, text: str) -> None:
        with self._lock:
            text = self._carry + text
            self._carry = text[-1:] if text.endswith("\r") else ""
            body = text[:-1] if self._carry else text
            for match in _TICK.finditer(body):
                if match.group(1):
                    self.count += 1
                else:
                    self.count = max(self.count, int(match.group(2)) * self.total // 100)
            self.handle.update(completed=min(self.count, self.total) if self.total else self.count)


# -- operations ------------------------------------------------------------------------------

@dataclass
class _HyperKittyOperation(Operation):
    command: list[str] = field(default_factory=list)

    def _run_effects(self, effects) -> Runner:
        return effects_runner(effects, self.host)

    def _run_reader(self, reader) -> Runner:
        return reader_runner(reader, self.host)


@register
@dataclass
class ImportArchives(_HyperKittyOperation):
    """`hyperkitty_import` of prepared mbox copies into their lists, `parallel` lists at a time.

    First every list is held in HyperKitty with its archive policy: a list HyperKitty does not
    know yet is created with it (a private archive is never public, not for a moment), then
    synced from core; a list held with another policy stops the operation before any import.

    `lists` holds one entry per list: {"list", "fqdn", "archive_policy", "path", "messages",
    "watermark"}; `message_ids` is JSON {address: [ids]}: every id in the copies, which is all
    this operation can add. Its pre-state is what each list held before, so the rollback deletes
    exactly the messages that this import added, and the lists it created.
    """

    lists: list[dict] = field(default_factory=list)
    message_ids: bytes = b"{}"
    since: str = SINCE
    parallel: int = 1

    @property
    def addresses(self) -> list[str]:
        return [entry["fqdn"] for entry in self.lists]

    @property
    def import_lock(self) -> str:
        """The folder of the import copies, whose lock the imports hold."""
        folders = {posixpath.dirname(entry["path"]) for entry in self.lists}
        return folders.pop() if len(folders) == 1 else ""

    def argv(self, entry: dict) -> list[str]:
        return holding_import_lock(self.import_lock, [
            *self.command, "hyperkitty_import", "-l", names.list_address(entry["fqdn"]), "--since", self.since,
            "--ignore-mtime", entry["path"]])

    def state_key(self) -> tuple:
        return ("hyperkitty_messages", self.host, tuple(sorted(self.addresses)))

    def describe(self) -> str:
        held = ", ".join(f"{e['fqdn']} as {e['archive_policy']}" for e in self.lists)
        commands = "; ".join(f"mailman-web hyperkitty_import -l {e['fqdn']} --since {self.since} "
                             f"--ignore-mtime {e['path']} ({e['messages']} messages)" for e in self.lists)
        together = f" [{self.parallel} at a time]" if self.parallel > 1 and len(self.lists) > 1 else ""
        return f"HyperKitty: hold {held}, then {commands}{together}"

    def capture(self, reader) -> dict:
        state = read_state(self._run_reader(reader), self.host, self.command, self.addresses, ids=True)
        held = {a: sorted(found.ids) if found else None for a, found in state.lists.items()}
        # "content" is the part compared after a rollback; reports show only its digest.
        return {"content": json.dumps(held, sort_keys=True).encode(),
                "lists": {a: {"archive_policy": found.archive_policy, "count": found.count} if found else None
                          for a, found in state.lists.items()}}

    def diff(self, pre_state) -> str | None:
        if not pre_state:
            return None
        held = json.loads(pre_state["content"])
        wanted = json.loads(self.message_ids)
        parts = []
        for entry in self.lists:
            address = entry["fqdn"]
            already = len(set(wanted.get(address, [])) & set(held.get(address) or []))
            new = len(set(wanted.get(address, []))) - already
            parts.append(f"{address}: {new} new" + (f", {already} already there" if already else "")
                         + ("" if held.get(address) is not None else f"; creates the list, {entry['archive_policy']}"))
        return "; ".join(parts)

    def perform(self, effects) -> Result:
        run = self._run_effects(effects)
        held, protected = _call(run, self.host, holding_import_lock(self.import_lock, self.command), _PROTECT,
                                {"lists": {e["fqdn"]: e["archive_policy"] for e in self.lists}},
                                "holding the lists in HyperKitty with their archive policy")
        if not protected.ok:
            wrong = [f"{a} is {v['archive_policy']}" for a, v in held["lists"].items()
                     if v["archive_policy"] != next(e["archive_policy"] for e in self.lists if e["fqdn"] == a)]
            raise HyperKittyError(f"{self.host}: HyperKitty holds {', '.join(wrong)}: nothing imported. Align the "
                                  f"list on Mailman 3, then run `mailman-web mailman_sync` on {self.host}")
        outcomes: dict[str, Result] = {}
        started = time.monotonic()

        seconds: dict[str, float] = {}

        def one(entry: dict) -> Result:
            began = time.monotonic()
            try:
                with effects.progress(entry["list"], entry["messages"]) as handle:
                    progress = ImportProgress(handle, entry["messages"])
                    return effects.run(self.host, self.argv(entry), on_output=progress.feed)
            finally:
                seconds[entry["fqdn"]] = round(time.monotonic() - began, 3)

        with ThreadPoolExecutor(max_workers=max(1, self.parallel)) as pool:
            futures = {entry["fqdn"]: pool.submit(one, entry) for entry in self.lists}
            failures = []
            for address, future in futures.items():
                try:
                    outcomes[address] = future.result()
                except Exception as exc:  # one list's failure must not hide the others' outcome
                    failures.append(f"{address}: {exc}")
        failures += [f"{a}: {CommandError(self.host, r.command, r.exited, r.stderr)}"
                     for a, r in outcomes.items() if not r.ok]
        after = read_state(run, self.host, self.command, self.addresses, ids=False)
        summary = {"seconds": round(time.monotonic() - started, 3), "lists": {}}
        for entry in self.lists:
            address = entry["fqdn"]
            new = after.lists.get(address)
            result = outcomes.get(address)
            summary["lists"][address] = {
                "list": entry["list"],
                "in_copy": entry["messages"],
                "seconds": seconds.get(address),
                "created": held["lists"][address]["created"],
                "added": (new.count if new else 0) - held["lists"][address]["count"],
                "held": new.count if new else 0,
                "importer_problems": _problems(result.stderr) if result else [],
            }
        if failures:
            raise HyperKittyError(f"{self.host}: hyperkitty_import failed for " + "; ".join(failures))
        stderr = "\n".join(f"{a}: {line}" for a, s in summary["lists"].items() for line in s["importer_problems"])
        return Result(self.host, "; ".join(r.command for r in outcomes.values()), 0,
                      json.dumps(summary, sort_keys=True), stderr, time.monotonic() - started)

    def inverse(self, pre_state):
        held = json.loads(pre_state["content"]) if pre_state else {}
        wanted = json.loads(self.message_ids)
        added = {address: sorted(set(ids) - set(held.get(address) or []))
                 for address, ids in wanted.items()}
        created = sorted(a for a in self.addresses if held.get(a) is None)
        return RemoveImportedMessages(self.host, list(self.command),
                                      json.dumps(added, sort_keys=True).encode(), created, self.import_lock)


def _problems(stderr: str) -> list[str]:
    """hyperkitty_import's complaints about single messages (it skips them and goes on)."""
    return [line.strip() for line in stderr.splitlines()
            if line.strip() and not _DJANGO_NOISE.match(line)]


@register
@dataclass
class RemoveImportedMessages(_HyperKittyOperation):
    """Delete given messages from HyperKitty and its search index, then the lists in `forget`
    once empty (an import's undo: what it added, and the lists it created)."""

    message_ids: bytes = b"{}"
    forget: list[str] = field(default_factory=list)
    import_lock: str = ""  # the folder whose lock the import held: wait for it before deleting

    def describe(self) -> str:
        ids = json.loads(self.message_ids)
        text = "HyperKitty: delete the messages an import added: " + ", ".join(
            f"{len(v)} from {k}" for k, v in sorted(ids.items()))
        return text + (f"; then the lists it created: {', '.join(self.forget)}" if self.forget else "")

    def perform(self, effects) -> Result:
        wait_for_imports(lambda argv: effects.run(self.host, argv), self.host, self.import_lock)
        ids = {address: [stored_id(i) for i in values] for address, values in json.loads(self.message_ids).items()}
        command = holding_import_lock(self.import_lock, self.command)
        data, result = _call(self._run_effects(effects), self.host, command, _DELETE,
                             {"lists": ids, "forget": self.forget}, "deleting imported messages")
        if data.get("kept"):
            raise HyperKittyError(f"{self.host}: kept list(s) holding messages no import of this run added: "
                                  + ", ".join(f"{a} ({n})" for a, n in data["kept"].items()))
        return result.check()


@register
@dataclass
class UpdateSearchIndex(_HyperKittyOperation):
    """`update_index_one_list`: hyperkitty_import leaves the search index alone.

    Nothing to undo: the index follows the messages, and deleting them removes their entries.
    """

    fqdn_listname: str = ""
    import_lock: str = ""  # the import folder, whose lock it holds while it runs
    repeatable: ClassVar[bool] = True

    def describe(self) -> str:
        return f"mailman-web update_index_one_list {self.fqdn_listname}"

    def perform(self, effects) -> Result:
        return effects.run(self.host, holding_import_lock(
            self.import_lock, [*self.command, "update_index_one_list",
                               names.list_address(self.fqdn_listname)])).check()


@register
@dataclass
class IndexMessages(_HyperKittyOperation):
    """Add given messages to HyperKitty's search index (after a delta: only what it imported).

    Nothing to undo: deleting the messages removes their entries.
    """

    message_ids: bytes = b"{}"
    import_lock: str = ""  # the import folder, whose lock it holds while it runs
    repeatable: ClassVar[bool] = True

    def describe(self) -> str:
        ids = json.loads(self.message_ids)
        return "HyperKitty: add to the search index the new messages: " + ", ".join(
            f"{len(v)} of {k}" for k, v in sorted(ids.items()))

    def perform(self, effects) -> Result:
        ids = {address: [stored_id(i) for i in values] for address, values in json.loads(self.message_ids).items()}
        _, result = _call(self._run_effects(effects), self.host, holding_import_lock(self.import_lock, self.command),
                          _INDEX, {"lists": ids}, "indexing the imported messages")
        return result.check()


@register
@dataclass
class DiscardImportCopy(Operation):
    """Remove the mbox copy an import read. Not restored on rollback: it was only a copy."""

    path: str = ""
    repeatable: ClassVar[bool] = True

    def state_key(self) -> tuple:
        return ("file", self.host, self.path)

    def describe(self) -> str:
        return f"remove the import copy {self.path}"

    def capture(self, reader) -> Any:
        return {"exists": reader.stat_mode(self.host, self.path) is not None}

    def perform(self, effects) -> None:
        effects.remove_file(self.host, self.path)
