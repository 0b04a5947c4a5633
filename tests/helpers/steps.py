"""Steps used only by tests, referenced by import path (tests.helpers.steps:Class) so that
a resumed or rolled-back run in a new process can rebuild them from the journal."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from migrate.core.ops import RunCommand, WriteFile
from migrate.core.step import Step, StepContext, Verification
from migrate.demo.steps import MaintenanceNotice, NoticeParams


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
