"""The production login path over real SSH: an unprivileged user, every command through `sudo -n`.

Each transport operation runs against a lab host logged into as the lab's `migrate` user, and a
second user whose sudo rule allows one command shows what a refusal looks like.
"""

from __future__ import annotations

import base64
import grp
import json
import os
import pwd
import stat
import time
import urllib.request
import uuid

import pytest

from migrate.core.errors import CommandError, MigrateError, SudoRefused
from migrate.core.executor import Executor
from migrate.core.inventory import load_inventory
from migrate.core.ops import WriteFile
from migrate.core.transport import Connections, SSHTransport
from migrate.lab import login_users

from ..helpers import host_root, inventory_variant

pytestmark = pytest.mark.lab

HOST = "ns2"


def transport_as(tmp_path, user: str, host: str = HOST) -> SSHTransport:
    path = inventory_variant(tmp_path, host_vars={host: {"ssh_user": user, "sudo": True}}, name=f"{user}.yaml")
    return SSHTransport(load_inventory(path).host(host))


@pytest.fixture
def sudo(lab_hosts, tmp_path):
    t = transport_as(tmp_path, "migrate")
    try:
        yield t
    finally:
        t.close()


@pytest.fixture
def limited(lab_hosts, tmp_path):
    t = transport_as(tmp_path, login_users.LIMITED_USER)
    try:
        yield t
    finally:
        t.close()


@pytest.fixture
def folder(lab_inventory):
    path = host_root(lab_inventory, HOST) / "srv" / f"sudo-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        for child in sorted(path.rglob("*"), reverse=True):
            child.rmdir() if child.is_dir() else child.unlink()
        path.rmdir()


def owner_of(path) -> tuple[str, str]:
    st = os.stat(path)
    return pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name


# -- a refusal ------------------------------------------------------------------------------------

def test_a_command_sudo_does_not_allow_is_an_error_naming_host_and_command(limited):
    with pytest.raises(SudoRefused) as err:
        limited.run(["rm", "-f", "--", "/nonexistent-file"])

    message = str(err.value)
    assert message.startswith(f"{HOST} (127.0.0.18:2222): sudo refused `sudo -n -- rm -f -- /nonexistent-file`")
    assert "not allowed" in message and login_users.LIMITED_USER in message and "sudoers" in message
    assert isinstance(err.value, CommandError) and err.value.host == HOST


def test_a_command_that_needs_a_password_is_an_error_saying_so(limited):
    with pytest.raises(SudoRefused) as err:
        limited.run([login_users.LIMITED_NEEDS_PASSWORD, "/"])

    message = str(err.value)
    assert f"{HOST} (127.0.0.18:2222): sudo refused `sudo -n -- {login_users.LIMITED_NEEDS_PASSWORD} /`" in message
    assert "password" in message and "NOPASSWD" in message


def test_a_refused_read_is_never_taken_for_an_absent_file(limited, lab_inventory):
    existing = str(host_root(lab_inventory, HOST) / "etc")
    with pytest.raises(SudoRefused):
        limited.stat_mode(existing)
    with pytest.raises(SudoRefused):
        limited.read_file(existing)


def test_an_allowed_command_runs_as_root(limited):
    assert limited.run([login_users.LIMITED_ALLOWED, "-un"]).check().stdout == "root\n"


def test_a_failing_command_that_sudo_ran_is_no_refusal(sudo):
    result = sudo.run(["sh", "-c", "echo 'sudo: nothing to see' >&2; exit 1"])
    assert (result.exited, result.stderr) == (1, "sudo: nothing to see\n")


# -- every transport path through sudo --------------------------------------------------------

def test_commands_run_as_root_with_arguments_and_environment_intact(sudo):
    result = sudo.run(["sh", "-c", 'printf "%s|%s|%s" "$(id -un)" "$V" "$1"', "sh", "it's $(id)"],
                      env={"V": "a b;c"}).check()
    assert result.stdout == "root|a b;c|it's $(id)"
    # The login user itself is the unprivileged one.
    assert sudo.host.user == "migrate" and sudo.host.sudo


def test_files_come_back_byte_for_byte_through_sudo(sudo, folder):
    private = folder / "private"
    private.mkdir(mode=0o700)
    target = private / "config.pck"
    data = bytes(range(256)) * 4096 + "é\n".encode("latin-1")
    target.write_bytes(data)
    target.chmod(0o600)

    assert sudo.read_file(str(target)) == data
    assert sudo.stat_mode(str(target)) == 0o600 and sudo.stat_mode(str(private)) == 0o700
    assert sudo.read_file(str(private / "absent")) is None and sudo.stat_mode(str(private / "absent")) is None


