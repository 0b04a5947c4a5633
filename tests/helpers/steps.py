"""Steps used only by tests, referenced by import path (tests.helpers.steps:Class) so that
a resumed or rolled-back run in a new process can rebuild them from the journal."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from migrate.core.ops import Operation, RemoveFile, RunCommand, WriteFile, register
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


class RaisesParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    folder: str
    name: str
    where: Literal["nowhere", "preflight", "plan", "capture", "verify"] = "nowhere"
    error: Literal["RecursionError", "ValueError"] = "ValueError"
    message: str = "bad input"
    armed_by: str = Field("", description="raise only while this file exists (empty: always)")


def _walk(value) -> int:
    """Counts nodes the naive way: a self-referencing list makes it recurse without end."""
    return 1 + sum(_walk(v) for v in value) if isinstance(value, list) else 1


class RaisesIn(Step):
    """Writes `<folder>/<name>`, and raises an exception that is no MigrateError where told: in a
    preflight check, in plan, in the capture of its second operation while applying (after the
    first has changed something), or in verify; only while `armed_by` exists, if given. A
    RecursionError comes from a real recursion over a self-referencing list, as hostile input
    causes it."""

    Params = RaisesParams

    @property
    def title(self) -> str:  # type: ignore[override]
        return f"raises in {self.params.where}: {self.params.name}"

    def _raise_if(self, ctx: StepContext, where: str) -> None:
        if self.params.where != where:
            return
        if self.params.armed_by and ctx.read_file(LOCAL, self.params.armed_by) is None:
            return
        if self.params.error == "RecursionError":
            loop: list = []
            loop.append(loop)
            _walk(loop)
        raise ValueError(f"{self.params.message} in {where}")

    def fail_for_hostile_input(self, ctx: StepContext) -> None:
        self._raise_if(ctx, "preflight")

    def plan(self, ctx: StepContext) -> list:
        self._raise_if(ctx, "plan")
        target = str(Path(self.params.folder) / self.params.name)
        if self.params.where == "capture":
            return [WriteFile(LOCAL, target, PART), StateUnreadableOnceWritten(LOCAL, target)]
        return [WriteFile(LOCAL, target, PART)]

    def verify(self, ctx: StepContext) -> Verification:
        self._raise_if(ctx, "verify")
        result = Verification("raises-in")
        result.add("written", PART, ctx.read_file(LOCAL, str(Path(self.params.folder) / self.params.name)))
        return result


@register
@dataclass
class StateUnreadableOnceWritten(Operation):
    """Changes nothing; its capture raises ValueError once `path` exists (so the plan's reads pass,
    and the capture before applying it, after the write, fails)."""

    path: str = ""

    def describe(self) -> str:
        return f"look at {self.path}"

    def capture(self, reader):
        if reader.read_file(self.host, self.path) is not None:
            raise ValueError(f"cannot make sense of {self.path}")
        return None

    def perform(self, effects) -> None:
        return None


@register
@dataclass
class InterruptedOnce(Operation):
    """Stands for Ctrl-C in the middle of an operation: if `trigger` exists, it removes it and
    raises KeyboardInterrupt; otherwise it does nothing."""

    trigger: str = ""

    def describe(self) -> str:
        return f"an operation interrupted while {self.trigger} exists"

    def perform(self, effects) -> None:
        if effects.read_file(self.host, self.trigger) is not None:
            effects.remove_file(self.host, self.trigger)
            raise KeyboardInterrupt


class InterruptedParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    folder: str


class WritesThenInterrupted(Step):
    """Writes `<folder>/written`, then runs `InterruptedOnce` on `<folder>/trigger`."""

    Params = InterruptedParams
    title = "write, then be interrupted"

    def plan(self, ctx: StepContext) -> list:
        folder = Path(self.params.folder)
        return [WriteFile(LOCAL, str(folder / "written"), PART), InterruptedOnce(LOCAL, str(folder / "trigger"))]

    def verify(self, ctx: StepContext) -> Verification:
        result = Verification("writes-then-interrupted")
        result.add("written", PART, ctx.read_file(LOCAL, str(Path(self.params.folder) / "written")))
        result.add("trigger used", None, ctx.read_file(LOCAL, str(Path(self.params.folder) / "trigger")))
        return result


class UndoFailsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    folder: str
    then_fail: bool = True


class UndoFails(Step):
    """Writes a copy, holds something whose undo fails, then (unless told not to) fails: its
    rollback fails half-way, leaving the copy and the held thing applied (exit 12)."""

    Params = UndoFailsParams
    title = "copy, hold, fail"

    def plan(self, ctx: StepContext) -> list:
        ops = [WriteFile(LOCAL, str(Path(self.params.folder) / "copy"), PART, 0o600),
               RunCommand(LOCAL, ["true"], "hold the copy", undo_argv=["false"], undo_description="release it")]
        if self.params.then_fail:
            ops.append(RunCommand(LOCAL, ["false"], "a command that fails", undo_argv=["true"]))
        return ops

    def verify(self, ctx: StepContext) -> Verification:
        return Verification("undo-fails")


@register
@dataclass
class UndoneByAnInterruption(Operation):
    """Changes nothing; its undo is `InterruptedOnce` on `trigger` (Ctrl-C during a rollback)."""

    trigger: str = ""

    def describe(self) -> str:
        return f"something whose undo is interrupted while {self.trigger} exists"

    def perform(self, effects) -> None:
        return None

    def inverse(self, pre_state):
        return InterruptedOnce(self.host, self.trigger)


class WritesThenUndoInterrupted(Step):
    """Writes `<folder>/written`, then `UndoneByAnInterruption` on `<folder>/trigger`."""

    Params = InterruptedParams
    title = "write, then be interrupted when undone"

    def plan(self, ctx: StepContext) -> list:
        folder = Path(self.params.folder)
        return [WriteFile(LOCAL, str(folder / "written"), PART), UndoneByAnInterruption(LOCAL, str(folder / "trigger"))]

    def verify(self, ctx: StepContext) -> Verification:
        result = Verification("writes-then-undo-interrupted")
        result.add("written", PART, ctx.read_file(LOCAL, str(Path(self.params.folder) / "written")))
        return result
