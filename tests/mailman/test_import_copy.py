"""The cleaned config.pck copy that import21 reads: private to the user import21 runs as.

Production runs the Mailman CLI as Mailman's own user (`mailman3_user: list`, through runuser)
and writes files through sudo, which makes them root's. A 0600 copy owned by root is unreadable
to `list`: import21 would fail on every list. The lab's Mailman runs as root, so the check here
plans the real step against an inventory that names `list`, writes the copy through the real
sudo login, and reads it back as `list`.
"""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from migrate.core.executor import Executor
from migrate.core.inventory import load_inventory
from migrate.core.ops import WriteFile
from migrate.core.step import StepContext
from migrate.core.transport import Connections
from migrate.lab.seeding import seed
from migrate.mailman.steps import MigrateList

from ..helpers import inventory_variant

pytestmark = pytest.mark.lab


def test_the_import_copy_is_readable_by_the_user_import21_runs_as_and_nobody_else(lab_hosts, tmp_path):
    names = seed(lists=2, members=5, seed=3, messages=0)
    inventory = load_inventory(inventory_variant(tmp_path, host_vars={"lists-01": {"mailman3_user": "list"}}))
    assert (inventory.host("lists-01").user, inventory.host("lists-01").sudo) == ("migrate", True)
    with Connections(inventory) as connections:
        ctx = StepContext(inventory, Executor(connections))
        [copy] = [op for op in MigrateList({"list": names[0]}).plan(ctx) if isinstance(op, WriteFile)]
        path = Path(copy.path)
        try:
            Executor(connections, dry_run=False).execute(copy)

            st = path.stat()
            assert stat.S_IMODE(st.st_mode) == 0o600
            as_list = subprocess.run(["runuser", "-u", "list", "--", "cat", "--", str(path)], capture_output=True)
            assert as_list.returncode == 0, as_list.stderr
            assert as_list.stdout == copy.content
            as_other = subprocess.run(["runuser", "-u", "nobody", "--", "cat", "--", str(path)], capture_output=True)
            assert as_other.returncode != 0
        finally:
            path.unlink(missing_ok=True)
