"""Tasks moving Mailman 2 lists to Mailman 3: survey, migrate, verify, sync."""

from __future__ import annotations

import json as jsonlib

from invoke import Collection, Exit, task

from ..core.errors import MigrateError
from ..core.executor import Executor
from ..core.journal import load_run
from ..core.report import Reporter, save_json
from ..core.transport import Connections
from ..mailman import convert
from ..mailman.steps import MigrateList, SyncList, legacy_host
from ..mailman.survey import list_folders, survey
from ._common import FLAG_HELP, finish, guarded, load_inventory, runner, state_dir

SELECT_HELP = {
    "list": "a Mailman 2 list name (repeatable)",
    "all": "every list of the Mailman 2 host",
    "exclude": "with --all: leave this list out (repeatable)",
}


def _select(executor, inventory, names, all_, exclude, order: str = "name") -> list[str]:
    if bool(names) == bool(all_):
        raise Exit("error: name lists with --list L (repeatable) or pass --all", code=2)
    if not all_:
        return list(names)
    folders = list_folders(executor, inventory)
    chosen = [n for n in sorted(folders) if n not in set(exclude or [])]
    if order == "size":
        # Small lists first: problems show up early and the big ones do not hold up the rest.
        chosen.sort(key=lambda n: (folders[n], n))
    elif order != "name":
        raise Exit("error: --order is `name` or `size`", code=2)
    return chosen


@task(help={"inventory": FLAG_HELP["inventory"], "json": FLAG_HELP["json"],
            "list": "only this list (repeatable; default: all)"}, iterable=["list_"])
@guarded
def lists(c, inventory=None, json=False, list_=None):
    """Survey the Mailman 2 lists (read-only): rosters, requests, archive, presence on Mailman 3."""
    inv = load_inventory(c, inventory)
    reporter = Reporter(json_mode=json)
    with Connections(inv) as connections:
        rows = survey(Executor(connections), inv, list_ or None)
    if json:
        reporter.emit_json([r.to_dict() for r in rows])
    else:
        reporter.table(f"Mailman 2 lists on {legacy_host(inv).name}",
                       ["list", "members", "digest", "nomail", "owners", "mods", "nonmembers", "bans",
                        "held", "pending", "charset", "archive", "MB", "messages", "on MM3"],
                       [(r.name, r.members, r.digest, r.nomail, r.owners, r.moderators, r.nonmembers, r.bans,
                         r.held, r.pending, r.charset, r.archive_policy, f"{r.archive_bytes / 1e6:.1f}",
                         r.archive_messages, "yes" if r.on_mailman3 else "no") for r in rows])
        for r in rows:
            if r.error:
                reporter.error(f"{r.name}: {r.error}")
    if any(r.error for r in rows):
        raise Exit(code=1)


@task(iterable=["list_", "exclude"], help={
    **SELECT_HELP,
    "order": "with --all: `name` (default) or `size` (smallest archive first)",
    "allow_pending": "migrate lists with held posts or pending requests anyway",
    "resync": "import again into lists that already exist on Mailman 3",
    **FLAG_HELP,
})
@guarded
def migrate(c, list_=None, all=False, exclude=None, order="name", allow_pending=False, resync=False,
            inventory=None, dry_run=False, yes=False, reason="", json=False):
    """Migrate lists to Mailman 3 (create, import21, fix texts), then verify; one journaled run."""
    inv = load_inventory(c, inventory)
    with Connections(inv) as connections:
        names = _select(Executor(connections), inv, list_, all, exclude, order)
    steps = [MigrateList({"list": n, "allow_pending": allow_pending, "resync": resync}) for n in names]
    run = runner(c, inv, dry_run=dry_run, yes=yes, reason=reason, json=json)
    run.keep_going = True
    outcome = run.run(steps)
    write_conversion_reports(c, outcome.run_id, run.reporter)
    finish(outcome, run.reporter)


