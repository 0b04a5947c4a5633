"""Tasks moving Mailman 2 archives to HyperKitty: check, prepare, import (prestage, delta), verify."""

from __future__ import annotations

import json as jsonlib
import threading
import time

from invoke import Collection, Exit, task
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from ..archives.hyperkitty import mailman_web_command, read_state, reader_runner
from ..archives.missing import importer_lines
from ..archives.steps import (
    ImportArchive, PrepareArchive, compare_archives, find_watermarks, mbox_path, read_archive_file, scan_bytes,
)
from ..core.errors import MigrateError
from ..core.executor import Executor, ProgressHandle, show_progress
from ..core.report import Reporter, save_json
from ..core.runner import ExitCode
from ..core.step import StepContext
from ..core.transport import Connections
from ..mailman.steps import legacy_host, lists_host
from ..mailman.survey import list_folders
from ._common import FLAG_HELP, guarded, load_inventory, runner, state_dir

SELECT_HELP = {
    "list": "a Mailman 2 list name (repeatable)",
    "all": "every list of the Mailman 2 host",
    "exclude": "with --all: leave this list out (repeatable)",
}


def _select(executor, inventory, names, all_, exclude) -> tuple[list[str], dict[str, int]]:
    """The chosen list names, and every list's mbox size in bytes from the legacy host."""
    if bool(names) == bool(all_):
        raise Exit("error: name lists with --list L (repeatable) or pass --all", code=2)
    folders = list_folders(executor, inventory)
    if not all_:
        return list(names), folders
    return [n for n in sorted(folders) if n not in set(exclude or [])], folders


# -- check -------------------------------------------------------------------------------------

@task(iterable=["list_", "exclude"], help={**SELECT_HELP, "inventory": FLAG_HELP["inventory"],
                                          "json": FLAG_HELP["json"]})
@guarded
def check(c, list_=None, all=False, exclude=None, inventory=None, json=False):
    """Lint each list's mbox (read-only): messages and problems by kind; nothing is changed."""
    inv = load_inventory(c, inventory)
    reporter = Reporter(json_mode=json)
    reports, errors = {}, {}
    with Connections(inv) as connections:
        executor = Executor(connections)
        names, _ = _select(executor, inv, list_, all, exclude)
        for name in names:
            try:
                data = read_archive_file(executor, inv, mbox_path(inv, name))
            except MigrateError as exc:  # a folder name that is no list's: reported, the rest goes on
                errors[name] = str(exc)
                continue
            if data is None:
                errors[name] = "no archive mbox (archiving off, or never archived)"
                continue
            reports[name] = scan_bytes(data)
    if json:
        reporter.emit_json({"lists": {name: {**r.to_json(), "path": mbox_path(inv, name)}
                                      for name, r in reports.items()},
                            "no_mbox": errors})
    else:
        reporter.table(f"mbox archives on {legacy_host(inv).name} (read-only lint)",
                       ["list", "messages", "MB", "problems"],
                       [(name, r.messages, f"{r.size / 1e6:.2f}",
                         ", ".join(f"{k}={v}" for k, v in r.counts.items() if v) or "none")
                        for name, r in reports.items()])
        totals = {}
        for r in reports.values():
            for kind, count in r.counts.items():
                totals[kind] = totals.get(kind, 0) + count
        reporter.table("problems over all lists (`archives.prepare` fixes all but undecodable headers, "
                       "non-ASCII senders and dates)",
                       ["problem", "count"], [(k, v) for k, v in totals.items() if v])
        for name, why in errors.items():
            reporter.warn(f"{name}: {why}")


# -- prepare -------------------------------------------------------------------------------------

