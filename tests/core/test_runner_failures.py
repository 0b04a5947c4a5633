"""What the runner does when step code raises what it should not, when it is interrupted, and
when a rollback fails; with steps acting on the controller itself (no lab needed)."""

from __future__ import annotations

import io
import json
import secrets

import pytest
from rich.console import Console

from migrate.core.errors import MigrateError
from migrate.core.inventory import load_inventory
from migrate.core.journal import StateDir, load_run
from migrate.core.paths import PROJECT_ROOT
from migrate.core.report import Reporter
from migrate.core.runner import ExitCode, Runner
from migrate.core.secrets import register
from tests.helpers.steps import RaisesIn, UndoFails, WritesParts, WritesThenInterrupted, WritesThenUndoInterrupted

PART = b"part\n"


@pytest.fixture(scope="module")
def inventory():
    return load_inventory(PROJECT_ROOT / "inventories" / "lab.yaml")


def runner(inventory, tmp_path, **kwargs) -> tuple[Runner, io.StringIO]:
    out = io.StringIO()
    reporter = Reporter(console=Console(file=out, width=200, highlight=False, soft_wrap=True))
    state = StateDir(tmp_path / "state", lock_dir=tmp_path / "locks")
    return Runner(inventory, state, dry_run=False, yes=True, reporter=reporter, **kwargs), out


