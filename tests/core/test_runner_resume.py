"""Resume after a SIGKILL, with steps that act on the controller itself (no lab needed): `invoke` in
new processes, the journal on disk, the process group killed at a chosen operation."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from migrate.core.journal import load_run
from migrate.core.runner import ExitCode

from ..helpers import invoke, newest_run_id, spawn_invoke, wait_for_event, write_playbook

PART = b"part\n"


def kill_at(state: Path, proc, step: int, op: int) -> str:
    """SIGKILL the run once operation `op` of `step` has started; return the run id."""
    wait_for_event(state, lambda e: e["event"] == "op_start" and e.get("step") == step and e.get("op") == op)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    return newest_run_id(state)


def test_the_plan_after_a_rollback_rests_on_fresh_facts(tmp_path):
    """The step verified (a written, b missing), was rolled back (a removed), then planned again:
    with the facts its instance read before the rollback it would write b only and fail."""
    state, folder = tmp_path / "state", tmp_path / "parts"
    folder.mkdir()
    book = write_playbook(tmp_path, [{"step": "tests.helpers.steps:WritesParts",
                                      "params": {"folder": str(folder), "parts": ["a", "b"], "pause": 1}}])
    proc = spawn_invoke(state, "playbook.run", str(book), "--yes")
    # Operations: pause, write a, pause, write b. Killed in the second pause: a is written.
    run_id = kill_at(state, proc, 0, 2)
    assert (folder / "a").read_bytes() == PART and not (folder / "b").exists()

    resumed = invoke(state, "runs.resume", run_id, "--yes")

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "rolling back" in resumed.stdout
    assert (folder / "a").read_bytes() == PART and (folder / "b").read_bytes() == PART
    final = load_run(state / "runs" / run_id)
    assert final.status == "done" and final.steps[0].status == "done"
    assert [o.op["type"] for o in final.steps[0].ops] == ["RunCommand", "WriteFile"] * 2


def test_a_step_that_verifies_after_the_kill_still_completes_its_operations(tmp_path):
    """Killed while indexing the result, before the scratch copy was removed: the step verifies
    (it checks the result only), and the index and the removal it had planned must still happen;
    the index update, cut short and harmless to repeat, runs again."""
    state, folder = tmp_path / "state", tmp_path / "copy"
    folder.mkdir()
    book = write_playbook(tmp_path, [{"step": "tests.helpers.steps:CopiesThroughScratch",
                                      "params": {"folder": str(folder), "pause": 1}}])
    proc = spawn_invoke(state, "playbook.run", str(book), "--yes")
    run_id = kill_at(state, proc, 0, 2)
    assert (folder / "scratch").exists() and (folder / "result").read_bytes() == PART
    assert not (folder / "index").exists()

    resumed = invoke(state, "runs.resume", run_id, "--yes")

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert not (folder / "scratch").exists(), "the scratch copy the step planned to remove is still there"
    assert (folder / "result").read_bytes() == PART and (folder / "index").read_bytes() == PART
    final = load_run(state / "runs" / run_id)
    assert final.status == "done"
    assert all(o.started and o.ended and o.ok for o in final.steps[0].ops)
    # Its rollback from the journal still undoes all of it.
    rolled = invoke(state, "runs.rollback", run_id, "--yes")
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert sorted(p.name for p in folder.iterdir()) == []


def test_resume_names_a_step_that_failed_verification_as_such(tmp_path):
    state, folder = tmp_path / "state", tmp_path / "marked"
    folder.mkdir()
    book = write_playbook(tmp_path, [{"step": "tests.helpers.steps:VerifiesOnceMarked",
                                      "params": {"folder": str(folder)}}])
    first = invoke(state, "playbook.run", str(book), "--yes")
    assert first.returncode == ExitCode.VERIFY_FAILED, first.stdout + first.stderr
    (folder / "marker").write_bytes(b"fixed\n")

    resumed = invoke(state, "runs.resume", "last", "--yes")

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "interrupted" not in resumed.stdout
    assert "failed its verification" in resumed.stdout and "verifies now" in resumed.stdout
