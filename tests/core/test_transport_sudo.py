"""The production login path over real SSH: an unprivileged user, every command through `sudo -n`.

Each transport operation runs against a lab host logged into as the lab's `migrate` user, and a
second user whose sudo rule allows one command shows what a refusal looks like.
"""

from __future__ import annotations

import base64
import json
import os
import pwd
import grp
import stat
import time
import urllib.request
import uuid

import pytest

from migrate.core.errors import CommandError, SudoRefused
from migrate.core.inventory import load_inventory
from migrate.core.transport import SSHTransport
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
