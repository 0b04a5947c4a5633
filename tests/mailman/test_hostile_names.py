"""Names from config.pck and from parameters before they reach a URL, a path or a command.

A list's `host_name` comes from its config.pck: whatever it holds must not make the list address
point anywhere but at one list of one domain. These tests need no lab: the legacy host is the
controller itself (the inventory host named `local`), and Mailman 3 is an address nobody answers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from migrate.archives.steps import PrepareArchive
from migrate.core.errors import MigrateError, PreflightError
from migrate.core.executor import Executor
from migrate.core.inventory import load_inventory
from migrate.core.step import StepContext
from migrate.core.transport import Connections
from migrate.lab.mailman2_seed import generate_tree
from migrate.mailman import mm2
from migrate.mailman.mm3 import get_list
from migrate.mailman.py2pickle import dumps_py2
from migrate.mailman.steps import MigrateList, SyncList, list_address

from ..helpers import local_legacy_inventory

# (value, what the message must say is wrong with it)
HOSTILE_DOMAINS = [
    ("x/../victim@real.org", "'/'"),
    ("lists.example.org\n", "newline"),
    ("lists.example .org", "whitespace"),
    ("lists.ex\u0430mple.org", "non-ASCII"),  # a Cyrillic а
    ("\u212aultur.example.org", "non-ASCII"),  # the Kelvin sign, which re.IGNORECASE takes for k
    ("lists..example.org", "empty label"),
    (".example.org", "empty label"),
    ("lists.example.org.", "empty label"),
    (".".join(["a" * 59] * 4 + ["b" * 60]), "300 characters"),
    ("lists.example.org@victim.org", "'@'"),
    ("-lists.example.org", "'-'"),
    ("a" * 64 + ".example.org", "longer than 63"),
    ("lists.example.123", "IP address"),
]


@pytest.mark.parametrize(("host_name", "problem"), HOSTILE_DOMAINS)
def test_a_hostile_host_name_never_becomes_a_list_address(host_name, problem):
    with pytest.raises(MigrateError) as excinfo:
        list_address("evil", None, {"host_name": host_name})
    message = str(excinfo.value)
    assert "evil" in message and repr(host_name) in message and "host_name" in message
    assert problem in message


@pytest.mark.parametrize(("mail_host", "problem"), HOSTILE_DOMAINS)
def test_a_mail_host_parameter_is_checked_the_same_way(mail_host, problem):
    with pytest.raises(MigrateError) as excinfo:
        list_address("evil", mail_host, {"host_name": "lists.example.org"})
    message = str(excinfo.value)
    assert "evil" in message and repr(mail_host) in message and "mail_host" in message
    assert problem in message


@pytest.mark.parametrize("name", ["Bad Name", "team\n", "../team", "team/x", "t\u0435am", "a..b", "a.",
                                  "-team", "x" * 65, ""])
def test_a_list_name_that_mailman_2_cannot_have_never_becomes_an_address(name):
    with pytest.raises(MigrateError) as excinfo:
        list_address(name, None, {"host_name": "lists.example.org"})
    assert repr(name) in str(excinfo.value)


def test_valid_names_and_domains_pass_unchanged():
    assert list_address("team-01", None, {"host_name": "lists.example.org"}) == "team-01@lists.example.org"
    assert list_address("a.b+c=d_e", "Lists.Example.ORG", {}) == "a.b+c=d_e@Lists.Example.ORG"
    assert list_address("x", "localhost", {"host_name": "ignored\n"}) == "x@localhost"
    assert list_address("x" * 64, ".".join(["a" * 63] * 3) + ".org", {}).startswith("x" * 64 + "@")


# -- through the steps' preflight, with the legacy tree on the controller ----------------------

@pytest.fixture(scope="module")
def legacy(tmp_path_factory) -> tuple[Path, Path]:
    """A Mailman 2 var dir on the controller and an inventory whose legacy host is `local`."""
    root = tmp_path_factory.mktemp("hostile")
    var_dir = root / "var"
    generate_tree(var_dir, lists=0, members=3, seed=5)
    return var_dir, local_legacy_inventory(root / "inventory.yaml", var_dir)


def write_list(var_dir: Path, name: str, host_name: str) -> None:
    """A copy of a generated list under another name, with the given host_name."""
    source = var_dir / "lists" / "roster-cases" / "config.pck"
    config = mm2.load_config(source.read_bytes(), list_name="roster-cases")
    # A unicode host_name is what a Python 2 `unicode` value in the pickle loads as.
    config["host_name"] = host_name if host_name.isascii() else mm2.Py2Unicode(host_name)
    folder = var_dir / "lists" / name
    folder.mkdir(exist_ok=True)
    (folder / "config.pck").write_bytes(dumps_py2(config))


@pytest.mark.parametrize("step_class", [MigrateList, SyncList, PrepareArchive])
@pytest.mark.parametrize(("host_name", "problem"), HOSTILE_DOMAINS[:7])
def test_preflight_refuses_the_list_and_names_the_value(legacy, step_class, host_name, problem):
    var_dir, inventory_path = legacy
    write_list(var_dir, "evil", host_name)
    inventory = load_inventory(inventory_path)
    with Connections(inventory) as connections:
        ctx = StepContext(inventory, Executor(connections))
        with pytest.raises(PreflightError) as excinfo:
            step_class({"list": "evil"}).preflight(ctx)
    message = str(excinfo.value)
    assert "evil" in message and repr(host_name) in message and problem in message


def test_reading_a_list_by_a_hostile_address_sends_no_request():
    from mailmanclient import Client

    # Port 9 answers nothing: a request would fail as "could not be reached".
    client = Client("http://127.0.0.1:9/3.1", "user", "password")
    with pytest.raises(MigrateError) as excinfo:
        get_list(client, "evil@x/../victim@real.org")
    assert "'evil@x/../victim@real.org'" in str(excinfo.value)
    assert "reached" not in str(excinfo.value)
