"""An address and a port are printed the way OpenSSH and URLs write them: an IPv6 address in
brackets (`[2001:db8::1]:22`), or its last group could not be told from the port."""

from __future__ import annotations

import json
import socket
import textwrap

from migrate.core.facts import check_hosts
from migrate.core.inventory import endpoint, load_inventory

from ..helpers import PROJECT_ROOT, invoke

PRODUCTION = PROJECT_ROOT / "inventories" / "production.yaml"


def test_endpoint_brackets_ipv6_addresses_only():
    assert endpoint("2001:db8:0:31::2", 22) == "[2001:db8:0:31::2]:22"
    assert endpoint("::1", 2222) == "[::1]:2222"
    assert endpoint("192.0.2.31", 22) == "192.0.2.31:22"
    assert endpoint("lists-01.example.org", 22) == "lists-01.example.org:22"


def test_inventory_show_writes_ipv6_addresses_with_brackets(tmp_path):
    result = invoke(tmp_path / "state", "inventory.show", "-i", str(PRODUCTION))

    assert result.returncode == 0, result.stderr
    assert "[2001:db8:0:31::2]:22" in result.stdout
    assert "[2001:db8:53::3]:2201" in result.stdout
    assert "2001:db8:0:31::2:22" not in result.stdout.replace("[2001:db8:0:31::2]:22", "")
    assert "192.0.2.31:22" in result.stdout
    # The JSON form keeps address and port apart, as they are.
    shown = json.loads(invoke(tmp_path / "state", "inventory.show", "-i", str(PRODUCTION), "--json").stdout)
    srs = next(h for h in shown["hosts"] if h["host"] == "srs-02")
    assert (srs["address"], srs["port"]) == ("2001:db8:0:31::2", 22)


def closed_port_on_ipv6_loopback() -> int:
    with socket.socket(socket.AF_INET6) as probe:
        probe.bind(("::1", 0))
        return probe.getsockname()[1]


def test_inventory_check_and_transport_errors_write_ipv6_addresses_with_brackets(tmp_path):
    port = closed_port_on_ipv6_loopback()
    (tmp_path / "known_hosts").write_text("")
    path = tmp_path / "inv.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: ipv6
        vars: {{ssh_port: {port}, known_hosts: known_hosts}}
        hosts:
          srs-02: {{address: "::1"}}
        """))

    [checked] = check_hosts(load_inventory(path), samples=1)

    assert not checked.reachable
    assert checked.address == f"[::1]:{port}"
    assert checked.error.startswith(f"srs-02 ([::1]:{port}): cannot connect"), checked.error
