"""Contracts every step, operation and task must keep."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
from pydantic import BaseModel

from migrate.core import ops
from migrate.core.step import Step, registered_steps, resolve_step

PACKAGE = Path(__file__).resolve().parents[2] / "migrate"


@pytest.mark.parametrize("step_id", sorted(registered_steps()))
def test_every_registered_step_keeps_the_lifecycle_contract(step_id):
    cls = registered_steps()[step_id]
    assert issubclass(cls, Step) and cls.id == step_id and cls.title
    assert issubclass(cls.Params, BaseModel)
    assert cls.plan is not Step.plan, "a step must implement plan()"
    assert cls.verify is not Step.verify, "a step must implement verify()"
    for name in cls.preflight_checks():
        assert name.startswith("fail_for_")
        assert list(inspect.signature(getattr(cls, name)).parameters) == ["self", "ctx"]
    assert resolve_step(cls.ref()) is cls  # the journal can rebuild it in a new process
    cls(cls.example)  # the documented example parameters are valid


def test_every_operation_type_round_trips_through_the_journal_form():
    samples = {
        "RunCommand": ops.RunCommand("h", ["a", "b c"], "desc", ["undo"]),
        "WriteFile": ops.WriteFile("h", "/p", b"\x00data", 0o600),
        "RemoveFile": ops.RemoveFile("h", "/p"),
    }
    assert set(samples) <= set(ops._REGISTRY)
    for name, op in samples.items():
        again = ops.from_dict(op.to_dict())
        assert again == op and again.describe() == op.describe()
        assert isinstance(op.describe(), str) and "\n" not in op.describe()


def _dry_run_references(path: Path) -> list[int]:
    tree = ast.parse(path.read_text())
    lines = []
    for node in ast.walk(tree):
        name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else \
            node.arg if isinstance(node, ast.arg) else None
        if name in ("dry_run", "_dry_run", "dry"):
            lines.append(node.lineno)
    return lines


def test_no_dry_run_branches_outside_the_engine_and_the_task_layer():
    """Dry-run is decided by the executor alone: steps, phases and the lab never look at the mode."""
    offenders = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] in ("core", "tasks"):
            continue
        found = _dry_run_references(path)
        if found:
            offenders[str(rel)] = found
    assert not offenders, f"dry-run references outside migrate/core and migrate/tasks: {offenders}"


def test_the_dry_run_detector_finds_a_branch(tmp_path):
    sample = tmp_path / "step.py"
    sample.write_text("def apply(self, ctx):\n    if ctx.executor.dry_run:\n        return\n")
    assert _dry_run_references(sample) == [2]


def test_every_task_documents_every_flag():
    import tasks

    def walk(collection, prefix=""):
        for name, task in collection.tasks.items():
            yield prefix + name, task
        for name, sub in collection.collections.items():
            yield from walk(sub, prefix + name + ".")

    seen = 0
    for name, task in walk(tasks.ns):
        seen += 1
        doc = inspect.getdoc(task.body) or ""
        assert doc.splitlines()[0].endswith("."), f"{name}: needs a one-line docstring"
        params = [p.strip("_") for p in inspect.signature(task.body).parameters if p != "c"]
        undocumented = [p for p in params if p not in task.help]
        assert not undocumented, f"{name}: flags without help: {undocumented}"
    assert seen >= 12


def test_invoke_list_shows_the_namespaces():
    import subprocess
    import sys

    out = subprocess.run([str(Path(sys.executable).with_name("invoke")), "--list"], cwd=PACKAGE.parent,
                         capture_output=True, text=True, check=True).stdout
    for namespace in ("inventory.check", "lab.up", "lab.status", "lab.down", "runs.list", "runs.show",
                      "runs.resume", "runs.rollback", "runs.unlock", "playbook.run", "demo.notice"):
        assert namespace in out
    help_text = subprocess.run([str(Path(sys.executable).with_name("invoke")), "--help", "demo.notice"],
                               cwd=PACKAGE.parent, capture_output=True, text=True, check=True).stdout
    help_text = " ".join(help_text.split())
    assert "--dry-run" in help_text and "change nothing" in help_text and "--reason" in help_text
