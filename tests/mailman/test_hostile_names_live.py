"""A list whose config.pck names another list's address, against the lab's real Mailman 3.

`host_name` = `x/../victim@victim.example` once made `evil-host@x/../victim@victim.example` out of
the list address, which mailmanclient's URL joining resolves to `lists/victim@victim.example`: a
sync of `evil-host` then planned subscriptions, removals and bans against the victim's roster.
"""

from __future__ import annotations

import json
import shutil

import pytest

from migrate.lab.mailman2_seed import generate_tree
from migrate.lab.mailman3 import Mailman3Core
from migrate.lab.seeding import mailman2_var_dir
from migrate.mailman import mm2
from migrate.mailman.py2pickle import dumps_py2

from ..helpers import invoke

pytestmark = [pytest.mark.lab, pytest.mark.slow]

VICTIM_DOMAIN = "victim.example"
VICTIM = f"victim@{VICTIM_DOMAIN}"
HOSTILE = "evil-host"
HOSTILE_HOST_NAME = f"x/../{VICTIM}"
VICTIM_MEMBERS = ["anna@victim.example", "bert@victim.example"]
VICTIM_BAN = "spammer@victim.example"


def roster(core: Mailman3Core) -> dict:
    mlist = core.client().get_list(VICTIM)
    found = {role: sorted(str(m.email) for m in mlist.get_roster(role))
             for role in ("member", "owner", "moderator", "nonmember")}
    found["bans"] = sorted(str(b.email) for b in mlist.bans)
    return found


@pytest.fixture
def victim(lab_hosts):
    core = Mailman3Core()
    core.up()
    client = core.client()
    domain = client.create_domain(VICTIM_DOMAIN)
    mlist = domain.create_list("victim")
    for address in VICTIM_MEMBERS:
        mlist.subscribe(address, pre_verified=True, pre_confirmed=True, pre_approved=True,
                        send_welcome_message=False)
    mlist.bans.add(VICTIM_BAN)
    try:
        yield core
    finally:
        client.delete_domain(VICTIM_DOMAIN)
        for address in VICTIM_MEMBERS:
            client.get_user(address).delete()


@pytest.fixture
def hostile_list(tmp_path):
    """A Mailman 2 list on the legacy host whose host_name points at the victim's address."""
    generated = tmp_path / "generated"
    generate_tree(generated, lists=0, members=5, seed=3)
    config = mm2.load_config((generated / "lists" / "roster-cases" / "config.pck").read_bytes(),
                             list_name="roster-cases")
    config["host_name"] = HOSTILE_HOST_NAME
    config["_internal_name"] = HOSTILE
    folder = mailman2_var_dir() / "lists" / HOSTILE
    folder.mkdir()
    try:
        (folder / "config.pck").write_bytes(dumps_py2(config))
        yield config
    finally:
        shutil.rmtree(folder)


def test_sync_of_a_list_naming_another_lists_address_leaves_that_roster_alone(victim, hostile_list, tmp_path):
    state = tmp_path / "state"
    before = roster(victim)
    assert before["member"] == VICTIM_MEMBERS and before["bans"] == [VICTIM_BAN]
    try:
        result = invoke(state, "mailman.sync", "--list", HOSTILE, "--yes", timeout=300)
        text = result.stdout + result.stderr
        assert roster(victim) == before, text
        assert result.returncode == 1, text
        assert HOSTILE in text and "host_name" in text and repr(HOSTILE_HOST_NAME) in text, text
        verify = invoke(state, "mailman.verify", "--list", HOSTILE, timeout=300)
        assert verify.returncode == 1 and repr(HOSTILE_HOST_NAME) in verify.stdout + verify.stderr
        assert roster(victim) == before
    finally:
        # Undo whatever a run did change, so that the lab is left as it was found.
        listed = invoke(state, "runs.list", "--json")
        for run in reversed(json.loads(listed.stdout or "[]") if listed.returncode == 0 else []):
            if not run["dry_run"]:
                invoke(state, "runs.rollback", run["run_id"], "--yes", timeout=300)