def test_a_file_written_through_sudo_has_the_mode_and_owner_asked_for(sudo, folder):
    private = folder / "private"
    private.mkdir(mode=0o700)
    plain, owned = private / "plain", private / "owned"

    sudo.write_file(str(plain), b"root's\n", 0o640)
    sudo.write_file(str(owned), b"migrate's\n", 0o600, owner="migrate", group="migrate")

    assert plain.read_bytes() == b"root's\n" and owned.read_bytes() == b"migrate's\n"
    assert (stat.S_IMODE(plain.stat().st_mode), owner_of(plain)) == (0o640, ("root", "root"))
    assert (stat.S_IMODE(owned.stat().st_mode), owner_of(owned)) == (0o600, ("migrate", "migrate"))
    # Replacing keeps the file atomic and leaves nothing behind, here or in /tmp.
    sudo.write_file(str(plain), b"again\n", 0o644)
    assert plain.read_bytes() == b"again\n" and stat.S_IMODE(plain.stat().st_mode) == 0o644
    assert sorted(p.name for p in private.iterdir()) == ["owned", "plain"]
    assert not [p for p in os.listdir("/tmp") if p.startswith(".migrate-")]

    sudo.remove_file(str(owned))
    sudo.remove_file(str(owned))  # removing what is gone is not an error
    assert not owned.exists()


def test_an_unknown_owner_is_an_error_naming_the_file_and_leaves_nothing(sudo, folder):
    target = folder / "orphan"
    with pytest.raises(MigrateError) as err:
        sudo.write_file(str(target), b"x", 0o600, owner="no-such-user-here")
    assert HOST in str(err.value) and str(target) in str(err.value) and "no-such-user-here" in str(err.value)
    assert list(folder.iterdir()) == []
    assert not [p for p in os.listdir("/tmp") if p.startswith(".migrate-")]


def test_output_streams_through_sudo(sudo):
    chunks: list[tuple[float, str]] = []
    started = time.monotonic()
    result = sudo.run(["sh", "-c", 'for i in 1 2 3; do printf "%s%%\\r" "$i"; sleep 0.3; done'],
                      on_output=lambda text: chunks.append((time.monotonic() - started, text))).check()
    ended = time.monotonic() - started
    assert "".join(text for _, text in chunks) == result.stdout == "1%\r2%\r3%\r"
    assert next(at for at, text in chunks if "1%" in text) < ended - 0.4


def test_the_rest_api_is_reached_through_a_forward_of_the_sudo_login(tmp_path, lab_hosts, lab_inventory):
    lists = lab_inventory.host("lists-01")
    assert (lists.user, lists.sudo) == ("migrate", True)
    transport = SSHTransport(lists)
    try:
        with transport.forward(8001, "127.0.0.12") as port:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/3.1/system/versions")
            token = base64.b64encode(
                f"{lists.var('mailman3_rest_user')}:{lists.secret('mailman3_rest_password').reveal()}".encode())
            request.add_header("Authorization", f"Basic {token.decode()}")
            with urllib.request.urlopen(request, timeout=10) as answer:
                versions = json.load(answer)
    finally:
        transport.close()
    assert versions["mailman_version"].startswith("GNU Mailman 3")


def test_a_rollback_through_sudo_gives_a_replaced_file_its_owner_and_mode_back(lab_hosts, lab_inventory, folder):
    target = folder / "templates.cfg"
    target.write_bytes(b"old\n")
    os.chown(target, pwd.getpwnam("list").pw_uid, grp.getgrnam("list").gr_gid)
    target.chmod(0o640)
    write = WriteFile(HOST, str(target), b"new\n", 0o644)

    with Connections(lab_inventory) as connections:
        executor = Executor(connections, dry_run=False)
        pre_state = write.capture(executor)
        executor.execute(write)
        assert owner_of(target) == ("root", "root") and target.read_bytes() == b"new\n"
        executor.execute(write.inverse(pre_state))

    assert target.read_bytes() == b"old\n"
    assert (stat.S_IMODE(target.stat().st_mode), owner_of(target)) == (0o640, ("list", "list"))
