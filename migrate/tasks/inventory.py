"""Tasks over inventories: check reachability and host keys, show hosts."""

from invoke import Collection, Exit, task

from ..core.facts import check_hosts
from ..core.report import Reporter
from ._common import FLAG_HELP, guarded, load_inventory


@task(iterable=["host"], help={"inventory": FLAG_HELP["inventory"], "json": FLAG_HELP["json"],
                               "host": "check only this host (repeatable)"})
@guarded
def check(c, inventory=None, host=None, json=False):
    """Connect to every host (read-only): reachability, host key, OS release, latency."""
    inv = load_inventory(c, inventory)
    reporter = Reporter(json_mode=json)
    targets = [inv.host(h) for h in host] if host else None
    results = check_hosts(inv, targets)
    if json:
        reporter.emit_json([r.to_dict() for r in results])
    else:
        reporter.table(f"inventory {inv.name} ({inv.path})",
                       ["host", "roles", "address", "reachable", "host key", "OS release", "latency"],
                       [(r.host, r.roles, r.address, "yes" if r.reachable else "NO",
                         ("verified " + r.host_key) if r.host_key_verified else "NOT VERIFIED",
                         r.os_release, f"{r.latency_ms} ms" if r.latency_ms is not None else "")
                        for r in results])
        for r in results:
            if r.error:
                reporter.error(f"{r.host}: {r.error}")
    failed = [r.host for r in results if not r.ok]
    if failed:
        raise Exit(f"{len(failed)} host(s) failed: {', '.join(failed)}", code=1)
    if not json:
        reporter.ok(f"all {len(results)} host(s) reachable with verified host keys")


@task(help={"inventory": FLAG_HELP["inventory"], "json": FLAG_HELP["json"]})
@guarded
def show(c, inventory=None, json=False):
    """Show the inventory's hosts, roles, groups and merged variables (secrets as references)."""
    inv = load_inventory(c, inventory)
    reporter = Reporter(json_mode=json)
    hosts = [{"host": h.name, "address": h.address, "port": h.port, "endpoint": h.endpoint,
              "user": h.user, "sudo": h.sudo,
              "roles": list(h.roles), "groups": list(h.groups),
              "vars": {k: str(v) for k, v in h.vars.items()}} for h in inv.hosts.values()]
    if json:
        reporter.emit_json({"inventory": str(inv.path), "sha256": inv.sha256, "hosts": hosts})
        return
    reporter.table(f"inventory {inv.name} ({inv.path})", ["host", "address", "user", "roles", "groups"],
                   [(h["host"], h["endpoint"], h["user"] + (" (sudo)" if h["sudo"] else ""),
                     h["roles"], h["groups"]) for h in hosts])


ns = Collection("inventory", check, show)
