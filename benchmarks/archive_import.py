"""Archive import into the lab's HyperKitty: the delta inside the window against the full import,
and parallel against sequential hyperkitty_import runs.

1. Full import: `archives.import --all --prestage` of every lab list's archive, as the toolkit
   runs it by default (two lists at a time; prepare first, verification included).
2. Delta: a few new posts on some lists, then `archives.import --all --delta`: what the window
   costs. Goal: delta / full <= 0.05.
3. Parallel against sequential: the same prepared mboxes imported by bare `hyperkitty_import`
   processes over one SSH connection, one after the other, then two at a time, into throwaway
   lists; counts what HyperKitty stored. The lab's HyperKitty runs on PostgreSQL, which takes
   concurrent writers (the toolkit imports one list at a time on SQLite, where concurrent imports
   lose messages to "database is locked").

    .venv/bin/python benchmarks/archive_import.py [--messages 1000] [--delta 5] [--delta-lists 2]
                                                  [--parallel-lists 4] [--parallel 2]

Takes the lab's test-session lock for the whole run; re-seeds the lab at the end.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from migrate.archives.hyperkitty import SINCE, mailman_web_command, read_state  # noqa: E402
from migrate.core.inventory import load_inventory  # noqa: E402
from migrate.core.paths import LAB_ROOT  # noqa: E402
from migrate.core.transport import Connections  # noqa: E402
from migrate.lab.components import up_all  # noqa: E402
from migrate.lab.mailman2_posts import append_posts  # noqa: E402
from migrate.lab.seeding import mailman2_var_dir, seed, seed_with_facts  # noqa: E402

LAB = ROOT / "inventories" / "lab.yaml"
BENCH_DOMAIN = "bench.example"

# Throwaway lists of part 3, deleted with everything in them (they exist in HyperKitty only).
_DROP_BENCH_LISTS = """
from hyperkitty.models import MailingList
MailingList.objects.filter(name__endswith="@bench.example").delete()
"""


def invoke(state: str, *args: str) -> float:
    env = dict(os.environ, INVOKE_MIGRATE_STATE_DIR=state)
    started = time.perf_counter()
    result = subprocess.run([str(Path(sys.executable).with_name("invoke")), *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        print(result.stdout[-4000:], result.stderr[-3000:])
        raise SystemExit(f"invoke {' '.join(args)} failed with exit code {result.returncode}")
    return elapsed


def bare_imports(names: list[str], parallel: int, tag: str) -> tuple[float, int, int]:
    """hyperkitty_import of each list's prepared copy into `<list>-<tag>@bench.example`.

    Returns (seconds, messages in the copies, messages HyperKitty stored)."""
    inventory = load_inventory(LAB)
    host = inventory.one_with_role("mailman3")
    command = mailman_web_command(host)
    folder = host.var("hyperkitty_import_dir")
    legacy = mailman2_var_dir()
    with Connections(inventory) as connections:
        transport = connections.get(host.name)
        jobs, expected = [], 0
        for name in names:
            data = (legacy / "archives" / "private" / f"{name}.mbox" / f"{name}.mbox.prepared").read_bytes()
            expected += data.count(b"\nFrom ") + data.startswith(b"From ")
            path = f"{folder}/bench-{tag}-{name}.mbox"
            transport.write_file(path, data, 0o644)
            jobs.append((f"{name}-{tag}@{BENCH_DOMAIN}", path))

        def one(job):
            address, path = job
            return transport.run([*command, "hyperkitty_import", "-l", address, "--since", SINCE,
                                  "--ignore-mtime", path])

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            list(pool.map(one, jobs))
        elapsed = time.perf_counter() - started
        state = read_state(lambda argv, stdin: transport.run(argv, input=stdin), host.name, command,
                           [address for address, _ in jobs], ids=False)
        stored = sum(found.count for found in state.lists.values() if found is not None)
        for _, path in jobs:
            transport.remove_file(path)
    return elapsed, expected, stored, state.engine


def drop_bench_lists() -> None:
    inventory = load_inventory(LAB)
    host = inventory.one_with_role("mailman3")
    with Connections(inventory) as connections:
        connections.get(host.name).run([*mailman_web_command(host), "shell", "-c", _DROP_BENCH_LISTS]).check()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lists", type=int, default=12, help="lab lists (the special ones included)")
    parser.add_argument("--messages", type=int, default=1000, help="archived messages per list")
    parser.add_argument("--delta", type=int, default=5, help="new posts per list that gets some")
    parser.add_argument("--delta-lists", type=int, default=2, help="lists that get new posts")
    parser.add_argument("--parallel-lists", type=int, default=4, help="lists in the parallel comparison")
    parser.add_argument("--parallel", type=int, default=2, help="imports at once in the parallel pass")
    args = parser.parse_args()

    LAB_ROOT.mkdir(parents=True, exist_ok=True)
    with open(LAB_ROOT / ".test-session.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            run(args)
        finally:
            drop_bench_lists()
            seed()


def run(args) -> None:
    up_all()
    names, facts = seed_with_facts(lists=args.lists, members=5, messages=args.messages, seed=5)
    archived = sorted(n for n, f in facts.items() if f.archived and f.message_count)
    total = sum(facts[n].message_count for n in archived)
    print(f"{len(archived)} archived lists x {args.messages} messages ({total} messages); "
          f"{os.cpu_count()} CPU(s)")
    with tempfile.TemporaryDirectory() as state:
        setup = invoke(state, "mailman.migrate", "--all", "--allow-pending", "--yes")
        setup += invoke(state, "archives.prepare", "--all", "--yes")
        print(f"  setup (mailman.migrate + archives.prepare)           : {setup:8.1f} s")
        full = invoke(state, "archives.import", "--all", "--prestage", "--yes")
        print(f"  full import, all lists (prestage, verified)          : {full:8.1f} s"
              f"  ({total / full:.1f} msg/s overall)")
        grown = archived[: args.delta_lists]
        for name in grown:
            append_posts(mailman2_var_dir(), name, args.delta)
        delta = invoke(state, "archives.import", "--all", "--delta", "--yes")
        print(f"  delta import, {len(grown)} list(s) x {args.delta} new posts (verified) : {delta:8.1f} s")
        invoke(state, "archives.verify", "--all")
        print(f"  ratio delta / full                                   : {delta / full:8.3f}  (goal <= 0.05)")

    chosen = archived[: args.parallel_lists]
    sequential, expected, stored_seq, engine = bare_imports(chosen, 1, "seq")
    parallel, _, stored_par, _ = bare_imports(chosen, args.parallel, "par")
    print(f"  bare hyperkitty_import of {len(chosen)} lists ({expected} messages), HyperKitty on {engine}:")
    print(f"    sequential                                         : {sequential:8.1f} s, "
          f"{stored_seq} stored")
    print(f"    {args.parallel} at a time                                       : {parallel:8.1f} s, "
          f"{stored_par} stored ({stored_seq - stored_par} fewer than sequential)")
    print(f"    ratio parallel / sequential                        : {parallel / sequential:8.2f}")
    print(json.dumps({"messages": total, "full_s": round(full, 2), "delta_s": round(delta, 2),
                      "delta_over_full": round(delta / full, 4), "sequential_s": round(sequential, 2),
                      "parallel_s": round(parallel, 2), "parallel": args.parallel,
                      "stored_sequential": stored_seq, "stored_parallel": stored_par, "expected": expected}))


if __name__ == "__main__":
    main()
