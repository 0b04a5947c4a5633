"""The survey of a Mailman 2 tree (`mailman.lists`), read from a tree on the controller: folder
names that are no list's, and counts that agree with what verification compares."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrate.core.executor import Executor
from migrate.core.inventory import load_inventory
from migrate.core.transport import Connections
from migrate.lab.mailman2_seed import generate_tree
from migrate.mailman import convert, mm2
from migrate.mailman.py2pickle import dumps_py2
from migrate.mailman.reconcile import roster_counts
from migrate.mailman.survey import list_folders, survey

from ..helpers import local_legacy_inventory

MBOX = b"".join(
    b"From a%d@example.org  Mon Jan  1 00:00:0%d 2018\nFrom: a%d@example.org\nMessage-ID: <%d@x>\n\nbody\n\n"
    % (i, i, i, i) for i in range(3))


@pytest.fixture
def tree(tmp_path) -> tuple[Path, Path]:
    var_dir = tmp_path / "var"
    generate_tree(var_dir, lists=0, members=3, seed=5)
    mbox = var_dir / "archives" / "private" / "roster-cases.mbox" / "roster-cases.mbox"
    mbox.parent.mkdir(parents=True)
    mbox.write_bytes(MBOX)
    return var_dir, local_legacy_inventory(tmp_path / "inventory.yaml", var_dir)


def read(inventory_path: Path, function, *args):
    inventory = load_inventory(inventory_path)
    with Connections(inventory) as connections:
        return function(Executor(connections), inventory, *args)


# A tab or a newline in a folder name once split the survey's lines: the survey crashed, or a name
# like the last one here gave roster-cases the numbers printed after it.
ODD_FOLDERS = ["bad\tname", "two\nlines", "zzz\t1\t1\nroster-cases"]


def test_folder_names_with_tabs_or_newlines_are_reported_never_crash_nor_shift_numbers(tree):
    var_dir, inventory = tree
    for name in ODD_FOLDERS:
        (var_dir / "lists" / name).mkdir()
    folders = read(inventory, list_folders)
    assert set(ODD_FOLDERS) <= set(folders)
    assert folders["roster-cases"] == len(MBOX)
    rows = {row.name: row for row in read(inventory, survey)}
    for name in ODD_FOLDERS:
        assert "not a valid Mailman 2 list name" in rows[name].error and repr(name) in rows[name].error
    assert rows["roster-cases"].error == "" and rows["roster-cases"].archive_messages == 3


def test_a_name_that_would_overwrite_another_lists_numbers_does_not(tree):
    var_dir, inventory = tree
    (var_dir / "lists" / "zzz\t1\t1\nroster-cases").mkdir()
    assert read(inventory, list_folders)["roster-cases"] == len(MBOX)


def test_nonmembers_are_counted_as_verification_counts_them(tree):
    """Distinct addresses as Mailman 3 keeps them: case folded, each once across the four filters,
    banned ones and ^regexps or @lists left out (those stay patterns, counted apart)."""
    var_dir, inventory = tree
    path = var_dir / "lists" / "roster-cases" / "config.pck"
    config = mm2.load_config(path.read_bytes(), list_name="roster-cases")
    config.update({
        "accept_these_nonmembers": ["friend@example.org", "Friend@Example.org", "^.*@trusted\\.example$",
                                    "@kultur-de"],
        "hold_these_nonmembers": ["friend@example.org", "other@example.net"],
        "reject_these_nonmembers": ["banned@example.com"],
        "discard_these_nonmembers": ["other@example.net", "third@example.com"],
        "ban_list": ["banned@example.com"],
    })
    path.write_bytes(dumps_py2(config))
    (row,) = read(inventory, survey, ["roster-cases"])
    assert row.nonmembers == 3  # friend@, other@, third@
    expected = convert.expected_state(mm2.load_config(path.read_bytes(), list_name="roster-cases"),
                                      fqdn_listname=row.fqdn)
    assert roster_counts(expected)["nonmember"] == row.nonmembers
