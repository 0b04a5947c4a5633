"""`invoke lab.*`: start, inspect and stop the built-in lab on this machine's loopback addresses."""

from __future__ import annotations

from dataclasses import asdict

from invoke import Collection, Exit, task

from ..core.errors import MigrateError
from ..core.report import Reporter
from ..lab import components
from ..lab.base import ServiceStatus
from ..lab.sshd import DEFAULT_INVENTORY

COLUMNS = ["component", "service", "address", "pid", "state", "detail"]

HELP = {
    "component": "only this component (repeatable; default: all of them), e.g. sshd",
    "inventory": "lab inventory file (default: inventories/lab.yaml of the checkout)",
}


@task(help=HELP, iterable=["component"])
def up(c, component=None, inventory=None):
    """Start the lab (what already runs is left alone) and show its status."""
    _call(components.up_all, component, inventory)
    _show(_call(components.status_all, component, inventory), json_mode=False, must_run=True)


@task(help={**HELP, "json": "print the status as JSON on stdout"}, iterable=["component"])
def status(c, component=None, inventory=None, json_=False):
    """Show the lab's services; exit 1 if any is not running."""
    _show(_call(components.status_all, component, inventory), json_mode=json_, must_run=True)


@task(help=HELP, iterable=["component"])
def down(c, component=None, inventory=None):
    """Stop the lab's services, in reverse start order."""
    _call(components.down_all, component, inventory)
    _show(_call(components.status_all, component, inventory), json_mode=False, must_run=False)


@task(help={
    "lists": "number of lists (the special cases are always included)",
    "members": "members per list",
    "messages": "archived messages per list (mbox and pipermail); 0 writes no archives",
    "seed": "random seed: the same seed gives the same tree",
    "keep_mailman3": "do not empty the lab's Mailman 3 (lists, domains and users) and HyperKitty",
})
def seed(c, lists=12, members=40, messages=25, seed=1, keep_mailman3=False):
    """Write a fresh Mailman 2 tree with archives; empty the lab's Mailman 3 and HyperKitty."""
    from ..lab.seeding import mailman2_var_dir, seed as seed_lab

    try:
        names = seed_lab(lists=int(lists), members=int(members), seed=int(seed), messages=int(messages),
                         empty_mailman3=not keep_mailman3)
    except (MigrateError, ValueError, RuntimeError) as exc:
        raise Exit(str(exc), code=1) from exc
    Reporter().ok(f"{len(names)} Mailman 2 lists written to {mailman2_var_dir()}"
                  + (f" with {int(messages)} archived messages each" if int(messages) else "")
                  + ("" if keep_mailman3 else "; the lab's Mailman 3 and HyperKitty are empty"))


@task(help={
    "list": "the Mailman 2 list that receives the posts",
    "count": "how many posts",
    "json": "print the new Message-IDs as JSON on stdout",
})
def post(c, list_, count=5, json=False):
    """Append new posts to a lab list's Mailman 2 archive mbox, as Mailman 2 archives them."""
    from ..lab.mailman2_posts import append_posts
    from ..lab.seeding import mailman2_var_dir

    try:
        ids = append_posts(mailman2_var_dir(), list_, int(count))
    except (MigrateError, ValueError, OSError) as exc:
        raise Exit(str(exc), code=1) from exc
    reporter = Reporter(json_mode=json)
    if json:
        reporter.emit_json({"list": list_, "message_ids": ids})
    else:
        reporter.ok(f"{len(ids)} post(s) appended to the archive of {list_}")


def _call(function, names, inventory):
    """Run a library call; its errors become a one-line message and exit code 1, no traceback."""
    try:
        return function(names or None, inventory or DEFAULT_INVENTORY)
    except MigrateError as exc:
        raise Exit(str(exc), code=1) from exc


def _show(statuses: list[ServiceStatus], *, json_mode: bool, must_run: bool) -> None:
    reporter = Reporter(json_mode=json_mode)
    if json_mode:
        reporter.emit_json([asdict(s) for s in statuses])
    else:
        reporter.table("lab", COLUMNS, [
            [s.component, s.name, s.address, s.pid, "running" if s.running else "stopped",
             s.detail] for s in statuses])
    not_running = [s.name for s in statuses if not s.running]
    if must_run and not_running:
        raise Exit(f"not running: {', '.join(not_running)}", code=1)


ns = Collection("lab", up, status, down, seed, post)
