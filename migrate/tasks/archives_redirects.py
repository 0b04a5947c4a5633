"""The task installing the redirects from Mailman 2's URLs (mounted as `archives.redirects`)."""

from __future__ import annotations

from invoke import Exit, task

from ..archives.redirect_steps import InstallRedirects
from ..core.report import Reporter, save_json
from ._common import FLAG_HELP, guarded, load_inventory, runner, state_dir

HELP = {
    "list": "a Mailman 2 list the map covers (repeatable); default: every list",
    "all": "every list of the Mailman 2 host (the default)",
    "exclude": "leave this list out of the map (repeatable)",
    "verify": "change nothing: request the old URLs through the web server and check where they land",
    "sample": "verify N message redirects picked at random (reproducibly); 0 (default): every one",
    "apache": "install for Apache too when the web host has apache_* settings (default); --no-apache skips it",
    **FLAG_HELP,
}


@task(iterable=["list_", "exclude"], help=HELP)
@guarded
def redirects(c, list_=None, all=False, exclude=None, verify=False, sample=0, apache=True, inventory=None,
              dry_run=False, yes=False, reason="", json=False):
    """Redirect old pipermail and Mailman 2 web UI URLs to HyperKitty and Postorius on the web host."""
    if list_ and all:
        raise Exit("error: pass --list L (repeatable) or --all, not both", code=2)
    if int(sample) < 0:
        raise Exit("error: --sample must be 0 (every message) or more", code=2)
    inv = load_inventory(c, inventory)
    step = InstallRedirects({"lists": list(list_ or []), "exclude": list(exclude or []), "apache": apache,
                             "sample": int(sample) or None})
    run = runner(c, inv, dry_run=dry_run or verify, yes=yes, reason=reason, json=json)
    if verify:
        code, results = run.verify([step])
        show_report(run.reporter, step.report, None)
        if json:
            run.reporter.emit_json({"ok": code == 0, "checks": [x.to_dict() for r in results for x in r.checks],
                                    "report": step.report})
        if code:
            raise Exit(code=int(code))
        return
    outcome = run.run([step])
    saved = None
    if step.report and (state_dir(c).run_dir(outcome.run_id) / "journal.jsonl").exists():
        saved = state_dir(c).run_dir(outcome.run_id) / "reports" / "redirects.json"
        saved.parent.mkdir(exist_ok=True)
        save_json(saved, step.report)
    show_report(run.reporter, step.report, saved)
    if json:
        run.reporter.emit_json({**outcome.to_dict(), "report": str(saved) if saved else None})
    if outcome.exit_code:
        raise Exit(code=int(outcome.exit_code))


def show_report(reporter: Reporter, report: dict, saved) -> None:
    """Per list: what was mapped, left to the static copy, filled in from the mbox, contradicted."""
    if not report:
        return
    reporter.table(f"redirect map: {report['redirects']} paths" + (f" (report saved in {saved})" if saved else ""),
                   ["list", "address", "archive", "articles", "mapped", "left to static copy", "from mbox order",
                    "page/mbox disagree", "static copy"],
                   [(r["list"], r["address"], r["archive_policy"], r["articles"], r["mapped"],
                     r["unmapped_count"], r["mbox_fallback_count"], r["disagreement_count"],
                     "yes" if r["static_copy"] else "no") for r in report["lists"]])
    for skipped in report["skipped"]:
        reporter.warn(f"{skipped['list']}: not redirected: {skipped['reason']}")
    for duplicate in report["duplicates"]:
        reporter.warn(f"Message-ID {duplicate['message_id']} is on several pages "
                      f"({', '.join(duplicate['sources'])}): reported, not mapped")
