"""Connections to hosts: verified SSH (Fabric/Paramiko) and the local controller.

Three promises live here and nowhere else:
- host keys are checked against the inventory's known_hosts; an unknown or changed key stops the
  run (Fabric's default would accept any key);
- one connection per host, reused for the whole run, with TCP_NODELAY set (paramiko leaves Nagle
  on, which costs ~30 ms per command on loopback);
- every remote command line is built from an argument list by `build_command`, the one place
  where quoting happens.

Transports perform; they do not decide. Only the executor calls the mutating methods.
"""

from __future__ import annotations

import base64
import codecs
import hashlib
import logging
import os
import re
import select
import shlex
import shutil
import socket
import stat
import subprocess
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping, Protocol, Sequence

import paramiko

from . import sftp as sftp_files
from .errors import CommandError, HostKeyError, SudoRefused, TransportError
from .secrets import redact

LOCAL = "local"  # the host name of the controller itself

# paramiko logs failures that this module turns into errors naming the host; without a handler
# Python would print them to stderr a second time, unredacted and out of context.
logging.getLogger("paramiko").addHandler(logging.NullHandler())
logging.getLogger("paramiko").propagate = False

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def build_command(argv: Sequence[str], *, sudo: bool = False, env: Mapping[str, str] | None = None,
                  cwd: str | None = None) -> str:
    """Turn an argument list into one shell command line, every argument quoted.

    This is the only function that produces shell text from values. `sudo` runs the command
    through `sudo -n` (never prompts); `env` is passed through `env NAME=VALUE`; `cwd` is entered
    first and the command is not run if that fails.
    """
    if isinstance(argv, (str, bytes)) or not argv:
        raise ValueError("a command must be a non-empty list of arguments, not a string")
    words: list[str] = []
    if sudo:
        words += ["sudo", "-n", "--"]
    if env:
        words.append("env")
        for name, value in env.items():
            if not _ENV_NAME.fullmatch(name):
                raise ValueError(f"invalid environment variable name {name!r}")
            words.append(f"{name}={value}")
    for arg in argv:
        if not isinstance(arg, str):
            raise TypeError(f"command argument {arg!r} is not a string")
        words.append(arg)
    for word in words:
        if "\x00" in word:
            raise ValueError("a command argument cannot contain a NUL byte")
    line = " ".join(shlex.quote(w) for w in words)
    if cwd is not None:
        line = f"cd -- {shlex.quote(cwd)} && {line}"
    return line


@dataclass
class Result:
    """What a command did. `command` is the quoted line, shown to operators after redaction."""

    host: str
    command: str
    exited: int
    stdout: str = ""
    stderr: str = ""
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return self.exited == 0

    def check(self) -> "Result":
        if not self.ok:
            raise CommandError(self.host, redact(self.command), self.exited, redact(self.stderr))
        return self


# What sudo prints, alone on stderr and with exit status 1 (127 when it is not installed at all),
# when it does not run the command; the reason shown to the operator, with what to do about it.
_SUDO_REFUSALS = (
    (re.compile(r"^sudo: a password is required$"),
     "it asks {user} for a password, which sudo -n never gives: allow the command with NOPASSWD "
     "in the host's sudoers"),
    (re.compile(r"^sudo: a terminal is required to read the password"),
     "it asks {user} for a password, which sudo -n never gives: allow the command with NOPASSWD "
     "in the host's sudoers"),
    (re.compile(r"^Sorry, user \S+ is not allowed to execute "),
     "{user} is not allowed to run it by the host's sudoers: add the command to the user's rule"),
    (re.compile(r"^\S+ is not in the sudoers file"),
     "{user} has no rule in the host's sudoers: give it one (the inventory says sudo: true)"),
    (re.compile(r"^sudo: sorry, you must have a tty to run sudo"),
     "the host's sudoers sets requiretty for {user}: add `Defaults:{user} !requiretty`"),
    (re.compile(r"^(?:\S+: )?(?:(?:line )?\d+: )?sudo: (?:command )?not found$"),
     "sudo is not installed on the host (the inventory says sudo: true): install it"),
)


