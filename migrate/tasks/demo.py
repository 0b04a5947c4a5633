"""Tasks of the demonstration step (a maintenance notice on hosts)."""

from invoke import Collection, task

from ..demo.steps import DEFAULT_MESSAGE, MaintenanceNotice
from ._common import FLAG_HELP, finish, guarded, load_inventory, runner


def _step(message: str, host: list[str]) -> MaintenanceNotice:
    return MaintenanceNotice({"message": message, "hosts": list(host or [])})


@task(iterable=["host"], help={
    "message": "text of the notice (default: a standard maintenance text)",
    "host": "host to mark (repeatable; default: every host of the inventory)",
    **FLAG_HELP,
})
@guarded
def notice(c, message=DEFAULT_MESSAGE, host=None, inventory=None, dry_run=False, yes=False,
           reason="", json=False):
    """Place a maintenance notice file on hosts (reversible; a rehearsal of the lifecycle)."""
    inv = load_inventory(c, inventory)
    run = runner(c, inv, dry_run=dry_run, yes=yes, reason=reason, json=json)
    finish(run.run([_step(message, host)]), run.reporter)


@task(iterable=["host"], help={
    "message": "the notice text expected on the hosts",
    "host": "host to check (repeatable; default: every host)",
    "inventory": FLAG_HELP["inventory"], "json": FLAG_HELP["json"],
})
@guarded
def verify(c, message=DEFAULT_MESSAGE, host=None, inventory=None, json=False):
    """Check (read-only) that the maintenance notice is in place on hosts."""
    inv = load_inventory(c, inventory)
    run = runner(c, inv, dry_run=True, yes=False, reason="", json=json)
    code, results = run.verify([_step(message, host)])
    if json:
        run.reporter.emit_json([{"step": r.step, "ok": r.ok, "checks": [c.to_dict() for c in r.checks]}
                                for r in results])
    if code:
        from invoke import Exit

        raise Exit(code=int(code))


ns = Collection("demo", notice, verify)
