"""The lab's SSH hosts: real sshd processes on loopback, reached with the real OpenSSH client.

Tests on the shared lab only read it (or run `up`, which leaves running hosts alone): other
sessions on this machine may be using it. Stopping and starting hosts happens in a private lab
with its own root, inventory, addresses and a free port.
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from migrate.core.paths import LAB_ROOT
from migrate.lab import login_users
from migrate.lab.base import pid_alive
from migrate.lab.sshd import SshdError, SshdHosts

pytestmark = pytest.mark.lab


def ssh(host, *command: str, known_hosts: Path | None = None, user: str | None = None) -> subprocess.CompletedProcess:
    """Run command on an inventory host with the OpenSSH client, refusing unknown host keys."""
    argv = [
        "ssh", "-i", str(host.identity_file), "-o", "IdentitiesOnly=yes",
        "-o", f"UserKnownHostsFile={known_hosts or host.known_hosts}",
        "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
        "-p", str(host.port), f"{user or host.user}@{host.address}", *command,
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


def write_inventory(path: Path, hosts: dict[str, str], port: int, host_vars: dict[str, str] | None = None) -> Path:
    lines = ["name: private-lab", "vars:", f"  ssh_port: {port}",
             "  known_hosts: ssh/known_hosts", "  identity_file: ssh/client_ed25519", "hosts:"]
    lines += [f"  {name}: {{address: {address}" + (f", vars: {host_vars[name]}" if name in (host_vars or {}) else "") + "}"
              for name, address in hosts.items()]
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


# The login path of production: an unprivileged user with sudo, beside root on the legacy host.

@pytest.fixture
def sudo_lab_root():
    """A private lab's root that the lab's login users can read (pytest's tmp_path is 0700)."""
    root = Path(tempfile.mkdtemp(prefix="migrate-sudo-lab-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root)


def sudo_lab(root: Path, **options) -> SshdHosts:
    """alpha logged into as root (the legacy host), beta as `migrate` with sudo (a new host)."""
    addresses = {"alpha": "127.0.0.249", "beta": "127.0.0.250"}
    inventory = root / "lab.yaml"
    if not inventory.exists():
        write_inventory(inventory, addresses, free_port(*addresses.values()),
                        host_vars={"beta": "{ssh_user: migrate, sudo: true}"})
    return SshdHosts(inventory, lab_root=root, **options)


@pytest.fixture
def private_sudo_lab(sudo_lab_root):
    lab = sudo_lab(sudo_lab_root)
    try:
        yield lab
    finally:
        lab.down()


def test_the_sudo_host_is_reached_as_the_lab_user_with_sudo_and_no_password(private_sudo_lab):
    private_sudo_lab.up()
    alpha, beta = private_sudo_lab.hosts

    assert (alpha.user, alpha.sudo, beta.user, beta.sudo) == ("root", False, "migrate", True)
    assert ssh(beta, "id", "-un").stdout == "migrate\n"
    assert ssh(beta, "sudo", "-n", "--", "id", "-un").stdout == "root\n"
    account = pwd.getpwnam("migrate")
    assert (account.pw_dir, account.pw_shell) == (str(LAB_ROOT / "home" / "migrate"), "/bin/bash")
    sudoers = Path("/etc/sudoers.d/migrate-lab-migrate")
    assert sudoers.read_text().splitlines()[1:] == ["migrate ALL=(ALL:ALL) NOPASSWD: ALL"]
    assert (sudoers.stat().st_mode & 0o777, sudoers.stat().st_uid) == (0o440, 0)
    assert subprocess.run(["visudo", "-c", "-q"], capture_output=True).returncode == 0
    # Additive: root still logs in everywhere, and the legacy host knows no other way.
    assert ssh(alpha, "id", "-un").stdout == "root\n"
    assert ssh(beta, "id", "-un", user="root").stdout == "root\n"


def test_the_limited_user_may_run_one_command_through_sudo(private_sudo_lab):
    private_sudo_lab.up()
    beta = private_sudo_lab.hosts[1]

    allowed = ssh(beta, "sudo", "-n", "--", login_users.LIMITED_ALLOWED, "-un", user=login_users.LIMITED_USER)
    needs_password = ssh(beta, "sudo", "-n", "--", login_users.LIMITED_NEEDS_PASSWORD, "/",
                         user=login_users.LIMITED_USER)
    refused = ssh(beta, "sudo", "-n", "--", "rm", "-f", "--", "/nonexistent", user=login_users.LIMITED_USER)

    assert (allowed.returncode, allowed.stdout) == (0, "root\n")
    assert needs_password.returncode == 1 and "a password is required" in needs_password.stderr
    assert refused.returncode == 1 and "is not allowed to execute" in refused.stderr


def test_root_can_be_refused_where_the_inventory_uses_sudo_by_a_reload(private_sudo_lab, sudo_lab_root):
    private_sudo_lab.up()
    alpha, beta = private_sudo_lab.hosts
    pids = [private_sudo_lab.pid(h) for h in (alpha, beta)]

    strict = sudo_lab(sudo_lab_root, forbid_root_where_sudo=True)
    strict.up()

    # The running sshd re-read its configuration: same process, new rule.
    assert [strict.pid(h) for h in (alpha, beta)] == pids
    assert "PermitRootLogin no" in strict.config_file(beta).read_text()
    refused = ssh(beta, "true", user="root")
    assert refused.returncode == 255 and "Permission denied" in refused.stderr
    assert ssh(beta, "sudo", "-n", "--", "id", "-un").stdout == "root\n"
    assert ssh(alpha, "id", "-un").stdout == "root\n"
    # An up with nothing changed reloads nothing.
    log_size = strict.log_file(beta).stat().st_size
    strict.up()
    assert strict.log_file(beta).stat().st_size == log_size


def test_an_account_the_lab_did_not_make_is_not_taken_over(sudo_lab_root):
    name = f"migrate-t{os.getpid()}"
    subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent", name], check=True)
    try:
        addresses = {"gamma": "127.0.0.248"}
        inventory = write_inventory(sudo_lab_root / "lab.yaml", addresses, free_port(*addresses.values()),
                                    host_vars={"gamma": f"{{ssh_user: {name}, sudo: true}}"})
        lab = SshdHosts(inventory, lab_root=sudo_lab_root)
        with pytest.raises(login_users.LoginUserError, match=f"{name}: an account of that name already exists"):
            lab.up()
        assert not Path(f"/etc/sudoers.d/migrate-lab-{name}").exists()
        assert pwd.getpwnam(name).pw_dir == "/nonexistent"
    finally:
        subprocess.run(["userdel", name], check=True)
