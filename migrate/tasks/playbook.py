"""Tasks over playbooks: list them, run one, verify one."""

from invoke import Collection, Exit, task

from ..core.paths import PROJECT_ROOT
from ..core.playbook import find_playbook, load_playbook
from ..core.report import Reporter
from ._common import FLAG_HELP, finish, guarded, load_inventory, runner

PLAYBOOKS = PROJECT_ROOT / "playbooks"
NAME_HELP = "playbook file, or the name of one in playbooks/"


@task(help={"json": FLAG_HELP["json"]})
@guarded
def list_(c, json=False):
    """List the playbooks in playbooks/ with their steps."""
    reporter = Reporter(json_mode=json)
    books = [load_playbook(p) for p in sorted(PLAYBOOKS.glob("*.y*ml"))]
    rows = [{"name": b.name, "file": b.path.name, "description": b.description,
             "steps": [s.id or s.ref() for s in b.steps]} for b in books]
    if json:
        reporter.emit_json(rows)
    else:
        reporter.table("playbooks", ["name", "file", "steps", "description"],
                       [(r["name"], r["file"], r["steps"], r["description"]) for r in rows])


@task(help={"name": NAME_HELP, **FLAG_HELP})
@guarded
def run(c, name, inventory=None, dry_run=False, yes=False, reason="", json=False):
    """Run a playbook's steps in one journaled run (plan, confirm, apply, verify)."""
    book = load_playbook(find_playbook(name, PLAYBOOKS))
    inv = load_inventory(c, inventory)
    r = runner(c, inv, dry_run=dry_run, yes=yes, reason=reason, json=json)
    finish(r.run(book.steps), r.reporter)


@task(help={"name": NAME_HELP, "inventory": FLAG_HELP["inventory"], "json": FLAG_HELP["json"]})
@guarded
def verify(c, name, inventory=None, json=False):
    """Run a playbook's read-only verifications; exit 10 if any check fails."""
    book = load_playbook(find_playbook(name, PLAYBOOKS))
    inv = load_inventory(c, inventory)
    r = runner(c, inv, dry_run=True, yes=False, reason="", json=json)
    code, results = r.verify(book.steps)
    if json:
        r.reporter.emit_json([{"step": v.step, "ok": v.ok, "checks": [x.to_dict() for x in v.checks]}
                              for v in results])
    if code:
        raise Exit(code=int(code))


ns = Collection("playbook")
ns.add_task(list_, name="list")
ns.add_task(run)
ns.add_task(verify)
