"""Mailman 3 core in the lab: a real master, runners and REST API on lists-01's loopback address."""

from __future__ import annotations

import pickle
import re
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from migrate.lab.mailman3 import MAILMAN_VERSION, REST_RUNNERS, Mailman3Core, render_config

pytestmark = [pytest.mark.slow, pytest.mark.lab]


@pytest.fixture(scope="module")
def core():
    """Mailman 3 core, started if needed; never stopped here because the lab is shared."""
    core = Mailman3Core()
    core.up()
    core.reset()
    return core


@pytest.fixture
def client(core):
    return core.client()


def _listening_sockets() -> list[tuple[str, int, set[int]]]:
    """(local address, port, owning pids) for every listening TCP socket, from `ss -ltnpH`."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    sockets = []
    for line in out.splitlines():
        local = line.split()[3]
        address, _, port = local.rpartition(":")
        pids = {int(pid) for pid in re.findall(r"pid=(\d+)", line)}
        sockets.append((address.strip("[]"), int(port), pids))
    return sockets


def test_rest_answers_with_the_pinned_version(core):
    versions = core.versions()

    assert MAILMAN_VERSION in versions["mailman_version"]
    assert versions["api_version"] == "3.1"
    assert core.rest_url == "http://127.0.0.12:8001/3.1"


def test_rest_refuses_a_wrong_password(core):
    request = urllib.request.Request(
        f"{core.rest_url}/system/versions",
        headers={"Authorization": "Basic cmVzdGFkbWluOndyb25n"},  # restadmin:wrong
    )
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(request, timeout=5)
    assert excinfo.value.code == 401


def test_listens_on_its_loopback_address_only(core):
    daemons = set(core.daemon_pids())
    ours = [(address, port) for address, port, pids in _listening_sockets() if pids & daemons]

    assert ("127.0.0.12", 8001) in ours
    assert ("127.0.0.12", 8024) in ours  # LMTP: the default runner set includes it
    assert all(address == "127.0.0.12" for address, _ in ours), ours
    wildcard = {"0.0.0.0", "::", "*"}
    assert not [s for s in _listening_sockets() if s[0] in wildcard and s[1] in (8001, 8024)]


def test_config_and_secret_are_private(core):
    assert core.secret_file.stat().st_mode & 0o777 == 0o600
    # mailman.cfg carries the REST password too.
    assert core.config_file.stat().st_mode & 0o777 == 0o600


def test_status_reports_running(core):
    [status] = core.status()

    assert status.component == "mailman3"
    assert status.running
    assert status.pid == core.master_pid()
    assert status.address == "127.0.0.12:8001"
    assert MAILMAN_VERSION in status.detail


def test_up_again_leaves_the_running_instance_alone(core):
    master, daemons = core.master_pid(), core.daemon_pids()

    started = time.monotonic()
    core.up()
    elapsed = time.monotonic() - started

    assert core.master_pid() == master
    assert core.daemon_pids() == daemons
    assert elapsed < 3.0, f"a second up() took {elapsed:.1f} s"


def test_domain_list_and_member_through_mailmanclient(client):
    domain = client.create_domain("roundtrip.lab.example")
    mlist = domain.create_list("team")
    mlist.subscribe("anne@example.org", "Anne Example", pre_verified=True, pre_confirmed=True,
                    pre_approved=True, send_welcome_message=False)

    [member] = mlist.members
    assert member.email == "anne@example.org"
    assert member.role == "member"
    assert client.get_address("anne@example.org").display_name == "Anne Example"

    mlist.delete()
    client.delete_domain("roundtrip.lab.example")
    assert "team@roundtrip.lab.example" not in [m.fqdn_listname for m in client.lists]
    assert "roundtrip.lab.example" not in [d.mail_host for d in client.domains]


def _legacy_config() -> dict:
    """A Mailman 2.1 config.pck dict with the keys import21 reads for a small list."""
    return {
        "real_name": "Legacy",
        "description": "A list from the old host",
        "info": "Talk about the old host.",
        "host_name": "import.lab.example",
        "preferred_language": "en",
        "subject_prefix": "[Legacy] ",
        "archive": True,
        "archive_private": False,
        # Mailman 2 keys members by lowercased address; the value is 0, or the address with
        # its original case when that differs.
        "members": {"carol@example.org": 0, "dave@example.net": "Dave@Example.NET"},
        "digest_members": {"erin@example.com": 0},
        "owner": ["owner@example.org"],
        "moderator": ["mod@example.org"],
        "usernames": {"carol@example.org": "Carol Member"},
        # Bit 8: plain-text digests.
        "user_options": {"erin@example.com": 8},
        "passwords": {"carol@example.org": "secret"},
        "language": {},
        "delivery_status": {},
        "accept_these_nonmembers": [],
        "hold_these_nonmembers": [],
        "reject_these_nonmembers": [],
        "discard_these_nonmembers": [],
        "ban_list": [],
        "bounce_info": {},
    }


def test_cli_create_and_import21(core, client, tmp_path):
    pck = tmp_path / "config.pck"
    with open(pck, "wb") as fh:
        pickle.dump(_legacy_config(), fh, protocol=2)

    create = subprocess.run(core.mailman_command("create", "--quiet", "legacy@import.lab.example"),
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert create.returncode == 0, create.stderr
    imported = subprocess.run(
        core.mailman_command("import21", "legacy@import.lab.example", str(pck)),
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
    )
    assert imported.returncode == 0, imported.stderr

    mlist = client.get_list("legacy@import.lab.example")
    members = {m.email: m for m in mlist.members}
    assert set(members) == {"carol@example.org", "dave@example.net", "erin@example.com"}
    assert members["erin@example.com"].delivery_mode == "plaintext_digests"
    assert members["carol@example.org"].delivery_mode == "regular"
    assert client.get_address("carol@example.org").display_name == "Carol Member"
    assert [o.email for o in mlist.owners] == ["owner@example.org"]
    assert [m.email for m in mlist.moderators] == ["mod@example.org"]
    assert mlist.settings["display_name"] == "Legacy"
    assert mlist.settings["description"] == "A list from the old host"

    client.delete_domain("import.lab.example")


def test_reset_removes_every_list_and_domain(core, client):
    for name in ("one", "two"):
        client.create_domain(f"reset-{name}.lab.example").create_list("list")

    started = time.monotonic()
    core.reset()
    elapsed = time.monotonic() - started

    assert client.domains == []
    assert client.lists == []
    assert elapsed < 5.0, f"reset took {elapsed:.1f} s"


def test_mailman_command_puts_the_root_flag_before_the_subcommand(core):
    argv = core.mailman_command("import21", "x@y.example", "config.pck")

    assert argv[:4] == [str(core.mailman_bin), "--run-as-root", "-C", str(core.config_file)]
    assert argv[4:] == ["import21", "x@y.example", "config.pck"]


def _render(**overrides) -> str:
    params = dict(
        var_dir=Path("/lab/var"), database_path=Path("/lab/var/data/mailman.db"),
        rest_host="127.0.0.12", rest_port=8001, rest_user="restadmin", rest_password="pw",
        lmtp_host="127.0.0.12", lmtp_port=8024, smtp_host="127.0.0.12", smtp_port=8025,
        runners=REST_RUNNERS, gunicorn_config=Path("/lab/gunicorn.cfg"),
        site_owner="owner@lab.example",
    )
    params.update(overrides)
    return render_config(**params)


def test_render_config_starts_only_the_chosen_runners():
    text = _render(runners=("rest", "lmtp"))

    assert "[runner.rest]\nstart: yes" in text
    assert "[runner.lmtp]\nstart: yes" in text
    assert "[runner.out]\nstart: no" in text
    assert "url: sqlite:////lab/var/data/mailman.db" in text


def test_render_config_takes_extra_sections_for_later_components():
    text = _render(extra_sections={"archiver.hyperkitty": {"class": "mailman_hyperkitty.Archiver",
                                                           "enable": "yes"}})

    assert "[archiver.hyperkitty]\nclass: mailman_hyperkitty.Archiver\nenable: yes" in text


@pytest.mark.parametrize("runners", [("lmtp",), ("rest", "no-such-runner")])
def test_render_config_refuses_a_runner_set_without_rest_or_with_unknown_names(runners):
    with pytest.raises(ValueError):
        _render(runners=runners)