@task(iterable=["list_", "exclude"], help={**SELECT_HELP, **FLAG_HELP})
@guarded
def prepare(c, list_=None, all=False, exclude=None, inventory=None, dry_run=False, yes=False, reason="",
            json=False):
    """Write each cleaned mbox next to the original as <list>.mbox.prepared; reports in the run dir."""
    inv = load_inventory(c, inventory)
    with Connections(inv) as connections:
        names, folders = _select(Executor(connections), inv, list_, all, exclude)
    chosen = [n for n in names if folders.get(n, 0) > 0 or n not in folders]
    run = runner(c, inv, dry_run=dry_run, yes=yes, reason=reason, json=json)
    for name in sorted(set(names) - set(chosen)):
        run.reporter.info(f"{name}: no archive to prepare (empty or no mbox)")
    steps = [PrepareArchive({"list": n}) for n in chosen]
    run.keep_going = True
    outcome = run.run(steps)
    rows = _save_prepare_reports(c, outcome.run_id, steps)
    if rows and not json:
        run.reporter.table(f"prepare reports (saved in {state_dir(c).run_dir(outcome.run_id) / 'reports'})",
                           ["list", "messages", "escaped From", "normalised ids", "assigned ids",
                            "encoded headers", "unresolved", "duplicate ids"], rows)
    _finish(outcome, run.reporter)


def _save_prepare_reports(c, run_id: str, steps: list[PrepareArchive]) -> list[tuple]:
    folder = state_dir(c).run_dir(run_id) / "reports"
    if not folder.parent.exists():
        return []
    rows = []
    for step in steps:
        if step.result is None:
            continue
        folder.mkdir(exist_ok=True)
        data = step.result.to_json()
        save_json(folder / f"{step.params.list}.prepare.json", data, indent=1)
        counts = data["counts"]
        rows.append((step.params.list, data["messages"], counts["escaped_from_line"],
                     counts["normalised_message_id"], counts["assigned_message_id"], counts["encoded_header"],
                     counts["undecodable_header"], len(data["duplicates"])))
    return rows


# -- import ------------------------------------------------------------------------------------

@task(name="import", iterable=["list_", "exclude"], help={
    **SELECT_HELP,
    "prestage": "import each whole prepared mbox (days before the window) and record a watermark",
    "delta": "import only what arrived after the last watermark (inside the window)",
    "parallel": "lists imported at once (default 2; 1 when HyperKitty's database is SQLite)",
    "batch": "lists per step (default 4): fewer mailman-web start-ups; a list that fails rolls back "
             "the other lists of its step",
    **FLAG_HELP,
})
@guarded
def import_(c, list_=None, all=False, exclude=None, prestage=False, delta=False, parallel=2, batch=4,
            inventory=None, dry_run=False, yes=False, reason="", json=False):
    """Import archives into HyperKitty (--prestage or --delta), update the search index, verify."""
    if prestage == delta:
        raise Exit("error: pass either --prestage or --delta", code=2)
    mode = "prestage" if prestage else "delta"
    inv = load_inventory(c, inventory)
    run = runner(c, inv, dry_run=dry_run, yes=yes, reason=reason, json=json)
    with Connections(inv) as connections:
        executor = Executor(connections)
        names, folders = _select(executor, inv, list_, all, exclude)
        host = lists_host(inv)
        engine = read_state(reader_runner(executor, host.name), host.name, mailman_web_command(host), [],
                            ids=False)
    parallel = max(1, int(parallel))
    if engine.single_writer and parallel > 1:
        run.reporter.warn(f"HyperKitty's database is {engine.engine}: it takes one writer at a time, "
                          "so lists are imported one after the other")
        parallel = 1
    chosen = [n for n in names if folders.get(n, 0) > 0 or n not in folders]
    for name in sorted(set(names) - set(chosen)):
        run.reporter.info(f"{name}: no archive to import (empty or no mbox)")
    base: dict = {}
    refused = []
    if mode == "delta":
        watermarks, problems = find_watermarks(state_dir(c), chosen)
        for name, problem in problems.items():
            run.reporter.error(problem)
            refused.append(name)
        base = {name: mark.to_dict() for name, mark in watermarks.items()}
        unchanged = [n for n in chosen if n in watermarks and folders.get(n, 0) == watermarks[n].offset]
        for name in unchanged:
            run.reporter.info(f"{name}: nothing new since run {watermarks[name].run}")
        chosen = [n for n in chosen if n not in problems and n not in unchanged]
    # Biggest first, and lists of similar size together: parallel imports of a step end together.
    chosen.sort(key=lambda n: (-folders.get(n, 0), n))
    size = max(1, int(batch), parallel)
    steps = [ImportArchive({"lists": group, "mode": mode, "parallel": parallel,
                            "base": {n: base[n] for n in group if n in base}})
             for group in (chosen[i:i + size] for i in range(0, len(chosen), size))]
    run.keep_going = True
    with show_progress(ImportBars(run.reporter)):
        outcome = run.run(steps)
    results = import_results(state_dir(c).run_dir(outcome.run_id))
    if results and not json:
        run.reporter.table("imported", ["list", "in the copy", "added", "now in HyperKitty", "seconds",
                                        "messages/s", "importer problems"],
                           [(r["list"], r["in_copy"], r["added"], r["held"], r["seconds"],
                             f"{r['in_copy'] / r['seconds']:.1f}" if r.get("seconds") else "",
                             len(r["importer_problems"])) for r in results])
    if refused and outcome.exit_code == ExitCode.OK:
        outcome.exit_code, outcome.status = ExitCode.REFUSED, "partial"
    _finish(outcome, run.reporter, {"lists": results})


