"""What every lab component shares: the Component interface and plain-process management.

There is no systemd on the machines the lab runs on: every daemon is a plain process started by
this code, tracked by a pid file, and stopped by that pid.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol, Sequence

from ..core.paths import LAB_ROOT


@dataclass
class ServiceStatus:
    """One line of `lab.status`: a daemon of a component."""

    component: str
    name: str  # e.g. "sshd eugeni"
    running: bool
    address: str = ""  # "127.0.0.11:2222"
    pid: int | None = None
    detail: str = ""


class Component(Protocol):
    name: str

    def up(self) -> None:
        """Start what is not running; leave what runs alone (idempotent)."""

    def status(self) -> list[ServiceStatus]:
        """Report every daemon of the component without changing anything."""

    def down(self) -> None:
        """Stop every daemon of the component (idempotent)."""


@contextlib.contextmanager
def component_lock(home: Path) -> Iterator[None]:
    """Serialise a component's up/down between processes (parallel sessions share the lab): an
    exclusive flock on `home/component.lock`, released when the file closes."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "component.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def lab_path(*parts: str) -> Path:
    return LAB_ROOT.joinpath(*parts)


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    # A zombie still answers kill(0); treat it as dead.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def running_pid(pid_file: Path) -> int | None:
    pid = read_pid(pid_file)
    return pid if pid_alive(pid) else None


def stop_pid(pid_file: Path, timeout: float = 10.0, sig: int = signal.SIGTERM) -> bool:
    """Stop the process named by pid_file: TERM, wait, then KILL. True if one was running."""
    pid = running_pid(pid_file)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return False
    os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.05)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
        while pid_alive(pid):
            time.sleep(0.05)
    pid_file.unlink(missing_ok=True)
    return True


def terminate_all(pids: Sequence[int], grace: float = 5.0) -> None:
    """SIGTERM each process, SIGKILL those still alive after `grace` seconds; return when all are gone."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(pid_alive(pid) for pid in pids):
        time.sleep(0.05)
    for pid in pids:
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    while any(pid_alive(pid) for pid in pids):
        time.sleep(0.05)


def spawn(argv: Sequence[str], *, log_file: Path, pid_file: Path, env: dict | None = None,
          cwd: Path | None = None) -> int:
    """Start a long-running foreground process detached from us, record its pid, return it.

    stdin is /dev/null and output goes to a file: a daemon that inherits a pipe keeps it open.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log, open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(
            list(argv), stdin=devnull, stdout=log, stderr=subprocess.STDOUT,
            env=env, cwd=cwd, start_new_session=True,
        )
    pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


def wait_for_port(address: str, port: int, timeout: float = 30.0, pid: int | None = None) -> bool:
    """Poll until something accepts TCP connections on address:port (or the pid dies)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid is not None and not pid_alive(pid):
            return False
        try:
            with socket.create_connection((address, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def assert_loopback(address: str) -> None:
    """The lab never listens beyond 127.0.0.0/8 or ::1."""
    import ipaddress

    if not ipaddress.ip_address(address).is_loopback:
        raise ValueError(f"lab address {address} is not a loopback address")


def clean_env(foreign) -> dict[str, str]:
    """This process's environment without variables that would steer another program's Python."""
    return {key: value for key, value in os.environ.items() if key not in foreign}


def port_open(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


def read_or_none(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def write_if_changed(path: Path, text: str, mode: int) -> bool:
    """Replace path atomically only when its text differs; the mode is set either way."""
    if read_or_none(path) == text:
        os.chmod(path, mode)
        return False
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return True


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
