"""File writes over real SSH: a file is never more open than the mode asked for, not even while
it is being written, and a failed write leaves no temporary file behind.

Observed from the controller's side: the lab's hosts share this machine's filesystem, so a thread
here watches the folder while the transport writes into it over SSH.
"""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

from migrate.core.errors import MigrateError
from migrate.core.inventory import load_inventory
from migrate.core.transport import LocalTransport, SSHTransport

from ..helpers import host_root, inventory_variant

HOST = "srs-01"


LOGINS = {"root": {"ssh_user": "root", "sudo": False}, "sudo": {"ssh_user": "migrate", "sudo": True}}


@pytest.fixture(params=sorted(LOGINS))
def transport(request, lab_hosts, tmp_path):
    """srs-01 logged into as root (writing over SFTP) or as `migrate` (staging for sudo)."""
    inventory = load_inventory(inventory_variant(tmp_path, host_vars={HOST: LOGINS[request.param]}))
    t = SSHTransport(inventory.host(HOST))
    try:
        yield t
    finally:
        t.close()


@pytest.fixture
def folder(lab_inventory):
    path = host_root(lab_inventory, HOST) / "srv" / f"writes-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        subprocess.run(["rm", "-rf", "--", str(path)], check=True)


def leftovers(*folders: Path) -> list[str]:
    return [str(p) for f in folders for p in f.iterdir() if ".migrate-" in p.name]


class ModeWatcher(threading.Thread):
    """Records the mode of every temporary file of the toolkit that appears in `folders`."""

    def __init__(self, *folders: Path):
        super().__init__(daemon=True)
        self.folders, self.seen, self.stop = folders, {}, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for folder in self.folders:
                for entry in os.scandir(folder):
                    if ".migrate-" in entry.name:
                        try:
                            mode = stat.S_IMODE(entry.stat(follow_symlinks=False).st_mode)
                        except FileNotFoundError:
                            continue
                        self.seen.setdefault(entry.path, set()).add(mode)

    @contextmanager
    def watching(self):
        self.start()
        try:
            yield self
        finally:
            self.stop.set()
            self.join()


@pytest.mark.lab
def test_a_private_file_is_never_readable_by_others_while_it_is_written(transport, folder):
    target = folder / "secret.pck"
    data = os.urandom(48 * 1024 * 1024)

    with ModeWatcher(folder, Path("/tmp")).watching() as watcher:
        transport.write_file(str(target), data, 0o600)

    assert target.read_bytes() == data and stat.S_IMODE(target.stat().st_mode) == 0o600
    assert watcher.seen, "the watcher never saw the temporary file: the check proved nothing"
    assert {path: modes for path, modes in watcher.seen.items() if modes != {0o600}} == {}
    assert leftovers(folder) == [] and leftovers(Path("/tmp")) == []


@contextmanager
def small_filesystem(path: Path, size: str = "256k"):
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


@pytest.mark.lab
def test_a_write_that_runs_out_of_space_leaves_no_temporary_file(transport, folder):
    with small_filesystem(folder / "small") as small:
        target = small / "big.mbox"
        with pytest.raises(MigrateError) as err:
            transport.write_file(str(target), b"x" * (1024 * 1024), 0o644)

        assert HOST in str(err.value) and str(target) in str(err.value)
        assert not target.exists()
        assert leftovers(small) == [] and leftovers(Path("/tmp")) == []


@pytest.mark.lab
def test_a_failed_rename_leaves_no_temporary_file_and_the_target_alone(transport, folder):
    target = folder / "in-the-way"
    target.mkdir()
    (target / "keep").write_text("kept")

    with pytest.raises(MigrateError) as err:
        transport.write_file(str(target), b"new content\n", 0o644)

    assert HOST in str(err.value) and str(target) in str(err.value)
    assert sorted(p.name for p in target.iterdir()) == ["keep"] and (target / "keep").read_text() == "kept"
    assert leftovers(folder) == [] and leftovers(Path("/tmp")) == []


@pytest.mark.lab
def test_a_write_into_a_missing_folder_names_it_and_leaves_nothing(transport, folder):
    target = folder / "missing" / "file"
    with pytest.raises(MigrateError) as err:
        transport.write_file(str(target), b"data\n", 0o600)
    assert HOST in str(err.value) and str(target) in str(err.value)
    assert leftovers(folder) == [] and leftovers(Path("/tmp")) == []


@pytest.mark.lab
def test_a_file_gets_the_owner_asked_for(transport, folder):
    target = folder / "owned"
    transport.write_file(str(target), b"mine\n", 0o640, owner="migrate", group="migrate")
    st = target.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, *pwd_ids("migrate"))


def pwd_ids(name: str) -> tuple[int, int]:
    entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid


@pytest.mark.parametrize("failure", ["no space", "rename"])
def test_the_controller_leaves_no_temporary_file_either(tmp_path, failure):
    local = LocalTransport()
    if failure == "rename":
        target = tmp_path / "in-the-way"
        target.mkdir()
        with pytest.raises(OSError):
            local.write_file(str(target), b"new\n", 0o600)
        assert leftovers(tmp_path) == []
        return
    with small_filesystem(tmp_path / "small") as small:
        with pytest.raises(OSError):
            local.write_file(str(small / "big"), b"x" * (1024 * 1024), 0o600)
        assert leftovers(small) == []