def import_results(run_dir) -> list[dict]:
    """What each list's hyperkitty_import did in a run, from the journal (ImportArchives' output)."""
    path = run_dir / "journal.jsonl"
    if not path.exists():
        return []
    found = []
    for line in path.read_text().splitlines():
        try:
            event = jsonlib.loads(line)
        except jsonlib.JSONDecodeError:
            continue
        if event.get("event") != "op_end" or not event.get("stdout", "").startswith("{"):
            continue
        try:
            summary = jsonlib.loads(event["stdout"])
        except jsonlib.JSONDecodeError:
            continue
        for address, data in (summary.get("lists") or {}).items():
            found.append({"fqdn": address, **data})
    return found


class _RateColumn(ProgressColumn):
    """Messages per second, as rich measures it over the last seconds."""

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:5.1f} msg/s" if speed else "    – msg/s")


class ImportBars:
    """Shows hyperkitty_import's progress per list: a bar with messages/s on a terminal, a few
    plain lines otherwise (logs, pipes)."""

    def __init__(self, reporter: Reporter):
        self.reporter = reporter
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._open = 0

    def __call__(self, description: str, total: float | None) -> ProgressHandle:
        if self.reporter.console.is_terminal:
            return _Bar(self, description, total)
        return _Lines(self.reporter, description, total)

    def _join(self) -> Progress:
        with self._lock:
            if self._progress is None:
                self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                          _RateColumn(), TimeElapsedColumn(), console=self.reporter.console)
                self._progress.start()
            self._open += 1
            return self._progress

    def _leave(self) -> None:
        with self._lock:
            self._open -= 1
            if self._open == 0 and self._progress is not None:
                self._progress.stop()
                self._progress = None


class _Bar(ProgressHandle):
    def __init__(self, bars: ImportBars, description: str, total: float | None):
        self.bars = bars
        self.progress = bars._join()
        self.task = self.progress.add_task(description, total=total)

    def advance(self, amount: float = 1) -> None:
        self.progress.advance(self.task, amount)

    def update(self, *, completed: float | None = None, total: float | None = None) -> None:
        self.progress.update(self.task, completed=completed, total=total)

    def close(self) -> None:
        self.progress.stop_task(self.task)
        self.bars._leave()


