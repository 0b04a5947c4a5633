"""Fixtures shared by the whole suite: the lab inventory and the lab's real SSH hosts."""

from __future__ import annotations

import os
import tempfile

import pytest

# Runs started by tests lock in a folder of their own: an operator's lock on the lab inventory
# (or a stale one left by a killed process) must not make the suite fail, and the suite must not
# block an operator. Set before `migrate` is imported; `invoke` subprocesses inherit it.
_TEST_LOCKS = tempfile.mkdtemp(prefix="migrate-test-locks-")
os.environ["MIGRATE_LOCK_DIR"] = _TEST_LOCKS
os.environ["INVOKE_MIGRATE_LOCK_DIR"] = _TEST_LOCKS

from migrate.core.paths import PROJECT_ROOT  # noqa: E402

LAB_INVENTORY = PROJECT_ROOT / "inventories" / "lab.yaml"


def _uses_lab(item) -> bool:
    return item.get_closest_marker("lab") is not None or "lab_hosts" in getattr(item, "fixturenames", ())


@pytest.fixture(scope="session", autouse=True)
def lab_to_ourselves(request):
    """One test session at a time on this machine uses the lab: its hosts and services are shared,
    and tests compare their state before and after. A second session that selected lab tests
    waits here for the first; a session of pure tests (none marked `lab`) does not take the lock."""
    if not any(_uses_lab(item) for item in request.session.items):
        yield
        return
    import fcntl

    from migrate.core.paths import LAB_ROOT

    LAB_ROOT.mkdir(parents=True, exist_ok=True)
    with open(LAB_ROOT / ".test-session.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.fixture(scope="session")
def lab_inventory():
    """The loaded lab inventory; shared by the session, so treat it as read-only."""
    # Imported here so that tests which need no inventory run while that module is being changed.
    from migrate.core.inventory import load_inventory

    return load_inventory(LAB_INVENTORY)


@pytest.fixture(scope="session")
def lab_hosts():
    """The lab's sshd hosts (a started `SshdHosts`), by the same code as `invoke lab.up`.

    Never stopped at the end: the lab is shared by every session on this machine.
    """
    from migrate.lab.sshd import SshdHosts

    hosts = SshdHosts(LAB_INVENTORY)
    hosts.up()
    return hosts
