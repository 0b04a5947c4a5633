"""The inventory lock, when its file holds something no run wrote: reported, and breakable."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from migrate.core.errors import LockHeld
from migrate.core.inventory import load_inventory
from migrate.core.journal import InventoryLock
from migrate.core.paths import PROJECT_ROOT

from ..helpers import invoke


def written_by_a_run(**changes) -> bytes:
    fields = {"run_id": "20261204T000000Z-abcdef", "operator": "root", "since": "2026-12-04T00:00:00Z",
              "pid": 4242, "hostname": socket.gethostname(), "inventory": "/srv/lab.yaml", "reason": ""}
    fields.update(changes)
    return json.dumps({k: v for k, v in fields.items() if v is not ...}).encode()


ODD = {
    "pid as text": written_by_a_run(pid="abc"),
    "pid zero": written_by_a_run(pid=0),
    "negative pid": written_by_a_run(pid=-1),
    "huge pid": written_by_a_run(pid=2 ** 70),
    "pid as boolean": written_by_a_run(pid=True),
    "pid missing": written_by_a_run(pid=...),
    "unknown field": written_by_a_run(colour="blue"),
    "run id not text": written_by_a_run(run_id=["x"]),
    "a JSON list": b"[1, 2]",
    "empty": b"",
    "binary": b"\xff\xfe\x00garbage",
}


@pytest.fixture
def inventory():
    return load_inventory(PROJECT_ROOT / "inventories" / "lab.yaml")


@pytest.mark.parametrize("content", ODD.values(), ids=ODD.keys())
def test_an_odd_lock_file_is_reported_and_breakable_never_a_traceback(content, inventory, tmp_path):
    lock = InventoryLock(tmp_path, inventory, "new-run")
    lock.path.write_bytes(content)

    holder = lock.current()
    assert holder is not None and not holder.holder_alive()
    assert str(lock.path) in holder.describe() and "unreadable" in holder.describe()
    with pytest.raises(LockHeld) as refused:
        lock.acquire()
    assert str(lock.path) in str(refused.value) and "runs.unlock" in str(refused.value)

    assert lock.break_stale() is not None
    assert not lock.path.exists()
    lock.acquire()
    assert InventoryLock(tmp_path, inventory, "other").current().run_id == "new-run"
    lock.release()


def test_a_lock_file_that_cannot_be_read_is_reported(inventory, tmp_path):
    lock = InventoryLock(tmp_path, inventory, "new-run")
    lock.path.mkdir()  # a folder where the file should be: reading it fails
    holder = lock.current()
    assert "unreadable" in holder.describe() and not holder.holder_alive()


def test_runs_unlock_breaks_a_lock_file_with_a_non_integer_pid(tmp_path):
    lock_dir = Path(os.environ["INVOKE_MIGRATE_LOCK_DIR"])
    lock_dir.mkdir(parents=True, exist_ok=True)
    path = lock_dir / "lab.lock"
    path.write_bytes(ODD["pid as text"])
    try:
        blocked = invoke(tmp_path / "state", "demo.notice", "--yes", "--host", "eugeni")
        assert blocked.returncode == 13, blocked.stdout + blocked.stderr
        assert "unreadable" in blocked.stdout and "runs.unlock" in blocked.stdout
        unlocked = invoke(tmp_path / "state", "runs.unlock")
        text = unlocked.stdout + unlocked.stderr
        assert unlocked.returncode == 0 and "Traceback" not in text, text
        assert "pid 'abc' is not a process id" in text and not path.exists()
    finally:
        path.unlink(missing_ok=True)