class _Lines(ProgressHandle):
    """A line when the import starts, at each quarter, and at the end."""

    def __init__(self, reporter: Reporter, description: str, total: float | None):
        self.reporter, self.description, self.total = reporter, description, total
        self.completed = 0.0
        self.started = time.monotonic()
        self._quarter = 0
        reporter.info(f"{description}: importing {int(total) if total else '?'} message(s)")

    def advance(self, amount: float = 1) -> None:
        self.update(completed=self.completed + amount)

    def update(self, *, completed: float | None = None, total: float | None = None) -> None:
        self.total = total if total is not None else self.total
        self.completed = completed if completed is not None else self.completed
        if self.total:
            quarter = int(4 * self.completed / self.total)
            if 0 < quarter < 4 and quarter > self._quarter:
                self._quarter = quarter
                self.reporter.info(f"{self.description}: {int(self.completed)}/{int(self.total)} "
                                   f"({self._rate():.1f} msg/s)")

    def close(self) -> None:
        self.reporter.info(f"{self.description}: {int(self.completed)} message(s) read in "
                           f"{time.monotonic() - self.started:.1f} s ({self._rate():.1f} msg/s)")

    def _rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.completed / elapsed if elapsed > 0 else 0.0


# -- verify ------------------------------------------------------------------------------------

@task(iterable=["list_", "exclude"], help={**SELECT_HELP, "inventory": FLAG_HELP["inventory"],
                                          "json": FLAG_HELP["json"]})
@guarded
def verify(c, list_=None, all=False, exclude=None, inventory=None, json=False):
    """Compare mboxes with HyperKitty by count and Message-ID (read-only); exit 10 if unexplained."""
    inv = load_inventory(c, inventory)
    reporter = Reporter(json_mode=json)
    with Connections(inv) as connections:
        executor = Executor(connections)
        names, _ = _select(executor, inv, list_, all, exclude)
        watermarks, problems = find_watermarks(state_dir(c), names)
        comparisons = compare_archives(StepContext(inv, executor), names, watermarks,
                                       importer_problems=importer_lines(state_dir(c)))
    for problem in problems.values():
        reporter.warn(problem)
    failed = [c.list for c in comparisons if not c.ok]
    if json:
        reporter.emit_json({"ok": not failed, "lists": [c.to_dict() for c in comparisons]})
    else:
        reporter.table("archives: Mailman 2 mbox against HyperKitty",
                       ["list", "policy", "mbox", "distinct ids", "HyperKitty", "duplicates", "missing", "extra",
                        "unexplained", ""],
                       [(c.list, c.archive_policy if c.policy_ok else f"{c.archive_policy} ≠ {c.hyperkitty_policy}",
                         c.mbox_messages, c.mbox_ids, c.hyperkitty_messages,
                         sum(len(v) - 1 for v in c.duplicates.values()), len(c.missing), len(c.extra),
                         len(c.unexplained), "ok" if c.ok else "DIFFERS")
                        for c in comparisons])
        details = [(c.list, d.side, d.message_id, "" if d.index is None else d.index, d.reason or "unknown",
                    "explained" if d.explained else "UNEXPLAINED")
                   for c in comparisons for d in c.missing + c.extra]
        details += [(c.list, "duplicate", msgid, ", ".join(str(i) for i in where),
                     "the mbox holds it more than once; HyperKitty keeps the first", "explained")
                    for c in comparisons for msgid, where in c.duplicates.items()]
        if details:
            reporter.table("differences", ["list", "side", "Message-ID", "mbox #", "reason", ""], details)
        for c in comparisons:
            if c.error:
                reporter.error(f"{c.list}: {c.error}")
        if failed:
            reporter.error(f"{len(failed)} of {len(comparisons)} list(s) differ: {', '.join(failed)}")
        else:
            reporter.ok(f"{len(comparisons)} list(s): no unexplained difference")
    if failed:
        raise Exit(code=int(ExitCode.VERIFY_FAILED))


def _finish(outcome, reporter: Reporter, extra: dict | None = None) -> None:
    if reporter.json_mode:
        reporter.emit_json({**outcome.to_dict(), **(extra or {})})
    if outcome.exit_code:
        raise Exit(code=int(outcome.exit_code))


ns = Collection("archives", check, prepare, import_, verify)

try:
    from .archives_redirects import redirects
except ModuleNotFoundError as exc:
    # The redirect task lives in its own module, which may not be there yet; any other missing
    # module is a real error.
    if exc.name != f"{__package__}.archives_redirects":
        raise
else:
    ns.add_task(redirects)
