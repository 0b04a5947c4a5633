"""Steps used only by tests, referenced by import path (tests.helpers.steps:Class) so that
a resumed or rolled-back run in a new process can rebuild them from the journal."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from migrate.core.ops import RemoveFile, RunCommand, WriteFile, register
from migrate.core.step import Step, StepContext, Verification
from migrate.core.transport import LOCAL
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


# -- steps on the controller itself (host `local`): engine tests that need no lab --------------

class PartsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    folder: str
    parts: list[str]
    pause: float = Field(0.0, ge=0)


PART = b"part\n"


class WritesParts(Step):
    """Writes one file per part in `folder` on the controller, each after a pause.

    Like the archive import with its HyperKitty state, it reads once per instance which parts are
    already there, plans only the others, and reads again (refresh) to verify: an instance that
    has verified holds facts from before anything that happens next.
    """

    Params = PartsParams
    title = "write parts"

    def __init__(self, params=None):
        super().__init__(params)
        self._present: set[str] | None = None

    def path(self, part: str) -> str:
        return str(Path(self.params.folder) / part)

    def present(self, ctx: StepContext, *, refresh: bool = False) -> set[str]:
        if self._present is None or refresh:
            self._present = {p for p in self.params.parts if ctx.read_file(LOCAL, self.path(p)) == PART}
        return self._present

    def plan(self, ctx: StepContext) -> list:
        ops: list = []
        for part in self.params.parts:
            if part not in self.present(ctx):
                ops.append(RunCommand(LOCAL, ["sleep", str(self.params.pause)], f"pause before {part}",
                                      undo_argv=["true"], undo_description="nothing to undo"))
                ops.append(WriteFile(LOCAL, self.path(part), PART))
        return ops

    def verify(self, ctx: StepContext) -> Verification:
        result = Verification("writes-parts")
        present = self.present(ctx, refresh=True)
        for part in self.params.parts:
            result.add(f"{part} written", True, part in present)
        return result


class CopyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    folder: str
    pause: float = Field(0.0, ge=0)


@register
@dataclass
class RepeatableCommand(RunCommand):
    """A command that is harmless to run again, like a search index update."""

    repeatable: ClassVar[bool] = True


class CopiesThroughScratch(Step):
    """Writes a scratch copy, makes the result from it, indexes it after a pause, then removes the
    copy: the shape of an import (copy, import, index, discard the copy). Verification checks the
    result only, as the import's checks the messages and not the index."""

    Params = CopyParams
    title = "copy through a scratch file"

    def plan(self, ctx: StepContext) -> list:
        scratch, result, index = (str(Path(self.params.folder) / name) for name in ("scratch", "result", "index"))
        return [WriteFile(LOCAL, scratch, PART, 0o600),
                RunCommand(LOCAL, ["cp", scratch, result], "make the result from the copy",
                           undo_argv=["rm", "-f", result]),
                RepeatableCommand(LOCAL, ["sh", "-c", 'sleep "$1" && cp "$2" "$3"', "sh", str(self.params.pause),
                                          result, index], "index the result", undo_argv=["rm", "-f", index]),
                RemoveFile(LOCAL, scratch)]

    def verify(self, ctx: StepContext) -> Verification:
        result = Verification("copies-through-scratch")
        result.add("result", PART, ctx.read_file(LOCAL, str(Path(self.params.folder) / "result")))
        return result


class MarkerParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    folder: str


class VerifiesOnceMarked(Step):
    """Writes a file; verifies only once a `marker` file exists beside it (put there by the test,
    as an operator fixes what made verification fail)."""

    Params = MarkerParams
    title = "write, verify once marked"

    def plan(self, ctx: StepContext) -> list:
        return [WriteFile(LOCAL, str(Path(self.params.folder) / "written"), PART)]

    def verify(self, ctx: StepContext) -> Verification:
        result = Verification("verifies-once-marked")
        result.add("marker", True, ctx.read_file(LOCAL, str(Path(self.params.folder) / "marker")) is not None)
        return result
