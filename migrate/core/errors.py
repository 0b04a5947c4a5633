"""Exception types shared by the engine; each carries a message a sysadmin can act on."""


class MigrateError(Exception):
    """Base class: the message is shown to the operator as is."""


class InventoryError(MigrateError):
    """An inventory file is malformed; the message names the file and the key path."""

    def __init__(self, path, key: str, problem: str):
        self.path, self.key, self.problem = str(path), key, problem
        super().__init__(f"{path}: {key}: {problem}")


class SecretError(MigrateError):
    """A secret reference cannot be resolved or its file is unsafe."""


class HostKeyError(MigrateError):
    """The host key of a target is unknown or differs from known_hosts: the run must stop."""


class TransportError(MigrateError):
    """A connection could not be made or a transfer failed."""


class CommandError(MigrateError):
    """A remote command exited non-zero where success was required."""

    def __init__(self, host: str, command: str, exited: int, stderr: str):
        self.host, self.command, self.exited, self.stderr = host, command, exited, stderr
        tail = stderr.strip().splitlines()[-3:]
        super().__init__(f"{host}: `{command}` exited {exited}" + (": " + " | ".join(tail) if tail else ""))


class SudoRefused(CommandError):
    """sudo would not run a command (not allowed by the host's sudoers, or it wants a password,
    which `sudo -n` never asks for): the command did not run at all."""

    def __init__(self, host_label: str, host: str, command: str, stderr: str, reason: str):
        CommandError.__init__(self, host, command, 1, stderr)
        self.reason = reason
        self.args = (f"{host_label}: sudo refused `{command}`: {reason}",)

    def __str__(self) -> str:
        return self.args[0]


class PreflightError(MigrateError):
    """A preflight check refused to go on; nothing has been changed."""


class LockHeld(MigrateError):
    """Another mutating run holds the inventory's lock."""