def sudo_refusal(exited: int, stdout: bytes, stderr: str, user: str) -> str | None:
    """Why sudo refused to run a command, or None if it ran it (whatever the command then did)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    if exited not in (1, 127) or stdout or not lines:
        return None
    for pattern, reason in _SUDO_REFUSALS:
        if pattern.search(lines[0]):
            return reason.format(user=user)
    return None


class Transport(Protocol):
    """What the executor needs from a connection to one host."""

    name: str

    def run(self, argv: Sequence[str], *, input: bytes | str | None = None,
            env: Mapping[str, str] | None = None, cwd: str | None = None,
            timeout: float | None = None, on_output: Callable[[str], None] | None = None) -> Result: ...

    def read_file(self, path: str) -> bytes | None: ...

    def stat_mode(self, path: str) -> int | None: ...

    def stat_owner(self, path: str) -> tuple[str, str] | None: ...

    def write_file(self, path: str, data: bytes, mode: int = 0o644, *, owner: str | None = None,
                   group: str | None = None) -> None: ...

    def remove_file(self, path: str) -> None: ...

    def close(self) -> None: ...


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style SHA256 fingerprint, as `ssh-keygen -lf` prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class _RejectUnknownHost(paramiko.RejectPolicy):
    """RejectPolicy that names the host and the offered key's fingerprint in its error."""

    def __init__(self, host_label: str, known_hosts: Path):
        self.host_label, self.known_hosts = host_label, known_hosts

    def missing_host_key(self, client, hostname, key):
        raise HostKeyError(
            f"{self.host_label}: UNKNOWN host key: the server offered {key.get_name()} "
            f"{fingerprint(key)}, and {self.known_hosts} has no key for {hostname}. "
            f"Verify the fingerprint out of band, then add the key to known_hosts."
        )


