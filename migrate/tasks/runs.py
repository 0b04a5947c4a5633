"""Tasks over run journals: list, show, resume, roll back, unlock."""

from invoke import Collection, task

from ..core.report import Reporter
from ._common import FLAG_HELP, finish, guarded, load_inventory, runner, state_dir

RUN_HELP = "run id, a unique prefix of one, or `last`"


@task(help={"json": FLAG_HELP["json"]})
@guarded
def list_(c, json=False):
    """List the runs in the state folder, oldest first."""
    reporter = Reporter(json_mode=json)
    runs = state_dir(c).list_runs()
    rows = []
    for r in runs:
        done = sum(s.status == "done" for s in r.steps)
        rows.append({"run_id": r.run_id, "started": r.header.get("at", ""), "operator": r.header.get("operator"),
                     "dry_run": r.dry_run, "status": r.status, "steps": f"{done}/{len(r.steps)}",
                     "reason": r.header.get("reason", ""), "inventory": r.inventory})
    if json:
        reporter.emit_json(rows)
        return
    if not rows:
        reporter.info(f"no runs in {state_dir(c).runs}")
        return
    reporter.table("runs", ["run", "started", "operator", "mode", "status", "steps", "reason"],
                   [(r["run_id"], r["started"], r["operator"], "dry run" if r["dry_run"] else "apply",
                     r["status"], r["steps"], r["reason"]) for r in rows])


@task(help={"run_id": RUN_HELP, "json": FLAG_HELP["json"]})
@guarded
def show(c, run_id, json=False):
    """Show one run: header, steps, operations with pre-state and outcome."""
    reporter = Reporter(json_mode=json)
    state = state_dir(c).find_run(run_id)
    if json:
        reporter.emit_json({
            "run_id": state.run_id, "status": state.status, "header": state.header,
            "ended": state.ended_at, "exit_code": state.exit_code,
            "steps": [{"index": s.index, "id": s.id, "title": s.title, "params": s.params, "status": s.status,
                       "verification": s.verification, "error": s.error,
                       "ops": [{"op": o.op, "started": o.started, "ended": o.ended, "ok": o.ok,
                                "error": o.error, "rolled_back": o.rolled_back} for o in s.ops]}
                      for s in state.steps]})
        return
    h = state.header
    reporter.heading(f"run {state.run_id}: {state.status}")
    reporter.info(f"started {h.get('at')} by {h.get('operator')}; ended {state.ended_at or '-'}; "
                  f"exit {state.exit_code if state.exit_code is not None else '-'}")
    reporter.info(f"inventory {h.get('inventory')} (sha256 {h.get('inventory_sha256', '')[:12]}); "
                  f"reason: {h.get('reason') or '-'}; {'dry run' if state.dry_run else 'apply'}")
    reporter.info(f"journal {state.path}")
    for s in state.steps:
        rows = []
        for o in s.ops:
            outcome = ("rolled back" if o.rolled_back else "ok" if o.ok else
                       "FAILED" if o.ok is False else "interrupted" if o.started else "not started")
            rows.append((o.index + 1, o.op.get("host"), _op_text(o.op), outcome, o.error))
        reporter.table(f"step {s.index + 1}: {s.title or s.id} [{s.status}]",
                       ["#", "host", "operation", "outcome", "error"], rows)


def _op_text(op: dict) -> str:
    from ..core.ops import from_dict

    try:
        return from_dict(op).describe()
    except (ValueError, TypeError):
        return op.get("type", "?")


@task(help={"run_id": RUN_HELP, **FLAG_HELP})
@guarded
def resume(c, run_id, inventory=None, dry_run=False, yes=False, reason="", json=False):
    """Continue an interrupted or failed run after its last completed step."""
    inv = load_inventory(c, inventory)
    run = runner(c, inv, dry_run=dry_run, yes=yes, reason=reason, json=json)
    finish(run.resume(run_id), run.reporter)


@task(help={"run_id": RUN_HELP, **FLAG_HELP})
@guarded
def rollback(c, run_id, inventory=None, dry_run=False, yes=False, reason="", json=False):
    """Undo every applied step of a run, last first, from the journal's captured pre-state."""
    inv = load_inventory(c, inventory)
    run = runner(c, inv, dry_run=dry_run, yes=yes, reason=reason, json=json)
    finish(run.rollback(run_id), run.reporter)


@task(help={"inventory": FLAG_HELP["inventory"],
            "force": "break the lock even if its holder still runs (only when you are sure)"})
@guarded
def unlock(c, inventory=None, force=False):
    """Break the inventory's lock left by a dead run (refuses while the holder lives)."""
    reporter = Reporter()
    lock = state_dir(c).lock(load_inventory(c, inventory), run_id="-")
    removed = lock.break_stale(force=force)
    if removed is None:
        reporter.info("no lock is held")
    elif removed.problem:
        reporter.ok(f"removed {removed.describe()}")
    else:
        reporter.ok(f"removed the lock of {removed.describe()}")


ns = Collection("runs")
ns.add_task(list_, name="list")
ns.add_task(show)
ns.add_task(resume)
ns.add_task(rollback)
ns.add_task(unlock)
