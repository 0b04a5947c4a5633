"""Fixtures shared by the whole suite: the lab inventory and the lab's real SSH hosts."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# The checkout is not installed into the venv: make `import migrate` find it from any rootdir.
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

LAB_INVENTORY = PROJECT_ROOT / "inventories" / "lab.yaml"


@pytest.fixture(scope="session")
def lab_inventory():
    """The loaded lab inventory; shared by the session, so treat it as read-only."""
    # Imported here so that tests which need no inventory run while that module is being changed.
    from migrate.core.inventory import load_inventory

    return load_inventory(LAB_INVENTORY)


@pytest.fixture(scope="session")
def lab_hosts():
    """The lab's sshd hosts, started if needed by the same code as `invoke lab.up`.

    Never stopped at the end: the lab is shared by every session on this machine.
    """
    from migrate.lab.sshd import SshdHosts

    hosts = SshdHosts(LAB_INVENTORY)
    hosts.up()
    return hosts
