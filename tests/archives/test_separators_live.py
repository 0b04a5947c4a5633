"""Separators that fail the strict From_ rule, end to end on the lab's real hosts: `mailman.lists`
and `archives.check` count the same messages, `archives.verify` names every message HyperKitty
lacks, also one hidden inside another message's body, and a delta import starts only where the
same rule starts a message.

The Mailman 2 tree is a private one (the lab hosts share this machine's filesystem), reached over
the legacy host's real SSH through a copy of the lab inventory; nothing of the lab's own tree or
HyperKitty changes."""

from __future__ import annotations

import hashlib
import json

import pytest

from migrate.archives.steps import ImportArchive
from migrate.core.executor import Executor
from migrate.core.inventory import load_inventory
from migrate.core.step import PreflightError, StepContext
from migrate.core.transport import Connections
from migrate.lab.hyperkitty import HyperKittyWeb
from migrate.lab.mailman2_seed import generate_tree

from ..helpers import invoke, inventory_variant

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def entry(separator: bytes, number: int, body: bytes = b"Hello.\n", *, blank_after_headers: bool = True) -> bytes:
    headers = (f"From: p{number}@example.org\nDate: Tue, 02 Jan 2018 00:00:0{number} +0000\n"
               f"Subject: post {number}\nMessage-ID: <sep-{number}@example.org>\n").encode()
    return separator + headers + (b"\n" if blank_after_headers else b"") + body + b"\n"


STRICT = b"From p@example.org  Mon Jan  1 00:00:00 2018\n"
OBFUSCATED = b"From p at example.org  Tue Jan  2 00:00:00 2018\n"

# Five messages; two strict separators, three obfuscated ones; a body `From ` line; and inside the
# third message one that Mailman 2.1's cleanarch merged into it by escaping its separator.
MIXED = (
    entry(STRICT, 1, b"From here on it is broken.\nNote: nothing to do with mail\n")
    + entry(OBFUSCATED, 2)
    + entry(OBFUSCATED, 3, b"see below\n\n>From q at example.org  Wed Jan  3 00:00:00 2018\nFrom: q@example.org\n"
                           b"Subject: merged\nMessage-ID: <merged@example.org>\n\nmerged away\n")
    + entry(OBFUSCATED, 4, b"the body starts right after the headers\n", blank_after_headers=False)
    + entry(STRICT, 5)
)
MIXED_IDS = {f"<sep-{n}@example.org>" for n in range(1, 6)}
# Three messages, two unescaped body `From ` lines.
BODY_FROM_LINES = (entry(STRICT, 1, b"From the minutes:\nok\n") + entry(STRICT, 2)
                   + entry(STRICT, 3, b"From here on\n"))


@pytest.fixture(scope="module")
def legacy(lab_hosts, tmp_path_factory):
    """(inventory, state folder, {list name: true message count}, var dir) of a private Mailman 2 tree."""
    HyperKittyWeb().up()
    root = tmp_path_factory.mktemp("separators")
    var_dir = root / "mailman"
    names = generate_tree(var_dir, lists=0, members=2, seed=5)
    mixed, plain = names[0], names[1]
    for name, content in ((mixed, MIXED), (plain, BODY_FROM_LINES)):
        folder = var_dir / "archives" / "private" / f"{name}.mbox"
        folder.mkdir(parents=True)
        (folder / f"{name}.mbox").write_bytes(content)
    inventory = inventory_variant(root, host_vars={"eugeni": {"mailman2_var_dir": str(var_dir)}})
    return inventory, root / "state", {mixed: 5, plain: 3}, var_dir


def test_survey_and_check_count_the_same_messages(legacy):
    inventory, state, truth, _ = legacy
    surveyed = invoke(state, "mailman.lists", "--json", "-i", str(inventory))
    assert surveyed.returncode == 0, surveyed.stdout[-3000:] + surveyed.stderr[-3000:]
    rows = {row["name"]: row for row in json.loads(surveyed.stdout)}
    checked = invoke(state, "archives.check", "--all", "--json", "-i", str(inventory))
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
    reports = json.loads(checked.stdout)["lists"]
    assert sorted(reports) == sorted(truth)
    for name, count in truth.items():
        assert (rows[name]["archive_messages"], reports[name]["messages"]) == (count, count), name
    assert reports[sorted(truth, key=truth.get)[-1]]["counts"]["loose_separator"] == 3
    assert all(row["archive_messages"] == 0 for name, row in rows.items() if name not in truth)


def test_verify_names_every_message_hyperkitty_lacks(legacy):
    inventory, state, truth, _ = legacy
    mixed = next(name for name, count in truth.items() if count == 5)
    verified = invoke(state, "archives.verify", "--list", mixed, "--json", "-i", str(inventory))
    assert verified.returncode == 10, verified.stdout[-3000:] + verified.stderr[-3000:]
    (comparison,) = json.loads(verified.stdout)["lists"]
    assert comparison["mbox_messages"] == 5
    missing = {m["message_id"]: m for m in comparison["missing"]}
    assert set(missing) == MIXED_IDS | {"<merged@example.org>"}
    merged = missing["<merged@example.org>"]
    assert merged["index"] == 2 and ">From q at example.org" in merged["reason"]


@pytest.mark.parametrize("tail, refused", [
    (entry(OBFUSCATED, 7), False),
    (b"\n" + entry(OBFUSCATED, 7), False),
    # Body text: a delta from here would drop it as text before the first message.
    (b"From here on it is broken.\n\n" + entry(STRICT, 7), True),
    (b"Subject: the rest of a message\n\n", True),
])
def test_a_delta_starts_where_the_separator_rule_starts_a_message(legacy, tail, refused):
    inventory_path, _, truth, var_dir = legacy
    name = next(n for n, count in truth.items() if count == 3)
    path = var_dir / "archives" / "private" / f"{name}.mbox" / f"{name}.mbox"
    base = {"offset": len(BODY_FROM_LINES), "sha256": hashlib.sha256(BODY_FROM_LINES).hexdigest(), "messages": 3,
            "run": "20260101T000000Z-000000", "mode": "prestage", "base_run": None}
    path.write_bytes(BODY_FROM_LINES + tail)
    try:
        inventory = load_inventory(inventory_path)
        step = ImportArchive({"lists": [name], "mode": "delta", "base": {name: base}})
        with Connections(inventory) as connections:
            ctx = StepContext(inventory, Executor(connections))
            if refused:
                with pytest.raises(PreflightError, match=f"list {name}: the mbox does not continue with a new message"):
                    step.fail_for_changed_mbox(ctx)
            else:
                step.fail_for_changed_mbox(ctx)
    finally:
        path.write_bytes(BODY_FROM_LINES)
