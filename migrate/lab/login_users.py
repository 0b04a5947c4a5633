"""The lab's unprivileged login users and their sudo rules: production's way onto its new hosts.

Production logs in as `migrate` and uses `sudo -n` on every host except the legacy server, where
operators log in as root. The lab mirrors that: every non-root `ssh_user` of the lab inventory
becomes a system user of this machine, and since the lab's sshds all run here and share its
users, that user exists on every lab host. A second user, `migrate-limited`, may run one command
through sudo, needs a password for another and may run nothing else, so that tests see sudo
refuse both ways ("a password is required", "is not allowed to execute").

    LAB_ROOT/home/<user>/                  the user's home (bash; password `*`: no password
                                           login, and not "locked" for an sshd without PAM)
    <lab root>/users/<user>/authorized_keys  the keys the lab's sshds accept for it, per lab
    /etc/sudoers.d/migrate-lab-<user>      its sudo rule, checked with `visudo -cf` before it is
                                           installed, mode 0440

Users and sudo rules are machine-wide: they are created when missing and never removed by `lab.up`
or `lab.down`. An account of the same name that the lab did not make (another home) is refused
rather than taken over.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..core.errors import MigrateError
from ..core.paths import LAB_ROOT
from .base import write_if_changed

SUDOERS_DIR = Path("/etc/sudoers.d")
SUDOERS_PREFIX = "migrate-lab-"
SHELL = "/bin/bash"

LIMITED_USER = "migrate-limited"
LIMITED_ALLOWED = "/usr/bin/id"
LIMITED_NEEDS_PASSWORD = "/usr/bin/ls"


def full_sudo(name: str) -> tuple[str, ...]:
    """The deploy account's rule, as a sysadmin writes it for an automation account that works
    as root: no password (it has none, and `sudo -n` never prompts), any command as any user."""
    return (f"{name} ALL=(ALL:ALL) NOPASSWD: ALL",)


# No authentication by default, so that a command outside the rule is refused as not allowed
# (with authentication sudo -n would only say that a password is required); ls keeps one.
LIMITED_SUDO = (f"Defaults:{LIMITED_USER} !authenticate",
                f"{LIMITED_USER} ALL=(root) {LIMITED_ALLOWED}, PASSWD: {LIMITED_NEEDS_PASSWORD}")


class LoginUserError(MigrateError):
    """A lab login user or its sudo rule could not be set up; the message names the user."""


@dataclass(frozen=True)
class LoginUser:
    name: str
    sudoers: tuple[str, ...]  # its sudoers lines; () for a user without sudo

    @property
    def home(self) -> Path:
        return LAB_ROOT / "home" / self.name

    @property
    def sudoers_file(self) -> Path:
        return SUDOERS_DIR / f"{SUDOERS_PREFIX}{self.name}"

    def sudoers_text(self) -> str:
        lines = [f"# Lab login user {self.name}: written by migrate.lab.login_users on `lab.up`."]
        lines += list(self.sudoers)
        return "\n".join(lines) + "\n"


def login_users(users: Iterable[tuple[str, bool]]) -> list[LoginUser]:
    """The lab's login users for (ssh_user, sudo) pairs of an inventory, plus the limited one."""
    sudo_by_user: dict[str, bool] = {}
    for name, sudo in users:
        if name != "root":
            sudo_by_user[name] = sudo_by_user.get(name, False) or sudo
    found = [LoginUser(name, full_sudo(name) if sudo else ()) for name, sudo in sudo_by_user.items()]
    if LIMITED_USER not in sudo_by_user:
        found.append(LoginUser(LIMITED_USER, LIMITED_SUDO))
    return found


def ensure(users: Iterable[LoginUser]) -> None:
    """Create each missing user and install its sudo rule; what is already right is left alone."""
    for user in users:
        _ensure_account(user)
        if user.sudoers:
            _install_sudoers(user)


def write_authorized_keys(users: Iterable[LoginUser], lab_root: Path, keys: str) -> None:
    """`keys` (authorized_keys lines) for every user, below lab_root. sshd reads the file as the
    user, so the folders are open to all and the file is readable: public keys, no secret."""
    for user in users:
        folder = lab_root / "users" / user.name
        folder.mkdir(mode=0o755, parents=True, exist_ok=True)
        for path in (lab_root / "users", folder):
            os.chmod(path, 0o755)
        write_if_changed(folder / "authorized_keys", keys, 0o644)


def authorized_keys_pattern(lab_root: Path) -> str:
    """The sshd AuthorizedKeysFile for lab users (%u: the user logging in)."""
    return str(lab_root / "users" / "%u" / "authorized_keys")


def _ensure_account(user: LoginUser) -> None:
    try:
        entry = pwd.getpwnam(user.name)
    except KeyError:
        user.home.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        _run(user, ["useradd", "--system", "--user-group", "--create-home", "--home-dir", str(user.home),
                    "--shell", SHELL, "--password", "*", "--comment", "migrate lab login user", user.name])
        return
    if Path(entry.pw_dir) != user.home:
        raise LoginUserError(f"lab login user {user.name}: an account of that name already exists on this "
                             f"machine with home {entry.pw_dir}, not {user.home}; the lab does not take over "
                             "accounts it did not create: remove or rename it, or use another ssh_user")
    if entry.pw_shell != SHELL or _shadow_password(user.name) != "*":
        _run(user, ["usermod", "--shell", SHELL, "--password", "*", user.name])


def _shadow_password(name: str) -> str | None:
    for line in Path("/etc/shadow").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name and len(fields) > 1:
            return fields[1]
    return None


def _install_sudoers(user: LoginUser) -> None:
    text = user.sudoers_text()
    target = user.sudoers_file
    try:
        if target.read_text() == text and (target.stat().st_mode & 0o777) == 0o440:
            return
    except FileNotFoundError:
        pass
    if shutil.which("visudo") is None or not SUDOERS_DIR.is_dir():
        raise LoginUserError(f"lab login user {user.name}: sudo is not installed on this machine "
                             "(./run setup installs it)")
    # sudo skips files whose name holds a dot, so the candidate waits beside the target unread.
    candidate = target.with_name(f"{target.name}.new")
    write_if_changed(candidate, text, 0o440)
    checked = subprocess.run(["visudo", "-c", "-q", "-f", str(candidate)], capture_output=True, text=True,
                             stdin=subprocess.DEVNULL)
    if checked.returncode != 0:
        candidate.unlink(missing_ok=True)
        raise LoginUserError(f"lab login user {user.name}: visudo refused its sudo rule "
                             f"({(checked.stderr or checked.stdout).strip()}); {target} is unchanged")
    os.replace(candidate, target)


def _run(user: LoginUser, argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise LoginUserError(f"lab login user {user.name}: `{' '.join(argv)}` exited {result.returncode}: "
                             f"{result.stderr.strip()}")
