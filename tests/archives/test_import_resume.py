"""A prestage import killed with SIGKILL and resumed, again and again, against the lab's real
HyperKitty (issue 8, defect 2): every message of every list must end in HyperKitty exactly once,
with its search index, and no import copy may stay behind on the lists host.

Driven as an operator would: `invoke` in new processes, the run's journal on disk, SIGKILL to the
whole process group. The moments are chosen from the journal: just after an import operation
started, in the middle of one, and during the search index update that follows it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from migrate.archives.hyperkitty import mailman_web_command, read_state, reader_runner
from migrate.core.executor import Executor
from migrate.core.journal import load_run
from migrate.core.transport import Connections
from migrate.lab.hyperkitty import HyperKittyWeb
from migrate.lab.mailman3 import Mailman3Core
from migrate.lab.seeding import seed, seed_with_facts

from ..helpers import invoke, spawn_invoke

pytestmark = [pytest.mark.lab, pytest.mark.slow]

# What `invoke lab.seed` writes by default.
LISTS, MEMBERS, MESSAGES, SEED = 12, 40, 25, 1


def events_of(state: Path, run_id: str) -> list[dict]:
    """The run's journal events; a line cut by the kill is skipped."""
    found = []
    for line in (state / "runs" / run_id / "journal.jsonl").read_text().splitlines():
        try:
            found.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return found


def op_type(events: list[dict], step: int, op: int) -> str:
    """The type of operation `op` of `step` in the step's newest plan."""
    planned = [e for e in events if e["event"] == "step_planned" and e["step"] == step]
    return planned[-1]["ops"][op]["type"]


def summary(state: Path, run_id: str) -> str:
    """The run's journal in short, one event a line, for a failing assertion's message."""
    lines = []
    events = events_of(state, run_id)
    for event in events:
        kind = event["event"]
        what = op_type(events[:events.index(event) + 1], event["step"], event["op"]) if "op" in event else ""
        failed = [c["name"] for c in event.get("checks", []) if not c["ok"]]
        lines.append(" ".join(str(x) for x in (event["at"][11:23], kind, event.get("step", ""), event.get("op", ""),
                                               what, event.get("status", ""), failed or "",
                                               event.get("error", "") or event.get("message", "")) if x != ""))
    return "\n".join(lines)


def kill_when(proc: subprocess.Popen, state: Path, run_id: str, op: str, *, after: int,
              delay: float = 0.0, timeout: float = 300) -> dict:
    """SIGKILL `proc` `delay` seconds after the first op_start of an `op` operation journaled
    after event number `after`; returns that event."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the process ended (exit {proc.returncode}) before an {op} started: "
                                 + (proc.stdout.read() or "")[-3000:])
        events = events_of(state, run_id) if (state / "runs" / run_id).exists() else []
        for event in events[after:]:
            if event["event"] == "op_start" and op_type(events, event["step"], event["op"]) == op:
                time.sleep(delay)
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
                return event
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError(f"no {op} started within {timeout} s")


def hyperkitty(inventory, addresses: list[str]):
    host = inventory.one_with_role("mailman3")
    with Connections(inventory) as connections:
        return read_state(reader_runner(Executor(connections), host.name), host.name,
                          mailman_web_command(host), addresses, ids=True).lists


def indexed(web: HyperKittyWeb, address: str) -> int:
    """Messages of a list in HyperKitty's search index, counted the way its search filters."""
    code = ("import sys\nfrom haystack.query import SearchQuerySet\n"
            "print('INDEXED', SearchQuerySet().filter(mailinglist__exact=sys.stdin.read()).count())")
    result = subprocess.run(web.manage_command("shell", "-c", code), input=address,
                            capture_output=True, text=True, check=True)
    return int(next(l for l in result.stdout.splitlines() if l.startswith("INDEXED")).split()[1])


@pytest.fixture
def migrated(lab_hosts, tmp_path):
    """The issue's start: `lab.seed`, `mailman.migrate --all --allow-pending`, `archives.prepare --all`."""
    Mailman3Core().up()
    web = HyperKittyWeb()
    web.up()
    _, facts = seed_with_facts(lists=LISTS, members=MEMBERS, messages=MESSAGES, seed=SEED)
    state = tmp_path / "state"
    for task in (["mailman.migrate", "--all", "--allow-pending", "--yes"], ["archives.prepare", "--all", "--yes"]):
        done = invoke(state, *task, timeout=900)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    yield state, facts, web
    seed(lists=LISTS, members=MEMBERS, messages=MESSAGES, seed=SEED)


def expected_ids(state: Path, facts) -> dict[str, set[str]]:
    """Per archived list, the Message-IDs HyperKitty must hold: the generator's, and for each
    message without one the id `archives.prepare` assigned (named in its report)."""
    reports = next((state / "runs").glob("*/reports/*.prepare.json")).parent
    expected = {}
    for name, fact in facts.items():
        if not (fact.archived and fact.message_count):
            continue
        ids = {f"<{m.hyperkitty_id}>" for m in fact.messages if m.hyperkitty_id is not None}
        assigned = json.loads((reports / f"{name}.prepare.json").read_text())["assigned_ids"]
        assert len(assigned) == sum(m.hyperkitty_id is None for m in fact.messages), name
        expected[name] = ids | set(assigned.values())
    return expected


def test_an_import_killed_three_times_and_resumed_holds_every_message_once(migrated, lab_inventory):
    state, facts, web = migrated
    expected = expected_ids(state, facts)
    assert len(expected) > 8, "the lab should archive most of its lists"

    earlier = set(os.listdir(state / "runs"))
    importing = spawn_invoke(state, "archives.import", "--all", "--prestage", "--yes", "--reason", "kill 1")
    while not set(os.listdir(state / "runs")) - earlier:
        time.sleep(0.05)
    run_id, = set(os.listdir(state / "runs")) - earlier
    # 1: as soon as the first import operation started (the importers have not even begun).
    kill_when(importing, state, run_id, "ImportArchives", after=0)
    # 2: in the middle of an import operation of a resume; 3: while a resume updates the search index.
    for op, delay in (("ImportArchives", 2.5), ("UpdateSearchIndex", 0.0)):
        seen = len(events_of(state, run_id))
        resuming = spawn_invoke(state, "runs.resume", run_id, "--yes", "--reason", f"kill at {op}")
        kill_when(resuming, state, run_id, op, after=seen, delay=delay)

    final = invoke(state, "runs.resume", run_id, "--yes", "--reason", "after three kills", timeout=900)
    assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-3000:] + "\n" + summary(state, run_id)
    assert load_run(state / "runs" / run_id).status == "done"

    verified = invoke(state, "archives.verify", "--all", "--json", timeout=600)
    assert verified.returncode == 0, verified.stdout[-5000:] + "\n" + summary(state, run_id)
    address = {c["list"]: c["fqdn"] for c in json.loads(verified.stdout)["lists"]}
    held = hyperkitty(lab_inventory, [address[name] for name in expected])
    for name, ids in expected.items():
        found = held[address[name]]
        assert found is not None, f"{name}: HyperKitty does not hold the list"
        assert found.ids == ids, f"{name}: missing {sorted(ids - found.ids)[:5]}, extra {sorted(found.ids - ids)[:5]}"
        assert found.count == len(ids), f"{name}: {found.count} messages for {len(ids)} Message-IDs"
        assert indexed(web, address[name]) == len(ids), f"{name}: search index incomplete"
    folder = Path(lab_inventory.one_with_role("mailman3").var("hyperkitty_import_dir"))
    assert sorted(p.name for p in folder.iterdir()) == [], "import copies left on the lists host"
