"""Playbooks: maintenance-window runbooks as data.

    name: demo
    description: Place and remove a maintenance notice
    steps:
      - step: demo.notice            # a registered step id, or package.module:Class
        params: {message: "..."}

The runner executes the steps in order in one run; the journal records each step's import path
and parameters, so the run can be resumed or rolled back by a later process.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from .bounds import ShapeError, safe_load_yaml
from .errors import MigrateError
from .step import Step, resolve_step


@dataclass
class Playbook:
    path: Path
    name: str
    description: str
    steps: list[Step]


def load_playbook(path: str | Path) -> Playbook:
    path = Path(path)
    try:
        data = safe_load_yaml(path.read_text())
    except FileNotFoundError:
        raise MigrateError(f"playbook {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise MigrateError(f"{path}: not valid YAML: {exc}") from None
    except ShapeError as shape:
        advice = "no playbook nests that deep" if shape.kind == "depth" else \
            "check the anchors (&name) and aliases (*name) there"
        raise MigrateError(f"{path}: {shape}; {advice}") from None
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list) or not data["steps"]:
        raise MigrateError(f"{path}: a playbook is a mapping with a non-empty `steps` list")
    unknown = set(data) - {"name", "description", "steps"}
    if unknown:
        raise MigrateError(f"{path}: unknown key(s): {', '.join(sorted(unknown))}")
    steps = []
    for i, entry in enumerate(data["steps"]):
        where = f"{path}: steps[{i}]"
        if not isinstance(entry, dict) or "step" not in entry:
            raise MigrateError(f"{where}: each entry needs `step:` (an id or module:Class)")
        extra = set(entry) - {"step", "params"}
        if extra:
            raise MigrateError(f"{where}: unknown key(s): {', '.join(sorted(extra))}")
        params = entry.get("params") or {}
        if not isinstance(params, dict):
            raise MigrateError(f"{where}.params: must be a mapping")
        try:
            steps.append(resolve_step(str(entry["step"]))(params))
        except MigrateError as exc:
            raise MigrateError(f"{where}: {exc}") from None
    return Playbook(path, str(data.get("name") or path.stem), str(data.get("description") or ""), steps)


def find_playbook(name_or_path: str, folder: Path) -> Path:
    """A playbook by path, or by name in the project's playbooks folder."""
    candidate = Path(name_or_path)
    if candidate.is_file():
        return candidate
    for suffix in (".yaml", ".yml"):
        named = folder / f"{name_or_path}{suffix}"
        if named.is_file():
            return named
    raise MigrateError(f"no playbook {name_or_path!r} (neither a file nor in {folder})")
