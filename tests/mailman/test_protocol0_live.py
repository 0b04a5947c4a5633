"""A Greek list whose config.pck is a protocol 0 pickle (Python 2's default, 8-bit text written as
\\xNN escapes), migrated with `invoke mailman.migrate` and checked with `mailman.verify` against the
lab's real Mailman 3. The expected texts are what the generator was given, written out here."""

from __future__ import annotations

import json
import pickle
import shutil

import pytest

from migrate.lab.mailman2_protocol0 import generate_protocol0_lists
from migrate.lab.mailman3 import Mailman3Core
from migrate.lab.seeding import mailman2_var_dir, seed

from ..helpers import invoke, newest_run_id

pytestmark = [pytest.mark.lab, pytest.mark.slow]

NAME, DOMAIN, CHARSET = "ellinika-el", "lists.example.org", "iso-8859-7"
# migrate/lab/mailman2_protocol0.py's input for the list, in the list's charset on the Mailman 2 side.
DISPLAY_NAME = "Ellinika-EL"
DESCRIPTION = "Ελληνική λίστα συζητήσεων: καλημέρα σας"
INFO = "Καλώς ήρθατε στη λίστα!\nΆρθρα, σχόλια και ερωτήσεις στα ελληνικά.\n"
MEMBER, MEMBER_NAME = "giorgos@example.gr", "Γιώργος Παπαδόπουλος"
MEMBERS = 10


@pytest.fixture(scope="module")
def core(lab_hosts):
    core = Mailman3Core()
    core.up()
    seed(lists=12, members=MEMBERS, seed=7, messages=0)
    assert generate_protocol0_lists(mailman2_var_dir(), members=MEMBERS, seed=7) == [NAME]
    yield core
    # The legacy tree is the lab's: leave it as the seed wrote it for whoever runs next.
    shutil.rmtree(mailman2_var_dir() / "lists" / NAME)


def test_a_protocol0_greek_list_migrates_and_verifies_with_its_text_intact(core, tmp_path):
    state = tmp_path / "state"
    raw = (mailman2_var_dir() / "lists" / NAME / "config.pck").read_bytes()
    assert raw[:1] == b"(" and b"S'\\x" in raw  # protocol 0, its Greek as escapes

    migrated = invoke(state, "mailman.migrate", "--list", NAME, "--yes", "--reason", "protocol 0", timeout=600)
    try:
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        verified = invoke(state, "mailman.verify", "--list", NAME, timeout=300)
        assert verified.returncode == 0, verified.stdout + verified.stderr

        mlist = core.client().get_list(f"{NAME}@{DOMAIN}")
        assert mlist.settings["display_name"] == DISPLAY_NAME
        # REST keeps the description to one line; this one has none to lose.
        assert mlist.settings["description"] == DESCRIPTION
        assert mlist.settings["info"] == INFO
        assert mlist.get_member(MEMBER).address.display_name == MEMBER_NAME
        assert len(mlist.members) == MEMBERS
        report = json.loads((state / "runs" / newest_run_id(state) / "reports" / f"{NAME}.json").read_text())
        assert report["charset"] == CHARSET
        assert f"dropped: passwords ({MEMBERS} member passwords, not imported by import21)" in report["notes"]
        # The import copy went to the lists host and into the run's blob store: no member password,
        # nor the list's own, reached either (the config as Python's own unpickler reads it).
        legacy = pickle.loads(raw, encoding="latin-1")
        secrets = [*legacy["passwords"].values(), legacy["password"]]
        assert len(secrets) == MEMBERS + 1 and all(len(secret) >= 8 for secret in secrets)
        files = [path for path in state.rglob("*") if path.is_file()]
        assert any(path.parent.name == "blobs" and path.read_bytes()[:2] == b"\x80\x02" for path in files)
        stored = b"".join(path.read_bytes() for path in files)
        for secret in secrets:
            assert secret.encode("latin-1") not in stored and secret.encode("utf-8") not in stored
    finally:
        rolled = invoke(state, "runs.rollback", "last", "--yes", timeout=600)
        assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert f"{NAME}@{DOMAIN}" not in [m.fqdn_listname for m in core.client().lists]
