"""The lab's SSH hosts: real sshd processes on loopback, reached with the real OpenSSH client.

Tests on the shared lab only read it (or run `up`, which leaves running hosts alone): other
sessions on this machine may be using it. Stopping and starting hosts happens in a private lab
with its own root, inventory, addresses and a free port.
"""

from __future__ import annotations

import ipaddress
import os
import re
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from migrate.lab.base import pid_alive
from migrate.lab.sshd import SshdError, SshdHosts

pytestmark = pytest.mark.lab


def ssh(host, *command: str, known_hosts: Path | None = None) -> subprocess.CompletedProcess:
    """Run command on an inventory host with the OpenSSH client, refusing unknown host keys."""
    argv = [
        "ssh", "-i", str(host.identity_file), "-o", "IdentitiesOnly=yes",
        "-o", f"UserKnownHostsFile={known_hosts or host.known_hosts}",
        "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
        "-p", str(host.port), f"{host.user}@{host.address}", *command,
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def public_key(lab: SshdHosts, host) -> str:
    key_type, key_data = lab.host_key(host).with_suffix(".pub").read_text().split()[:2]
    return f"{key_type} {key_data}"


def listening_by_pid() -> dict[int, set[tuple[str, int]]]:
    """Every listening TCP socket on the machine per owning pid, as `ss` reports it."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    found: dict[int, set[tuple[str, int]]] = {}
    for line in out.splitlines():
        fields = line.split()
        address, _, port = fields[3].rpartition(":")
        address = address.strip("[]").split("%")[0]
        for pid in re.findall(r"pid=(\d+)", line):
            found.setdefault(int(pid), set()).add((address, int(port)))
    return found


# The shared lab.

def test_up_is_idempotent(lab_hosts):
    pids = {h.name: lab_hosts.pid(h) for h in lab_hosts.hosts}
    keys = {h.name: lab_hosts.host_key(h).read_bytes() for h in lab_hosts.hosts}
    known_hosts = {h.known_hosts: h.known_hosts.read_bytes() for h in lab_hosts.hosts}

    lab_hosts.up()

    assert all(pids.values()), pids
    assert {h.name: lab_hosts.pid(h) for h in lab_hosts.hosts} == pids
    assert {h.name: lab_hosts.host_key(h).read_bytes() for h in lab_hosts.hosts} == keys
    assert {path: path.read_bytes() for path in known_hosts} == known_hosts


def test_status_reports_every_inventory_host_running(lab_hosts, lab_inventory):
    statuses = lab_hosts.status()

    assert [s.name for s in statuses] == [f"sshd {name}" for name in lab_inventory.hosts]
    for status, host in zip(statuses, lab_inventory.hosts.values()):
        assert status.running, status
        assert status.component == "sshd"
        assert status.address == f"{host.address}:{host.port}"
        assert status.pid == lab_hosts.pid(lab_hosts.host(host.name))


def test_ssh_with_strict_host_key_checking_reaches_every_host(lab_hosts, lab_inventory):
    hosts = list(lab_inventory.hosts.values())
    with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        results = list(pool.map(lambda h: ssh(h, "true"), hosts))

    failed = {h.name: r.stderr for h, r in zip(hosts, results) if r.returncode != 0}
    assert not failed


def test_ssh_refuses_the_host_key_of_another_host(lab_hosts, lab_inventory, tmp_path):
    first, second = list(lab_hosts.hosts)[:2]
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"{first.known_hosts_name} {public_key(lab_hosts, second)}\n")

    result = ssh(lab_inventory.hosts[first.name], "true", known_hosts=wrong)

    assert result.returncode != 0
    assert "Host key verification failed" in result.stderr


def test_known_hosts_has_one_line_per_host(lab_hosts, lab_inventory):
    hosts = list(lab_inventory.hosts.values())
    expected = [f"[{h.address}]:{h.port} {public_key(lab_hosts, h)}" for h in hosts]

    for path in {h.known_hosts for h in hosts}:
        lines = path.read_text().splitlines()
        assert lines == [line for h, line in zip(hosts, expected) if h.known_hosts == path]
    assert len({line.split()[2] for line in expected}) == len(hosts), "host keys are not distinct"


def test_sshd_listens_only_on_its_loopback_address(lab_hosts):
    listening = listening_by_pid()

    for host in lab_hosts.hosts:
        sockets = listening.get(lab_hosts.pid(host))
        assert sockets == {(host.address, host.port)}, host.name
        assert all(ipaddress.ip_address(address) in ipaddress.ip_network("127.0.0.0/8")
                   for address, _ in sockets)


def test_unknown_host_names_are_refused(lab_hosts):
    with pytest.raises(SshdError, match="not lab hosts: nosuch"):
        lab_hosts.up(names=["nosuch"])


# A private lab.

def free_port(*addresses: str) -> int:
    """A port that nothing listens on at any of the addresses (the kernel picks it on the first)."""
    for _ in range(20):
        with socket.socket() as probe:
            probe.bind((addresses[0], 0))
            port = probe.getsockname()[1]
        if all(_bindable(a, port) for a in addresses):
            return port
    raise RuntimeError(f"no free port on {addresses}")


def _bindable(address: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def write_inventory(path: Path, hosts: dict[str, str], port: int) -> Path:
    lines = ["name: private-lab", "vars:", f"  ssh_port: {port}",
             "  known_hosts: ssh/known_hosts", "  identity_file: ssh/client_ed25519", "hosts:"]
    lines += [f"  {name}: {{address: {address}}}" for name, address in hosts.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def private_lab(tmp_path):
    addresses = {"alpha": "127.0.0.251", "beta": "127.0.0.252"}
    inventory = write_inventory(tmp_path / "lab.yaml", addresses,
                                free_port(*addresses.values()))
    lab = SshdHosts(inventory, lab_root=tmp_path)
    try:
        yield lab
    finally:
        lab.down()


def test_first_up_creates_keys_configs_and_host_trees(private_lab, tmp_path):
    private_lab.up()

    for name in ("client_ed25519", "client_ed25519.pub", "authorized_keys", "known_hosts"):
        assert (tmp_path / "ssh" / name).is_file(), name
    for host in private_lab.hosts:
        folder = tmp_path / "hosts" / host.name
        for name in ("sshd_config", "ssh_host_ed25519_key", "sshd.pid", "sshd.log"):
            assert (folder / name).is_file(), name
        assert (folder / "root" / "etc").is_dir()
        assert ssh(host, "true").returncode == 0
    assert (tmp_path / "ssh" / "known_hosts").read_text() == "".join(
        f"[{h.address}]:{h.port} {public_key(private_lab, h)}\n" for h in private_lab.hosts)


def test_down_and_up_of_one_host_leaves_the_others_alone(private_lab):
    private_lab.up()
    alpha, beta = private_lab.hosts
    beta_pid = private_lab.pid(beta)
    alpha_key = private_lab.host_key(alpha).read_bytes()

    private_lab.down(names=["alpha"])

    assert [s.running for s in private_lab.status()] == [False, True]
    assert private_lab.status(["alpha"])[0].detail == "no pid file"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((alpha.address, alpha.port), timeout=2).close()
    assert private_lab.pid(beta) == beta_pid

    private_lab.up(names=["alpha"])

    assert all(s.running for s in private_lab.status())
    assert private_lab.pid(beta) == beta_pid
    assert private_lab.host_key(alpha).read_bytes() == alpha_key
    assert ssh(alpha, "true").returncode == 0


def test_down_is_idempotent_and_status_says_stopped(private_lab):
    private_lab.up()
    private_lab.down()
    private_lab.down()

    assert [(s.running, s.pid, s.detail) for s in private_lab.status()] == [(False, None, "no pid file")] * 2


def test_an_sshd_that_died_is_reported_and_restarted(private_lab):
    private_lab.up()
    alpha = private_lab.hosts[0]
    pid = private_lab.pid(alpha)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)

    status = private_lab.status(["alpha"])[0]
    assert not status.running
    assert status.detail.startswith("died")

    private_lab.up()
    assert private_lab.pid(alpha) not in (None, pid)


def test_addresses_outside_loopback_are_refused(tmp_path):
    inventory = write_inventory(tmp_path / "lab.yaml", {"outside": "192.0.2.1"}, 2222)
    lab = SshdHosts(inventory, lab_root=tmp_path / "lab")

    with pytest.raises(SshdError, match="not a loopback address"):
        lab.up()
    assert not (tmp_path / "lab").exists()
