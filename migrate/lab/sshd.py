"""The lab's SSH hosts: one OpenSSH server per inventory host, each on its own loopback address.

The lab inventory is the single source of truth: it names the hosts, their addresses and ports,
and the known_hosts file and client key that the transport will use. This module makes those
true on this machine:

    LAB_ROOT/ssh/client_ed25519(.pub)      the client key (the inventory's identity_file)
    LAB_ROOT/ssh/authorized_keys           accepts that key on every lab host
    LAB_ROOT/ssh/known_hosts               one line per host (the inventory's known_hosts)
    LAB_ROOT/hosts/<name>/sshd_config      plus ssh_host_ed25519_key, sshd.pid, sshd.log
    LAB_ROOT/hosts/<name>/root/            the host's private tree
    LAB_ROOT/users/<user>/authorized_keys  the same client key for the lab's login users

Keys are generated once and never replaced: a new host key would break every known_hosts copy.
A host whose inventory user is not root is reached as that user, with sudo where the inventory
says so (migrate.lab.login_users makes the users and their sudo rules). Root may still log in
everywhere unless `forbid_root_where_sudo` is set; see SshdHosts.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import signal
import socket
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from ..core.errors import MigrateError
from ..core.paths import PROJECT_ROOT
from . import login_users
from .base import (
    ServiceStatus, assert_loopback, lab_path, pid_alive, read_pid, running_pid, spawn, stop_pid,
    wait_for_port,
)

DEFAULT_INVENTORY = PROJECT_ROOT / "inventories" / "lab.yaml"

SSHD = "/usr/sbin/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"
# sshd refuses to start without its privilege separation directory, and nothing creates it here.
PRIVSEP_DIR = Path("/run/sshd")

START_TIMEOUT = 10.0
LOG_TAIL_LINES = 15


class SshdError(MigrateError):
    """A lab sshd could not be configured or started; the message carries its log tail."""


@dataclass(frozen=True)
class SshHost:
    """What the lab needs to know about one inventory host to serve SSH for it."""

    name: str
    address: str
    port: int
    user: str
    sudo: bool
    known_hosts: Path
    identity_file: Path

    @property
    def endpoint(self) -> str:
        from ..core.inventory import endpoint

        return endpoint(self.address, self.port)

    @property
    def known_hosts_name(self) -> str:
        # OpenSSH writes the bare address for port 22 and "[address]:port" for any other port.
        return self.address if self.port == 22 else f"[{self.address}]:{self.port}"


def ssh_hosts(inventory, lab_root: Path) -> list[SshHost]:
    """The inventory's hosts as lab SSH hosts, in inventory order; refuse non-loopback addresses.

    A host without known_hosts or identity_file in the inventory gets the lab's own files.
    """
    hosts = []
    for name, host in inventory.hosts.items():
        try:
            assert_loopback(host.address)
        except ValueError as exc:
            raise SshdError(f"lab host {name}: {exc}; the lab only uses 127.0.0.0/8") from exc
        hosts.append(SshHost(
            name=name,
            address=str(host.address),
            port=int(host.port),
            user=str(host.user or "root"),
            sudo=bool(host.sudo),
            known_hosts=Path(host.known_hosts or lab_root / "ssh" / "known_hosts"),
            identity_file=Path(host.identity_file or lab_root / "ssh" / "client_ed25519"),
        ))
    return hosts


def sshd_config_text(host: SshHost, *, host_key: Path, pid_file: Path, authorized_keys: Path,
                     lab_users: Sequence[str] = (), lab_users_keys: str = "",
                     permit_root: bool = True) -> str:
    """The sshd_config of one lab host.

    Root finds its key in `authorized_keys`; the lab's login users (`lab_users`) in
    `lab_users_keys`, a per-user pattern, since sshd reads that file as the user logging in.
    """
    lines = [
        f"# Lab host {host.name}: written by migrate.lab.sshd on every `lab.up`; edits are lost.",
        f"ListenAddress {host.endpoint}",
        f"HostKey {host_key}",
        f"PidFile {pid_file}",
        f"AuthorizedKeysFile {authorized_keys}",
        f"PermitRootLogin {'prohibit-password' if permit_root else 'no'}",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        # The keys live in the lab folder, which may sit under a world-writable parent (/tmp in
        # tests); sshd would otherwise reject them like a badly owned home directory.
        "StrictModes no",
        f"Subsystem sftp {SFTP_SERVER}",
        # Parallel steps open many sessions and connections at once against one host.
        "MaxSessions 50",
        "MaxStartups 50:30:100",
        # Debian's bash reads ~/.bashrc for ssh commands only when SHLVL is unset or 0; root's
        # .bashrc here runs pyenv initialisation and costs ~140 ms per command.
        "SetEnv SHLVL=1",
        # No AcceptEnv line: sshd's default accepts no environment variable from the client.
        "LogLevel INFO",
    ]
    if lab_users:
        lines += [f"Match User {','.join(lab_users)}", f"    AuthorizedKeysFile {lab_users_keys}"]
    return "\n".join(lines) + "\n"


def listening_sockets(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state that the process pid holds open."""
    inodes = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return []
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    found = []
    for table, family in (("tcp", 4), ("tcp6", 6)):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # 0A is TCP_LISTEN
                found.append(_proc_net_address(local, family))
    return found


