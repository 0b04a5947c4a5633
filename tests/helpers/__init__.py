"""Helpers shared by tests: lab tree checksums, inventory variants, running tasks in a new process."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LAB_INVENTORY = PROJECT_ROOT / "inventories" / "lab.yaml"
INVOKE = Path(sys.executable).with_name("invoke")


def tree_checksums(root: Path) -> dict[str, tuple[str, int]]:
    """Every file below root: relative path -> (sha256, mode). Directories count too."""
    result = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        st = path.lstat()
        if path.is_file() and not path.is_symlink():
            result[rel] = (hashlib.sha256(path.read_bytes()).hexdigest(), st.st_mode)
        else:
            result[rel] = ("dir" if path.is_dir() else "other", st.st_mode)
    return result


def host_root(inventory, host: str) -> Path:
    """The private tree of a lab host (the folder holding its etc/)."""
    return Path(inventory.host(host).var("maintenance_notice_path")).parents[1]


def inventory_variant(tmp_path: Path, changes: dict | None = None, host_vars: dict | None = None,
                      name: str = "inventory.yaml") -> Path:
    """A copy of the lab inventory with top-level vars and per-host vars changed."""
    data = yaml.safe_load(LAB_INVENTORY.read_text())
    data.setdefault("vars", {}).update(changes or {})
    for host, values in (host_vars or {}).items():
        data["hosts"][host].setdefault("vars", {}).update(values)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def invoke_env(state_dir: Path) -> dict:
    env = dict(os.environ)
    env["INVOKE_MIGRATE_STATE_DIR"] = str(state_dir)
    env.pop("COLUMNS", None)
    return env


def invoke(state_dir: Path, *args: str, input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `invoke ARGS` from the checkout in a new process, as an operator would."""
    return subprocess.run([str(INVOKE), *args], cwd=PROJECT_ROOT, env=invoke_env(state_dir), input=input,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=None if input is not None else subprocess.DEVNULL)


def spawn_invoke(state_dir: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([str(INVOKE), *args], cwd=PROJECT_ROOT, env=invoke_env(state_dir),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def journal_events(state_dir: Path) -> list[dict]:
    """Events of the only (or newest) run in a state folder; a partial last line is skipped."""
    runs = sorted((state_dir / "runs").glob("*/journal.jsonl"))
    if not runs:
        return []
    events = []
    for line in runs[-1].read_text().splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return events


def wait_for_event(state_dir: Path, predicate, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for ev in journal_events(state_dir):
            if predicate(ev):
                return ev
        time.sleep(0.01)
    raise AssertionError(f"no matching journal event within {timeout} s: {journal_events(state_dir)[-3:]}")


def newest_run_id(state_dir: Path) -> str:
    return sorted((state_dir / "runs").iterdir())[-1].name


def write_playbook(tmp_path: Path, steps: list[dict], name: str = "playbook.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"name": "test", "steps": steps}, sort_keys=False))
    return path


def local_legacy_inventory(path: Path, var_dir: Path) -> Path:
    """An inventory whose Mailman 2 host is the controller itself (the host named `local`) with
    `var_dir`, and whose Mailman 3 answers nobody: reads of the legacy tree need no lab."""
    path.write_text(yaml.safe_dump({
        "name": "local-legacy",
        "hosts": {
            "local": {"address": "127.0.0.1", "roles": ["mailman2"], "vars": {"mailman2_var_dir": str(var_dir)}},
            "lists-01": {"address": "127.0.0.1", "roles": ["mailman3"],
                         "vars": {"mailman3_rest_url": "http://127.0.0.1:9/3.1", "mailman3_rest_user": "x",
                                  "mailman3_rest_password": {"env": "MIGRATE_TEST_UNSET_PASSWORD"}}},
        },
    }))
    return path