def journal(tmp_path, run_id) -> list[dict]:
    text = (tmp_path / "state" / "runs" / run_id / "journal.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def test_any_exception_of_a_step_is_that_steps_failure_and_a_keep_going_run_goes_on(inventory, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    token = "tok-" + secrets.token_hex(8)
    register(token, "test token")

    def step(name, where="nowhere", error="ValueError"):
        return RaisesIn({"folder": str(folder), "name": name, "where": where, "error": error,
                         "message": f"bad input near {token}"})

    steps = [step("a", "preflight", "RecursionError"), step("b"), step("c", "plan"),
             step("d", "capture"), step("e", "verify", "RecursionError"), step("f")]
    run, out = runner(inventory, tmp_path, keep_going=True)

    outcome = run.run(steps)

    assert outcome.status == "partial" and outcome.exit_code == ExitCode.STEP_FAILED_ROLLED_BACK
    state = load_run(tmp_path / "state" / "runs" / outcome.run_id)
    assert [s.status for s in state.steps] == ["refused", "done", "refused", "rolled_back", "verify_failed", "done"]
    assert sorted(p.name for p in folder.iterdir()) == ["b", "e", "f"]  # d's write was undone
    events = journal(tmp_path, outcome.run_id)
    assert events[-1]["event"] == "run_end" and events[-1]["exit_code"] == ExitCode.STEP_FAILED_ROLLED_BACK
    errors = {e["step"]: e.get("error", "") for e in events if e["event"] == "step_end"}
    assert "raises in preflight: a" in errors[0] and "RecursionError" in errors[0]
    assert "plan failed" in errors[2] and "ValueError: bad input near ***" in errors[2]
    assert "look at" in errors[3] and "cannot make sense of" in errors[3]
    verified = next(e for e in events if e["event"] == "step_verified" and e["step"] == 4)
    assert not verified["ok"] and "RecursionError" in verified["checks"][0]["detail"]
    text = (tmp_path / "state" / "runs" / outcome.run_id / "journal.jsonl").read_text() + out.getvalue()
    assert token not in text and token not in outcome.message
    log = (tmp_path / "state" / "runs" / outcome.run_id / "run.log").read_text()
    assert "RecursionError" in log and "Traceback" in log and token not in log


def test_without_keep_going_an_exception_in_plan_refuses_the_run_before_anything_changes(inventory, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    run, _ = runner(inventory, tmp_path)

    outcome = run.run([RaisesIn({"folder": str(folder), "name": "a"}),
                       RaisesIn({"folder": str(folder), "name": "b", "where": "plan"})])

    assert outcome.exit_code == ExitCode.REFUSED and outcome.status == "refused"
    assert "raises in plan: b" in outcome.message and "ValueError" in outcome.message
    assert list(folder.iterdir()) == []
    assert journal(tmp_path, outcome.run_id)[-1]["event"] == "run_end"


def test_an_exception_while_resuming_is_the_steps_failure_too(inventory, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "trigger").write_bytes(b"")
    armed = folder / "armed"
    run, _ = runner(inventory, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run.run([WritesThenInterrupted({"folder": str(folder)}),
                 RaisesIn({"folder": str(folder), "name": "x", "where": "preflight", "error": "RecursionError",
                           "armed_by": str(armed)})])
    armed.write_bytes(b"")
    again, _ = runner(inventory, tmp_path)

    outcome = again.resume("last")

    assert outcome.exit_code == ExitCode.REFUSED
    assert "raises in preflight: x" in outcome.message and "RecursionError" in outcome.message
    assert journal(tmp_path, outcome.run_id)[-1]["event"] == "run_end"


def test_a_verification_that_raises_fails_verify_only_runs_without_a_traceback(inventory, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    run, _ = runner(inventory, tmp_path)
    code, results = run.verify([RaisesIn({"folder": str(folder), "name": "a", "where": "verify"})])
    assert code == ExitCode.VERIFY_FAILED
    assert "ValueError: bad input in verify" in results[0].checks[0].detail


def test_ctrl_c_stops_the_run_is_journaled_and_the_run_resumes(inventory, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "trigger").write_bytes(b"")
    run, out = runner(inventory, tmp_path)

    with pytest.raises(KeyboardInterrupt):
        run.run([WritesThenInterrupted({"folder": str(folder)}),
                 WritesParts({"folder": str(folder), "parts": ["later"]})])

    run_id = StateDir(tmp_path / "state").list_runs()[-1].run_id
    state = load_run(tmp_path / "state" / "runs" / run_id)
    end = journal(tmp_path, run_id)[-1]
    assert state.status == "interrupted" and end["event"] == "run_end"
    assert "Ctrl-C" in end["message"] and "applying step 1" in end["message"]
    assert f"runs.resume {run_id}" in end["message"] and "Ctrl-C" in out.getvalue()
    assert not (folder / "later").exists()
    assert list((tmp_path / "locks").iterdir()) == [], "the lock must be released"

    again, _ = runner(inventory, tmp_path)
    outcome = again.resume(run_id)
    assert outcome.exit_code == ExitCode.OK, outcome.message
    assert (folder / "written").read_bytes() == PART and (folder / "later").read_bytes() == PART


def test_a_failed_rollback_names_what_stays_applied_where_what_did_not_run_and_how_to_recover(
        inventory, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    run, _ = runner(inventory, tmp_path)

    outcome = run.run([UndoFails({"folder": str(folder)}),
                       WritesParts({"folder": str(folder), "parts": ["next"]})])

    assert outcome.exit_code == ExitCode.ROLLBACK_FAILED and outcome.status == "rollback_failed"
    copy = folder / "copy"
    assert copy.exists(), "the undo stopped before the copy"
    message = outcome.message
    assert "rollback of `hold the copy` on local failed" in message
    assert f"write {copy} (5 bytes, mode 0600) on local" in message and "hold the copy on local" in message
    assert "not run: step 2 (write parts)" in message
    assert f"invoke runs.show {outcome.run_id}" in message and f"invoke runs.rollback {outcome.run_id}" in message
    end = journal(tmp_path, outcome.run_id)[-1]
    assert end["event"] == "run_end" and end["message"] == message
    assert [(e["op"], e["host"]) for e in end["left"]] == [(0, "local"), (1, "local")]
    assert end["not_run"] == ["step 2 (write parts)"]


def test_a_failed_rollback_of_a_run_names_the_steps_it_did_not_roll_back(inventory, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    applied = runner(inventory, tmp_path)[0].run([WritesParts({"folder": str(folder), "parts": ["first"]}),
                                                  UndoFails({"folder": str(folder), "then_fail": False})])
    assert applied.exit_code == ExitCode.OK, applied.message

    outcome = runner(inventory, tmp_path)[0].rollback(applied.run_id)

    assert outcome.exit_code == ExitCode.ROLLBACK_FAILED
    assert "not rolled back: step 1 (write parts)" in outcome.message
    assert f"write {folder / 'copy'} (5 bytes, mode 0600) on local" in outcome.message
    assert journal(tmp_path, applied.run_id)[-1]["not_rolled_back"] == ["step 1 (write parts)"]
    assert (folder / "first").exists() and (folder / "copy").exists()


def test_a_rollback_cut_short_is_finished_by_a_rollback_never_taken_for_done(inventory, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    run, _ = runner(inventory, tmp_path)
    applied = run.run([WritesThenUndoInterrupted({"folder": str(folder)})])
    assert applied.exit_code == ExitCode.OK and (folder / "written").exists()
    (folder / "trigger").write_bytes(b"")

    with pytest.raises(KeyboardInterrupt):
        runner(inventory, tmp_path)[0].rollback(applied.run_id)

    run_dir = tmp_path / "state" / "runs" / applied.run_id
    assert load_run(run_dir).status == "rollback_interrupted"
    assert "runs.rollback" in journal(tmp_path, applied.run_id)[-1]["message"]
    # Killed instead (no run_end after rollback_start): the journal reads as a rollback under way.
    lines = (run_dir / "journal.jsonl").read_text().splitlines(keepends=True)
    killed = tmp_path / "killed" / applied.run_id
    killed.mkdir(parents=True)
    (killed / "journal.jsonl").write_text("".join(lines[:-1]))
    assert load_run(killed).status == "rolling_back"
    with pytest.raises(MigrateError, match="runs.rollback"):
        runner(inventory, tmp_path)[0].resume(applied.run_id)
    assert (folder / "written").exists(), "the resume must not have changed anything"

    finished = runner(inventory, tmp_path)[0].rollback(applied.run_id)
    assert finished.exit_code == ExitCode.OK, finished.message
    assert sorted(p.name for p in folder.iterdir()) == []
