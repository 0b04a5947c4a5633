"""The lifecycle every step follows: preflight → plan → apply → verify → rollback.

- preflight: read-only checks, each a method named `fail_for_<what it refuses>` that raises
  `PreflightError`; they run in definition order.
- plan: returns the operations (data) that apply will execute, in order.
- apply: the runner executes the plan through the executor, capturing each operation's
  pre-state in the journal first; steps do not apply anything themselves.
- verify: read-only, returns checks comparing expected and actual; runnable on its own later.
- rollback: the runner executes each applied operation's inverse, built from the captured
  pre-state, in reverse order. A step whose operations cannot be undone sets
  `reversible = False` and the runner asks for an explicit confirmation.

Steps are registered by id (`demo.notice`) and also reachable by import path
(`package.module:Class`), which the journal records so a new process can rebuild them.
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import MigrateError, PreflightError
from .executor import Executor
from .ops import Operation

_STEPS: dict[str, type["Step"]] = {}


@dataclass
class Check:
    """One verification: what was expected, what was found."""

    name: str
    ok: bool
    expected: Any = None
    actual: Any = None
    detail: str = ""

    def to_dict(self) -> dict:
        return {"name": self.name, "ok": self.ok, "expected": self.expected,
                "actual": self.actual, "detail": self.detail}


@dataclass
class Verification:
    step: str
    checks: list[Check] = field(default_factory=list)
    # Set when the checks could not run at all (the step refused its input): not a difference.
    refused: str = ""

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def add(self, name: str, expected: Any, actual: Any, detail: str = "") -> Check:
        check = Check(name, expected == actual, expected, actual, detail)
        self.checks.append(check)
        return check


@dataclass
class StepContext:
    """What a step sees: the inventory, the executor's safe reads, and its parameters."""

    inventory: Any
    executor: Executor

    def read(self, host: str, argv, **kwargs):
        return self.executor.read(host, argv, **kwargs)

    def read_file(self, host: str, path: str) -> bytes | None:
        return self.executor.read_file(host, path)


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Step:
    """Base class. Subclasses set `id`, `title`, `Params`, and implement plan and verify."""

    id: ClassVar[str] = ""
    title: ClassVar[str] = ""
    reversible: ClassVar[bool] = True
    Params: ClassVar[type[BaseModel]] = NoParams
    # Parameters that make a valid instance, for the contract test and documentation.
    example: ClassVar[dict] = {}

    def __init__(self, params: dict | BaseModel | None = None):
        if isinstance(params, BaseModel):
            self.params = params
        else:
            try:
                self.params = self.Params(**(params or {}))
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}" for e in exc.errors())
                raise MigrateError(f"step {self.id}: invalid parameters: {problems}") from None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.id:
            _STEPS[cls.id] = cls

    @classmethod
    def ref(cls) -> str:
        return f"{cls.__module__}:{cls.__qualname__}"

    def describe(self) -> str:
        return self.title or self.id

    # -- lifecycle ------------------------------------------------------------------------------
    def preflight(self, ctx: StepContext) -> None:
        """Run every `fail_for_*` check, in the order they are defined in the class."""
        for name in self.preflight_checks():
            getattr(self, name)(ctx)

    @classmethod
    def preflight_checks(cls) -> list[str]:
        names: list[str] = []
        for klass in reversed(cls.__mro__):
            for name in vars(klass):
                if name.startswith("fail_for_") and name not in names:
                    names.append(name)
        return names

    def plan(self, ctx: StepContext) -> list[Operation]:
        raise NotImplementedError

    def verify(self, ctx: StepContext) -> Verification:
        raise NotImplementedError

    def verify_rolled_back(self, ctx: StepContext, pre_states: list[tuple[Operation, Any]]) -> Verification:
        """After a rollback, each changed thing must read back as its captured pre-state."""
        result = Verification(self.id)
        earliest: dict[tuple, tuple[Operation, Any]] = {}
        for op, pre in pre_states:  # in the order they were applied
            earliest.setdefault(op.state_key(), (op, pre))
        for op, pre in earliest.values():
            now = op.capture(ctx.executor)
            result.add(f"restored: {op.describe()}", _summary(pre), _summary(now))
        return result

    def params_dict(self) -> dict:
        return self.params.model_dump(mode="json")


def _summary(state):
    """Compare pre-states without dragging file contents into reports."""
    if isinstance(state, dict) and "content" in state:
        state = dict(state)
        content = state.pop("content")
        state["sha256"] = hashlib.sha256(content).hexdigest()[:16] if content is not None else None
    return state


def fail(message: str) -> None:
    raise PreflightError(message)


def registered_steps() -> dict[str, type[Step]]:
    _load_builtin_steps()
    return dict(_STEPS)


def _load_builtin_steps() -> None:
    """Import the phase packages that define steps, so their ids are registered."""
    for module in ("migrate.demo.steps", "migrate.mailman.steps", "migrate.archives.steps",
                   "migrate.archives.redirect_steps"):
        importlib.import_module(module)


def resolve_step(ref: str) -> type[Step]:
    """A step class from a registered id (`demo.notice`) or an import path (`pkg.mod:Class`)."""
    if ":" in ref:
        module_name, _, qualname = ref.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in qualname.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise MigrateError(f"cannot load step {ref}: {exc}") from None
        if not (isinstance(obj, type) and issubclass(obj, Step)):
            raise MigrateError(f"{ref} is not a step")
        return obj
    steps = registered_steps()
    if ref not in steps:
        raise MigrateError(f"unknown step {ref!r}; known: {', '.join(sorted(steps))}")
    return steps[ref]