class SSHTransport:
    """A verified, reused SSH connection to one inventory host."""

    def __init__(self, host, *, connect_timeout: float = 10.0):
        self.host = host
        self.name = host.name
        self._label = f"{host.name} ({host.endpoint})"
        self._connect_timeout = connect_timeout
        self._conn = None
        self._sftp = None
        self._lock = threading.Lock()

    # -- connection -------------------------------------------------------------------------
    def connect(self):
        """Open the connection now (it is otherwise opened on first use)."""
        with self._lock:
            if self._conn is None:
                self._conn = self._open()
            return self._conn

    def _open(self):
        from fabric import Config, Connection

        known_hosts = self.host.known_hosts
        if known_hosts is None:
            raise HostKeyError(f"{self._label}: no known_hosts file is set in the inventory; "
                               "refusing to connect without host key verification")
        if not Path(known_hosts).is_file():
            raise HostKeyError(f"{self._label}: known_hosts file {known_hosts} does not exist")
        connect_kwargs: dict = {"allow_agent": False, "look_for_keys": False}
        if self.host.identity_file is not None:
            connect_kwargs["key_filename"] = str(self.host.identity_file)
        config = Config(overrides={"load_ssh_configs": False})
        conn = Connection(self.host.address, user=self.host.user, port=self.host.port,
                          config=config, connect_timeout=self._connect_timeout,
                          connect_kwargs=connect_kwargs)
        # Fabric accepts any host key and loads no known_hosts by default: replace both before connecting.
        conn.client.load_host_keys(str(known_hosts))
        conn.client.set_missing_host_key_policy(_RejectUnknownHost(self._label, Path(known_hosts)))
        try:
            conn.open()
        except paramiko.BadHostKeyException as exc:
            raise HostKeyError(
                f"{self._label}: host key CHANGED: known_hosts ({known_hosts}) has "
                f"{exc.expected_key.get_name()} {fingerprint(exc.expected_key)}, the server offered "
                f"{exc.key.get_name()} {fingerprint(exc.key)}. Possible interception or a rebuilt "
                f"host: check out of band before updating known_hosts."
            ) from None
        except HostKeyError:
            raise
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise TransportError(f"{self._label}: cannot connect: {exc}") from None
        transport = conn.client.get_transport()
        transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.set_keepalive(30)
        return conn

    def server_key_fingerprint(self) -> str:
        key = self.connect().client.get_transport().get_remote_server_key()
        return f"{key.get_name()} {fingerprint(key)}"

    @property
    def fabric(self):
        """The underlying Fabric connection (for port forwarding)."""
        return self.connect()

    # -- commands ---------------------------------------------------------------------------
    def run(self, argv, *, input=None, env=None, cwd=None, timeout=None, on_output=None) -> Result:
        """Run a command; `on_output`, when given, receives its stdout as it arrives (for
        progress displays of long commands); the Result still carries all of it."""
        command = build_command(argv, sudo=self.host.sudo, env=env, cwd=cwd)
        transport = self.connect().client.get_transport()
        started = time.monotonic()
        try:
            chan = transport.open_session(timeout=self._connect_timeout)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise TransportError(f"{self._label}: connection lost: {exc}") from None
        try:
            chan.exec_command(command)
            if input is not None:
                chan.sendall(input.encode() if isinstance(input, str) else input)
            chan.shutdown_write()
            out, err = _drain(chan, timeout, on_output)
            exited = chan.recv_exit_status()
        finally:
            chan.close()
        stderr = err.decode("utf-8", "replace")
        if self.host.sudo:
            self._fail_for_sudo_refusal(command, exited, out, stderr)
        return Result(self.name, command, exited, out.decode("utf-8", "replace"),
                      stderr, time.monotonic() - started)

    def _fail_for_sudo_refusal(self, command: str, exited: int, out: bytes, stderr: str) -> None:
        """Raise SudoRefused when sudo would not run the command. That is no answer of the
        command: a read must not take it for an absent file, nor a check for a failed one."""
        reason = sudo_refusal(exited, out, stderr, self.host.user)
        if reason is not None:
            raise SudoRefused(self._label, self.name, redact(command), redact(stderr), reason)

    # -- files --------------------------------------------------------------------------------
    def _sftp_client(self):
        with self._lock:
            if self._sftp is None:
                conn = self._conn or self._open()
                self._conn = conn
                self._sftp = conn.sftp()
            return self._sftp

    def read_file(self, path: str) -> bytes | None:
        if self.host.sudo:
            # Through sudo the bytes come back as command output, which is decoded as text:
            # base64 keeps 8-bit content (latin-1 mboxes, pickles) intact.
            result = self.run(["sh", "-c", 'test -e "$1" || exit 3; base64 -w0 -- "$1"', "sh", path])
            if result.exited == 3:
                return None
            result.check()
            return base64.b64decode(result.stdout)
        sftp = self._sftp_client()
        try:
            with sftp.open(path, "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TransportError(f"{self._label}: cannot read {path}: {exc}") from None

    def stat_mode(self, path: str) -> int | None:
        if self.host.sudo:
            result = self.run(["stat", "-c", "%a", "--", path])
            return int(result.stdout, 8) if result.ok else None
        try:
            return stat.S_IMODE(self._sftp_client().stat(path).st_mode)
        except FileNotFoundError:
            return None

    def stat_owner(self, path: str) -> tuple[str, str] | None:
        """The numeric owner and group of path (what a rollback gives back), None if absent."""
        result = self.run(["stat", "-c", "%u %g", "--", path])
        if not result.ok:
            return None
        uid, gid = result.stdout.split()
        return uid, gid

    def write_file(self, path: str, data: bytes, mode: int = 0o644, *, owner: str | None = None,
                   group: str | None = None) -> None:
        """Write atomically: a temporary file beside the target, then rename over it.

        Every temporary file is created with the final mode (never wider), and removed again
        when anything fails: a cleartext secret must not wait in a readable leftover. The file
        belongs to `owner` and `group` when given, otherwise to the user writing it: root
        through sudo, the login user without.
        """
        directory, _, base = path.rpartition("/")
        tmp = f"{directory}/.{base}.migrate-{uuid.uuid4().hex[:8]}"
        if self.host.sudo:
            self._write_through_sudo(path, tmp, data, mode, owner, group)
            return
        self._put(tmp, data, mode, target=path)
        try:
            if owner or group:
                self._install_step(path, tmp, ["chown", "--", _owner_spec(owner, group), tmp])
            self._sftp_client().posix_rename(tmp, path)
        except OSError as exc:
            self._discard(tmp)
            raise TransportError(f"{self._label}: cannot replace {path}: {exc}") from None
        except BaseException:
            self._discard(tmp)
            raise

    def _write_through_sudo(self, path: str, tmp: str, data: bytes, mode: int, owner: str | None,
                            group: str | None) -> None:
        # The login user cannot write the target: stage the bytes in its own 0600 file in /tmp,
        # let root copy them beside the target (install creates its copy 0600, gives it its
        # owner, then its mode), and rename. `mv -T` replaces path itself, never a file inside a
        # folder of that name.
        staging = f"/tmp/.migrate-{uuid.uuid4().hex}"
        self._put(staging, data, 0o600, target=path)
        install = ["install", "-m", f"{mode:o}"]
        install += ["-o", owner] if owner else []
        install += ["-g", group] if group else []
        try:
            self._install_step(path, tmp, [*install, "--", staging, tmp])
            self._install_step(path, tmp, ["mv", "-f", "-T", "--", tmp, path])
        finally:
            self._discard(staging)

    def _install_step(self, path: str, tmp: str, argv: list[str]) -> None:
        """One command of a write; if it fails, the temporary file goes and the error names path."""
        result = self.run(argv)
        if not result.ok:
            self.run(["rm", "-f", "--", tmp])
            raise TransportError(f"{self._label}: cannot write {path}: `{redact(result.command)}` "
                                 f"exited {result.exited}: {_last_line(result.stderr)}")

    def _put(self, path: str, data: bytes, mode: int, *, target: str) -> None:
        """A new file holding data, `mode` from its creation on; nothing left if that fails.
        Errors name `target`, the file the caller is writing by way of this one."""
        sftp = self._sftp_client()
        try:
            fh = sftp_files.create_new(sftp, path, mode)
            try:
                with fh:
                    # The server's umask may have narrowed the mode: set it exactly, still empty.
                    fh.chmod(mode)
                    sftp_files.write_all(fh, data)
            except BaseException:
                self._discard(path)
                raise
        except (OSError, paramiko.SSHException) as exc:
            folder = path.rpartition("/")[0] or "/"
            raise TransportError(f"{self._label}: cannot write {target} (by way of {path}): {exc}; "
                                 f"check the free space and permissions of {folder}") from None

    def _discard(self, path: str) -> None:
        """Remove a temporary file of ours if it is there; a failure to do so is not news."""
        try:
            self._sftp_client().remove(path)
        except (OSError, paramiko.SSHException):
            pass

    def remove_file(self, path: str) -> None:
        if self.host.sudo:
            self.run(["rm", "-f", "--", path]).check()
            return
        try:
            self._sftp_client().remove(path)
        except FileNotFoundError:
            pass

    @contextmanager
    def forward(self, remote_port: int, remote_host: str = "127.0.0.1") -> Iterator[int]:
        """Forward a free local loopback port to remote_host:remote_port on the host's side."""
        transport = self.connect().client.get_transport()
        # Fail now, and clearly, if nothing answers at the far end: a forward's own listener
        # would accept connections and leave each client waiting.
        try:
            channel = transport.open_channel("direct-tcpip", (remote_host, remote_port), ("127.0.0.1", 0),
                                             timeout=self._connect_timeout)
            channel.close()
        except (paramiko.ChannelException, paramiko.SSHException, EOFError, OSError) as exc:
            raise TransportError(f"{self._label}: nothing answers at {remote_host}:{remote_port} "
                                 f"as seen from the host: {exc}") from None
        forwarder = _Forwarder(transport, (remote_host, remote_port), self._connect_timeout)
        forwarder.start()
        try:
            yield forwarder.port
        finally:
            forwarder.stop()

    def close(self) -> None:
        with self._lock:
            if self._sftp is not None:
                self._sftp.close()
                self._sftp = None
            if self._conn is not None:
                self._conn.close()
                self._conn = None



class _Forwarder(threading.Thread):
    """A local port forwarded through an SSH connection.

    Fabric's own forwarder polls its listener every 10 ms with a backlog of one, which costs
    up to 10 ms per connection and stalls parallel clients (an HTTP API client opens a
    connection per request). This one blocks in accept with a real backlog and pumps each
    connection in its own thread.
    """

    def __init__(self, transport: paramiko.Transport, remote: tuple[str, int], timeout: float):
        super().__init__(daemon=True, name=f"forward-{remote[0]}:{remote[1]}")
        self._transport, self._remote, self._timeout = transport, remote, timeout
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                client, origin = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                channel = self._transport.open_channel("direct-tcpip", self._remote, origin, timeout=self._timeout)
            except (paramiko.ChannelException, paramiko.SSHException, EOFError, OSError):
                client.close()
                continue
            threading.Thread(target=_pump, args=(client, channel, self._stopping), daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()
        self._listener.close()
        self.join(timeout=2)


def _pump(sock: socket.socket, channel: paramiko.Channel, stopping: threading.Event) -> None:
    try:
        while not stopping.is_set():
            ready, _, _ = select.select([sock, channel], [], [], 0.5)
            if sock in ready:
                data = sock.recv(65536)
                if not data:
                    break
                channel.sendall(data)
            if channel in ready:
                data = channel.recv(65536)
                if not data:
                    break
                sock.sendall(data)
    except OSError:
        pass
    finally:
        channel.close()
        sock.close()


def _drain(chan: paramiko.Channel, timeout: float | None,
           on_output: Callable[[str], None] | None = None) -> tuple[bytes, bytes]:
    """Read stdout and stderr together, so a chatty stderr cannot stall the channel window.

    `on_output` gets stdout as text, chunk by chunk in arrival order; a UTF-8 sequence split
    between two chunks is held back until it is whole.
    """
    out, err = bytearray(), bytearray()
    deadline = None if timeout is None else time.monotonic() + timeout
    decoder = codecs.getincrementaldecoder("utf-8")("replace") if on_output is not None else None

    def stdout_chunk(chunk: bytes) -> None:
        out.extend(chunk)
        if decoder is not None and chunk:
            text = decoder.decode(chunk)
            if text:
                on_output(text)

    while True:
        got = False
        while chan.recv_ready():
            stdout_chunk(chan.recv(65536))
            got = True
        while chan.recv_stderr_ready():
            err += chan.recv_stderr(65536)
            got = True
        if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
            # Data can still be in flight after the status; read until EOF on stdout.
            while True:
                chunk = chan.recv(65536)
                if not chunk:
                    break
                stdout_chunk(chunk)
            while chan.recv_stderr_ready():
                err += chan.recv_stderr(65536)
            if decoder is not None:
                rest = decoder.decode(b"", final=True)
                if rest:
                    on_output(rest)
            return bytes(out), bytes(err)
        if deadline is not None and time.monotonic() > deadline:
            raise TransportError(f"command timed out after {timeout} s")
        if not got:
            select.select([chan], [], [], 0.5)


def _user_or_id(name: str | None) -> str | int | None:
    """shutil.chown takes names or numbers; a rollback hands back the numbers it captured."""
    return int(name) if name is not None and name.isdigit() else name


def _owner_spec(owner: str | None, group: str | None) -> str:
    """chown's OWNER[:GROUP] (or :GROUP)."""
    return f"{owner or ''}{':' + group if group else ''}"


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return redact(lines[-1]) if lines else "(no message)"


class LocalTransport:
    """The controller itself: commands run without a shell, files are local."""

    name = LOCAL

    def run(self, argv, *, input=None, env=None, cwd=None, timeout=None, on_output=None) -> Result:
        """Run a command; `on_output` receives its whole stdout once it has ended."""
        command = build_command(argv, env=env, cwd=cwd)
        full_env = None
        if env:
            full_env = dict(os.environ)
            full_env.update(env)
        started = time.monotonic()
        data = input.encode() if isinstance(input, str) else input
        try:
            proc = subprocess.run(list(argv), input=data, capture_output=True, env=full_env,
                                  cwd=cwd, timeout=timeout)
        except FileNotFoundError as exc:
            return Result(LOCAL, command, 127, "", str(exc), time.monotonic() - started)
        stdout = proc.stdout.decode("utf-8", "replace")
        if on_output is not None and stdout:
            on_output(stdout)
        return Result(LOCAL, command, proc.returncode, stdout,
                      proc.stderr.decode("utf-8", "replace"), time.monotonic() - started)

    def read_file(self, path: str) -> bytes | None:
        try:
            return Path(path).read_bytes()
        except FileNotFoundError:
            return None

    def stat_mode(self, path: str) -> int | None:
        try:
            return stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            return None

    def stat_owner(self, path: str) -> tuple[str, str] | None:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        return str(st.st_uid), str(st.st_gid)

    def write_file(self, path: str, data: bytes, mode: int = 0o644, *, owner: str | None = None,
                   group: str | None = None) -> None:
        target = Path(path)
        tmp = target.with_name(f".{target.name}.migrate-{uuid.uuid4().hex[:8]}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            if owner or group:
                shutil.chown(tmp, _user_or_id(owner), _user_or_id(group))
            os.chmod(tmp, mode)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def remove_file(self, path: str) -> None:
        Path(path).unlink(missing_ok=True)

    def close(self) -> None:
        pass


class Service(Protocol):
    """An API client reached through a host (e.g. Mailman 3's REST API over an SSH forward).

    `reader` is a view that can only read; the executor hands it to safe reads, and the full
    service only to an operation's `perform`.
    """

    reader: object

    def close(self) -> None: ...


_SERVICE_FACTORIES: dict[str, Callable[["Connections", object], Service]] = {}


def register_service(kind: str, factory: Callable[["Connections", object], Service]) -> None:
    """Phase packages register how to build their API clients from a connection and a host."""
    _SERVICE_FACTORIES[kind] = factory


class Connections:
    """One transport per host for the whole run, opened on first use; likewise API services."""

    def __init__(self, inventory, *, connect_timeout: float = 10.0):
        self.inventory = inventory
        self._connect_timeout = connect_timeout
        self._pool: dict[str, Transport] = {}
        self._services: dict[tuple[str, str], Service] = {}
        self._lock = threading.Lock()

    def service(self, kind: str, host_name: str) -> Service:
        key = (kind, host_name)
        with self._lock:
            service = self._services.get(key)
        if service is None:
            try:
                factory = _SERVICE_FACTORIES[kind]
            except KeyError:
                raise TransportError(f"no service of kind {kind!r} is registered") from None
            service = factory(self, self.inventory.host(host_name))
            with self._lock:
                self._services[key] = service
        return service

    def get(self, host_name: str) -> Transport:
        with self._lock:
            transport = self._pool.get(host_name)
            if transport is None:
                if host_name == LOCAL:
                    transport = LocalTransport()
                else:
                    transport = SSHTransport(self.inventory.host(host_name),
                                             connect_timeout=self._connect_timeout)
                self._pool[host_name] = transport
            return transport

    def close_all(self) -> None:
        with self._lock:
            for service in self._services.values():
                service.close()
            self._services.clear()
            for transport in self._pool.values():
                transport.close()
            self._pool.clear()

    def __enter__(self) -> "Connections":
        return self

    def __exit__(self, *exc) -> None:
        self.close_all()
