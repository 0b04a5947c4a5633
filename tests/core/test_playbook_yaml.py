"""Loading a playbook's YAML: aliases that stand for far more than the file holds are refused with
the file named, before any step sees the data."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrate.core.paths import PROJECT_ROOT
from migrate.core.playbook import load_playbook

from ..helpers.bounded import run_bounded

LAUGHS = "\n".join(
    ["description:", '  - &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [f"  - &{level} [{', '.join([f'*{below}'] * 9)}]" for below, level in zip("abcdefgh", "bcdefghi")]
    + ["steps:", "  - step: demo.notice", ""]
)


def refused_quickly(path: Path) -> str:
    outcome = run_bounded(load_playbook, path, seconds=20)
    assert outcome.raised == "MigrateError", outcome
    assert outcome.message.startswith(f"{path}: "), outcome.message
    return outcome.message


def test_a_billion_laughs_playbook_is_refused_quickly(tmp_path: Path) -> None:
    path = tmp_path / "laughs.yaml"
    path.write_text(LAUGHS)
    assert path.stat().st_size < 600

    assert "shared values" in refused_quickly(path)


@pytest.mark.parametrize("params", ["&p {message: hi, hosts: *p}", "{message: hi, hosts: &h [*h]}"])
def test_an_alias_inside_its_own_anchor_is_refused(tmp_path: Path, params: str) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text(f"steps:\n  - step: demo.notice\n    params: {params}\n")

    assert "contains itself" in refused_quickly(path)


def test_nesting_deeper_than_any_playbook_needs_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("description: " + "[" * 3000 + "]" * 3000 + "\nsteps:\n  - step: demo.notice\n")

    assert "nested too deeply" in refused_quickly(path)


def test_the_shipped_playbook_still_loads() -> None:
    book = load_playbook(PROJECT_ROOT / "playbooks" / "demo.yaml")

    assert book.name == "demo" and [step.id for step in book.steps] == ["demo.notice"]
