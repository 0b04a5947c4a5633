"""Wall time of migrating N lists x M members with the toolkit (`mailman.migrate --all`, which
verifies every list after importing it) against the bare minimum: the same `mailman create` +
`mailman import21` commands run directly in a loop over one SSH connection. Both run against the
lab's real Mailman 3, from the same generated Mailman 2 tree, in the same run.

    .venv/bin/python benchmarks/mailman_migrate.py [--lists 40] [--members 500]

Goal: toolkit / direct <= 1.15. It empties the lab's Mailman 3 before each pass.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from migrate.core.inventory import load_inventory  # noqa: E402
from migrate.core.transport import SSHTransport  # noqa: E402
from migrate.lab.components import up_all  # noqa: E402
from migrate.lab.mailman3 import Mailman3Core  # noqa: E402
from migrate.lab.seeding import empty, mailman2_var_dir, seed  # noqa: E402
from migrate.mailman import convert, mm2  # noqa: E402
from migrate.mailman.mm3 import mailman_command  # noqa: E402

LAB = ROOT / "inventories" / "lab.yaml"


def direct(names: list[str]) -> float:
    """create + import21 per list over one reused SSH connection, nothing else."""
    inventory = load_inventory(LAB)
    host = inventory.one_with_role("mailman3")
    legacy = mailman2_var_dir()
    mailman = mailman_command(host)
    folder = host.var("mailman3_import_dir")
    transport = SSHTransport(host)
    started = time.perf_counter()
    for name in names:
        config = mm2.load_config((legacy / "lists" / name / "config.pck").read_bytes(), list_name=name)
        fqdn = f"{name}@{config['host_name']}"
        cleaned, _ = convert.clean_config_for_import(config, list_name=name)
        path = f"{folder}/direct-{name}.pck"
        transport.write_file(path, cleaned, 0o600)
        transport.run([*mailman, "create", fqdn]).check()
        transport.run([*mailman, "import21", "-c", convert.import_charset(config), fqdn, path]).check()
        transport.remove_file(path)
    elapsed = time.perf_counter() - started
    transport.close()
    return elapsed


def _at(record: dict) -> float:
    return datetime.fromisoformat(record["at"].replace("Z", "+00:00")).timestamp()


def breakdown(state_dir: str) -> dict[str, float]:
    """Where the toolkit's time went, from its journal: import21 commands, the other operations,
    verification after each list, and everything else (start-up, preflight, planning, capture)."""
    (journal,) = Path(state_dir, "runs").glob("*/journal.jsonl")
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    ops = {r["step"]: r["ops"] for r in records if r["event"] == "step_planned"}
    started: dict[tuple, float] = {}
    last_op_end: dict[int, float] = {}
    spent = {"import21": 0.0, "other operations": 0.0, "verification": 0.0}
    for r in records:
        if r["event"] == "op_start":
            started[(r["step"], r["op"])] = _at(r)
        elif r["event"] == "op_end":
            seconds = _at(r) - started[(r["step"], r["op"])]
            kind = ops[r["step"]][r["op"]].get("type")
            spent["import21" if kind == "Import21" else "other operations"] += seconds
            last_op_end[r["step"]] = _at(r)
        elif r["event"] == "step_verified" and r["step"] in last_op_end:
            spent["verification"] += _at(r) - last_op_end[r["step"]]
    spent["start-up, preflight, planning"] = _at(records[-1]) - _at(records[0]) - sum(spent.values())
    return spent


def toolkit(state_dir: str) -> float:
    env = dict(os.environ, INVOKE_MIGRATE_STATE_DIR=state_dir)
    started = time.perf_counter()
    result = subprocess.run([str(Path(sys.executable).with_name("invoke")), "mailman.migrate", "--all",
                             "--allow-pending", "--yes", "--reason", "benchmark"],
                            cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        print(result.stdout[-3000:], result.stderr[-3000:])
        raise SystemExit(f"mailman.migrate failed with exit code {result.returncode}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lists", type=int, default=40)
    parser.add_argument("--members", type=int, default=500)
    args = parser.parse_args()

    up_all()
    core = Mailman3Core()
    names = seed(lists=args.lists, members=args.members, seed=11)
    print(f"{len(names)} lists x {args.members}+ members generated")
    t_direct = direct(names)
    print(f"  direct create + import21 loop, one SSH connection : {t_direct:8.1f} s")
    empty(core)
    with tempfile.TemporaryDirectory() as state:
        t_toolkit = toolkit(state)
        spent = breakdown(state)
    print(f"  toolkit mailman.migrate --all (verification incl.) : {t_toolkit:8.1f} s")
    print("    of which " + ", ".join(f"{what} {seconds:.1f} s" for what, seconds in spent.items()))
    print(f"  ratio toolkit / direct                             : {t_toolkit / t_direct:8.2f}  (goal <= 1.15)")
    empty(core)


if __name__ == "__main__":
    main()