def write_conversion_reports(c, run_id: str, reporter: Reporter) -> None:
    """Save a conversion report per list with the run, and show their totals."""
    run_dir = state_dir(c).run_dir(run_id)
    if not (run_dir / "journal.jsonl").exists():
        return
    state = load_run(run_dir)
    folder = run_dir / "reports"
    rows = []
    for step in state.steps:
        if not step.id == MigrateList.id:
            continue
        name = step.params["list"]
        messages = _importer_messages(run_dir, step.index)
        report = _report_for(c, name, state)
        if report is None:
            continue
        data = report.to_dict()
        data["importer_messages"] = messages
        data["step_status"] = step.status
        folder.mkdir(exist_ok=True)
        save_json(folder / f"{name}.json", data)
        counts = {k: len(data.get(k) or []) for k in ("converted", "renamed", "dropped", "lossy")}
        rows.append((name, step.status, counts["converted"], counts["renamed"], counts["dropped"],
                     counts["lossy"], len(messages)))
    if rows and not reporter.json_mode:
        reporter.table(f"conversion reports (saved in {folder})",
                       ["list", "status", "converted", "renamed", "dropped", "lossy", "import21 messages"], rows)


def _importer_messages(run_dir, step_index: int) -> list[str]:
    """import21's stderr lines, as journaled with the operation's end."""
    lines = []
    for raw in (run_dir / "journal.jsonl").read_text().splitlines():
        try:
            event = jsonlib.loads(raw)
        except jsonlib.JSONDecodeError:
            continue
        if event.get("event") == "op_end" and event.get("step") == step_index and event.get("stderr"):
            lines += [line for line in event["stderr"].splitlines() if line.strip()]
    return lines


def _report_for(c, name: str, state):
    """The conversion report from the list's Mailman 2 configuration (read again, read-only)."""
    inv = load_inventory(c, state.inventory or None)
    try:
        with Connections(inv) as connections:
            step = MigrateList({"list": name})
            from ..core.step import StepContext

            config = step.config(StepContext(inv, Executor(connections)))
    except MigrateError:
        return None
    return convert.conversion_report(config, list_name=name)


@task(iterable=["list_", "exclude"], help={**SELECT_HELP, "inventory": FLAG_HELP["inventory"],
                                          "json": FLAG_HELP["json"]})
@guarded
def verify(c, list_=None, all=False, exclude=None, inventory=None, json=False):
    """Compare Mailman 2 and Mailman 3 per list (read-only); exit 10 on unexpected differences."""
    inv = load_inventory(c, inventory)
    with Connections(inv) as connections:
        names = _select(Executor(connections), inv, list_, all, exclude)
    run = runner(c, inv, dry_run=True, yes=False, reason="", json=json)
    code, results = run.verify([MigrateList({"list": n}) for n in names])
    failed = [r.step for r in results if not r.ok]
    if json:
        run.reporter.emit_json([{"list": r.step, "ok": r.ok, "checks": [x.to_dict() for x in r.checks]}
                                for r in results])
    elif failed:
        run.reporter.error(f"{len(failed)} of {len(results)} list(s) differ: {', '.join(failed)}")
    else:
        run.reporter.ok(f"{len(results)} list(s): no unexpected difference")
    if code:
        raise Exit(code=int(code))


@task(iterable=["list_", "exclude"], help={**SELECT_HELP, **FLAG_HELP})
@guarded
def sync(c, list_=None, all=False, exclude=None, inventory=None, dry_run=False, yes=False, reason="",
         json=False):
    """Bring Mailman 3 rosters in line with Mailman 2 now (no welcome/goodbye mail); idempotent."""
    inv = load_inventory(c, inventory)
    with Connections(inv) as connections:
        names = _select(Executor(connections), inv, list_, all, exclude)
    run = runner(c, inv, dry_run=dry_run, yes=yes, reason=reason, json=json)
    run.keep_going = True
    finish(run.run([SyncList({"list": n}) for n in names]), run.reporter)


ns = Collection("mailman", lists, migrate, verify, sync)
