"""Steps used only by tests, referenced by import path (tests.helpers.steps:Class) so that
a resumed or rolled-back run in a new process can rebuild them from the journal."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from migrate.core.ops import RunCommand, WriteFile
from migrate.core.secrets import from_env
from migrate.core.step import Step, StepContext, Verification
from migrate.core.transport import LOCAL
from migrate.demo.steps import MaintenanceNotice, NoticeParams

from .secret_forms import encoded_forms


class SlowParams(NoticeParams):
    pause: float = Field(2.0, ge=0)


class SlowNotice(MaintenanceNotice):
    """The notice step with a remote pause before each write: room to kill a run mid-step."""

    Params = SlowParams

    def plan(self, ctx: StepContext) -> list:
        ops = []
        for op in super().plan(ctx):
            ops.append(RunCommand(op.host, ["sleep", str(self.params.pause)], "pause",
                                  undo_argv=["true"], undo_description="nothing to undo"))
            ops.append(op)
        return ops


class SecretParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str
    secret_var: str
    target: str


class UsesSecret(Step):
    """Hands an inventory secret to a remote command and writes it into a file."""

    Params = SecretParams

    def plan(self, ctx: StepContext) -> list:
        secret = ctx.inventory.host(self.params.host).secret(self.params.secret_var).reveal()
        return [
            RunCommand(self.params.host, ["sh", "-c", 'test -n "$1"', "sh", secret], "check the token",
                       undo_argv=["true"]),
            WriteFile(self.params.host, self.params.target, f"token={secret}\n".encode(), 0o600),
            RunCommand(self.params.host, ["printf", "%s\\n", *encoded_forms(secret).values()],
                       "print the token in every encoding", undo_argv=["true"]),
        ]

    def verify(self, ctx: StepContext) -> Verification:
        result = Verification("uses-secret")
        found = ctx.read_file(self.params.host, self.params.target)
        result.add("token file written", True, found is not None and found.startswith(b"token="))
        return result


class FailingParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str
    path: str


class FailsAfterWrite(Step):
    """Writes a file, then runs a command that fails: the write must be rolled back."""

    Params = FailingParams

    def plan(self, ctx: StepContext) -> list:
        return [WriteFile(self.params.host, self.params.path, b"half-done\n"),
                RunCommand(self.params.host, ["false"], "a command that fails", undo_argv=["true"])]

    def verify(self, ctx: StepContext) -> Verification:
        return Verification("fails-after-write")


class WrongVerify(Step):
    """Applies fine but its verification can never pass."""

    Params = FailingParams

    def plan(self, ctx: StepContext) -> list:
        return [WriteFile(self.params.host, self.params.path, b"written\n")]

    def verify(self, ctx: StepContext) -> Verification:
        result = Verification("wrong-verify")
        result.add("content", b"something else\n", ctx.read_file(self.params.host, self.params.path))
        return result


class ShowsSecretParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    secret_env: str
    forms: list[str] = ["raw"]
    before: int = Field(0, ge=0)
    after: int = Field(0, ge=0)
    shapes: bool = False


_PRINT = "import sys; sys.stdout.write('x' * int(sys.argv[1]) + ' '.join(sys.argv[3:]) + 'y' * int(sys.argv[2]))"


class ShowsSecret(Step):
    """Hands a secret, in the encoded forms named, to a local command that prints them between
    `before` x's and `after` y's; with `shapes`, its verification holds the secret in every shape
    of Python data."""

    Params = ShowsSecretParams

    def secret(self) -> str:
        return from_env(self.params.secret_env).reveal()

    def plan(self, ctx: StepContext) -> list:
        forms = encoded_forms(self.secret())
        argv = [sys.executable, "-c", _PRINT, str(self.params.before), str(self.params.after),
                *(forms[name] for name in self.params.forms)]
        return [RunCommand(LOCAL, argv, "print the secret", undo_argv=["true"])]

    def verify(self, ctx: StepContext) -> Verification:
        result = Verification("shows-secret")
        shapes = secret_shapes(self.secret()) if self.params.shapes else {}
        for name, value in shapes.items():
            result.add(name, value, value)
        return result


@dataclass
class Holder:
    value: str


class Model(BaseModel):
    value: str


class Shows:
    """An object whose str shows what it holds."""

    def __init__(self, value: str):
        self.value = value

    def __str__(self) -> str:
        return f"<shows {self.value}>"


def secret_shapes(secret: str) -> dict:
    """The secret inside each kind of value a step may hand to a journal or a report."""
    return {
        "dict key": {secret: 1},
        "tuple dict key": {(secret, 2): 3},
        "set": {secret, "plain"},
        "frozenset": frozenset({secret}),
        "bytes": f"token={secret}".encode(),
        "bytearray": bytearray(secret.encode()),
        "exception": ValueError(f"bad {secret}"),
        "object": Shows(secret),
        "dataclass": Holder(secret),
        "pydantic": Model(value=secret),
        "path": Path("/etc") / secret,
        "nested": [{"a": ({secret},)}],
    }