def _proc_net_address(field: str, family: int) -> tuple[str, int]:
    # /proc/net/tcp prints the address as 32-bit words in host (little-endian) byte order.
    hex_addr, hex_port = field.split(":")
    raw = b"".join(bytes.fromhex(hex_addr[i:i + 8])[::-1] for i in range(0, len(hex_addr), 8))
    address = ipaddress.IPv4Address(raw) if family == 4 else ipaddress.IPv6Address(raw)
    return str(address), int(hex_port, 16)


class SshdHosts:
    """The lab component serving SSH for every host of the lab inventory."""

    name = "sshd"

    def __init__(self, inventory_path: Path | str = DEFAULT_INVENTORY,
                 lab_root: Path | str | None = None, *, forbid_root_where_sudo: bool = False):
        """`forbid_root_where_sudo` refuses root logins on the hosts the inventory reaches as
        another user, as production does. Off by default: the lab is shared, and inventories
        that still log in as root everywhere keep working against it."""
        self.inventory_path = Path(inventory_path)
        # Another root gives a private lab (tests); the default is the machine-wide one.
        self.lab_root = Path(lab_root) if lab_root is not None else lab_path()
        self.forbid_root_where_sudo = forbid_root_where_sudo
        self._hosts: list[SshHost] | None = None

    @property
    def hosts(self) -> list[SshHost]:
        if self._hosts is None:
            # Imported here so that the lab package loads even while the inventory module changes.
            from ..core.inventory import load_inventory

            self._hosts = ssh_hosts(load_inventory(self.inventory_path), self.lab_root)
        return self._hosts

    def host(self, name: str) -> SshHost:
        return self.select([name])[0]

    def select(self, names: Iterable[str] | None = None) -> list[SshHost]:
        """The named hosts in inventory order (all when names is None); unknown names fail."""
        if names is None:
            return list(self.hosts)
        wanted = set(names)
        unknown = wanted - {h.name for h in self.hosts}
        if unknown:
            raise SshdError(f"not lab hosts: {', '.join(sorted(unknown))} "
                            f"(inventory {self.inventory_path})")
        return [h for h in self.hosts if h.name in wanted]

    # Where each host's files live.

    def host_dir(self, host: SshHost) -> Path:
        return self.lab_root / "hosts" / host.name

    def config_file(self, host: SshHost) -> Path:
        return self.host_dir(host) / "sshd_config"

    def host_key(self, host: SshHost) -> Path:
        return self.host_dir(host) / "ssh_host_ed25519_key"

    def pid_file(self, host: SshHost) -> Path:
        return self.host_dir(host) / "sshd.pid"

    def log_file(self, host: SshHost) -> Path:
        return self.host_dir(host) / "sshd.log"

    def host_root(self, host: SshHost) -> Path:
        return self.host_dir(host) / "root"

    @property
    def authorized_keys(self) -> Path:
        return self.lab_root / "ssh" / "authorized_keys"

    @property
    def lab_users(self) -> list[login_users.LoginUser]:
        """The users other than root that the lab's sshds accept (see migrate.lab.login_users)."""
        return login_users.login_users((h.user, h.sudo) for h in self.hosts)

    def known_hosts_line(self, host: SshHost) -> str:
        key_type, key_data = self.host_key(host).with_suffix(".pub").read_text().split()[:2]
        return f"{host.known_hosts_name} {key_type} {key_data}"

    def pid(self, host: SshHost) -> int | None:
        """The pid of this host's sshd if it runs; a recycled pid of another program is not ours."""
        pid = running_pid(self.pid_file(host))
        if pid is None:
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        # sshd rewrites its process title ("sshd: /usr/sbin/sshd -D -e -f CFG [listener] ..."),
        # so the arguments are no longer NUL-separated: look for "-f CFG" as words.
        words = b" " + cmdline.replace(b"\0", b" ") + b" "
        return pid if b" -f " + os.fsencode(self.config_file(host)) + b" " in words else None

    # The Component interface.

    def up(self, names: Iterable[str] | None = None) -> None:
        """Start the sshd of every named host that is not running. A running one is left alone,
        unless its configuration changed: then it is checked and reloaded (SIGHUP: the same
        process re-reads it; open sessions go on)."""
        hosts = self.select(names)
        with self._lock():
            PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
            changed = self._prepare_files()
            to_start = [h for h in hosts if self.pid(h) is None]
            to_reload = [h for h in hosts if h not in to_start and h.name in changed]
            for host in to_start:
                self._fail_for_port_taken(host)
            self._validate_configs(to_start + to_reload)
            for host in to_reload:
                self._reload(host)
            started = {}
            for host in to_start:
                self.pid_file(host).unlink(missing_ok=True)
                started[host.name] = spawn(
                    [SSHD, "-D", "-e", "-f", str(self.config_file(host))],
                    log_file=self.log_file(host), pid_file=self.pid_file(host),
                )
            failed = [h for h in to_start
                      if not wait_for_port(h.address, h.port, START_TIMEOUT, pid=started[h.name])]
            if failed:
                for host in failed:
                    stop_pid(self.pid_file(host))
                raise SshdError("\n".join(
                    f"sshd of lab host {h.name} ({h.endpoint}) did not start; "
                    f"{self.log_file(h)} ends with:\n{self._log_tail(h)}" for h in failed))

    def status(self, names: Iterable[str] | None = None) -> list[ServiceStatus]:
        return [self._host_status(h) for h in self.select(names)]

    def down(self, names: Iterable[str] | None = None) -> None:
        """Stop the sshd of every named host (already stopped ones are fine)."""
        hosts = self.select(names)
        with self._lock():
            ours = [h for h in hosts if self.pid(h) is not None]
            for host in hosts:
                if host not in ours:
                    # Either nothing ran or the pid now belongs to another program: never kill it.
                    self.pid_file(host).unlink(missing_ok=True)
            # sshd exits within milliseconds of SIGTERM; stopping in parallel saves the polling.
            with ThreadPoolExecutor(max_workers=max(1, len(ours))) as pool:
                list(pool.map(lambda h: stop_pid(self.pid_file(h)), ours))

    # Helpers.

    @contextmanager
    def _lock(self) -> Iterator[None]:
        # The lab is shared by every session on this machine: two `up`s must not race for ports.
        lock_file = self.lab_root / "ssh" / ".lock"
        lock_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(lock_file, "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _prepare_files(self) -> set[str]:
        """Keys, authorized_keys, login users, configs and known_hosts for every host of the
        inventory; return the names of the hosts whose sshd_config changed.

        All hosts, not only those being started, so that known_hosts always lists the whole lab.
        """
        for identity in sorted({h.identity_file for h in self.hosts}):
            if not identity.exists():
                _keygen(identity, comment="migrate-lab client")
        keys = "".join(_public_key_line(identity) + "\n"
                       for identity in sorted({h.identity_file for h in self.hosts}))
        _write_if_changed(self.authorized_keys, keys)
        users = self.lab_users
        login_users.ensure(users)
        login_users.write_authorized_keys(users, self.lab_root, keys)
        changed = set()
        for host in self.hosts:
            (self.host_root(host) / "etc").mkdir(parents=True, exist_ok=True)
            if not self.host_key(host).exists():
                _keygen(self.host_key(host), comment=f"root@{host.name}")
            text = sshd_config_text(
                host, host_key=self.host_key(host), pid_file=self.pid_file(host),
                authorized_keys=self.authorized_keys, lab_users=[u.name for u in users],
                lab_users_keys=login_users.authorized_keys_pattern(self.lab_root),
                permit_root=host.user == "root" or not self.forbid_root_where_sudo)
            if _write_if_changed(self.config_file(host), text):
                changed.add(host.name)
        by_file: dict[Path, list[str]] = {}
        for host in self.hosts:
            by_file.setdefault(host.known_hosts, []).append(self.known_hosts_line(host))
        for path, lines in by_file.items():
            _write_if_changed(path, "".join(line + "\n" for line in lines))
        return changed

    def _reload(self, host: SshHost) -> None:
        """SIGHUP: sshd closes its listener and re-executes itself with the new configuration."""
        pid = self.pid(host)
        if pid is None:
            return
        log = self.log_file(host)
        offset = log.stat().st_size if log.exists() else 0
        os.kill(pid, signal.SIGHUP)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and pid_alive(pid):
            with open(log, "rb") as fh:
                fh.seek(offset)
                if b"Server listening on" in fh.read():
                    if wait_for_port(host.address, host.port, START_TIMEOUT, pid=pid):
                        return
                    break
            time.sleep(0.02)
        raise SshdError(f"sshd of lab host {host.name} ({host.endpoint}) did not come back after "
                        f"reloading its configuration; {log} ends with:\n{self._log_tail(host)}")

    def _fail_for_port_taken(self, host: SshHost) -> None:
        try:
            socket.create_connection((host.address, host.port), timeout=0.5).close()
        except OSError:
            return
        raise SshdError(f"lab host {host.name}: {host.endpoint} already accepts connections "
                        f"but not from the sshd in {self.pid_file(host)}; stop that program")

    def _validate_configs(self, hosts: Sequence[SshHost]) -> None:
        checks = {h.name: subprocess.Popen(
            [SSHD, "-t", "-f", str(self.config_file(h))],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        ) for h in hosts}
        problems = []
        for name, proc in checks.items():
            output, _ = proc.communicate()
            if proc.returncode != 0:
                problems.append(f"{name}: {output.strip()}")
        if problems:
            raise SshdError("sshd -t refused the lab configuration:\n" + "\n".join(problems))

    def _host_status(self, host: SshHost) -> ServiceStatus:
        status = ServiceStatus(component=self.name, name=f"sshd {host.name}", running=False,
                               address=host.endpoint)
        pid = self.pid(host)
        if pid is None:
            if not self.config_file(host).exists():
                status.detail = "not set up"
            elif read_pid(self.pid_file(host)) is not None:
                # `down` removes the pid file, so a stale one means the process died on its own.
                last = self._log_tail(host, 1)
                status.detail = f"died: {last}" if last else "died"
            else:
                status.detail = "no pid file"
            return status
        status.pid = pid
        if (host.address, host.port) in listening_sockets(pid):
            status.running = True
            status.detail = "listening"
        else:
            status.detail = f"process runs but does not listen on {host.endpoint}"
        return status

    def _log_tail(self, host: SshHost, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_file(host).read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])


def _keygen(private_key: Path, *, comment: str) -> None:
    private_key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(private_key)],
        check=True, stdin=subprocess.DEVNULL, capture_output=True,
    )


def _public_key_line(private_key: Path) -> str:
    key_type, key_data = Path(f"{private_key}.pub").read_text().split()[:2]
    return f"{key_type} {key_data}"


def _write_if_changed(path: Path, text: str) -> bool:
    """Replace path atomically, so a concurrent ssh never reads half a known_hosts file; True
    if the file changed."""
    try:
        if path.read_text() == text:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return True
