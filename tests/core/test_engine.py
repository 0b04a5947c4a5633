"""The step engine against the lab's real sshd hosts, driven as an operator would: `invoke` in
new processes, journals on disk, SIGKILL at awkward moments."""

from __future__ import annotations

import json
import os
import secrets
import signal
from pathlib import Path

import pytest

from migrate.core.journal import StateDir, load_run
from migrate.core.report import Reporter
from migrate.core.runner import ExitCode, Runner
from migrate.demo.steps import MaintenanceNotice

from ..helpers import (
    host_root, invoke, inventory_variant, journal_events, newest_run_id, spawn_invoke, tree_checksums,
    wait_for_event, write_playbook,
)
from ..helpers.secret_forms import leaks

pytestmark = pytest.mark.lab

HOSTS = ["eugeni", "lists-01", "web-01"]


@pytest.fixture
def state(tmp_path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def clean(lab_hosts, lab_inventory):
    """No notice, token or scratch file on any lab host before and after the test."""
    def scrub():
        for host in lab_inventory.hosts.values():
            etc = Path(host.var("maintenance_notice_path")).parent
            for name in ("maintenance-notice", "token", "half-done", "written"):
                (etc / name).unlink(missing_ok=True)
    scrub()
    yield
    scrub()


def all_trees(inventory) -> dict:
    return {name: tree_checksums(host_root(inventory, name)) for name in inventory.hosts}


def notice(inventory, host: str) -> Path:
    return Path(inventory.host(host).var("maintenance_notice_path"))


def host_args(hosts):
    return [arg for h in hosts for arg in ("--host", h)]


def test_dry_run_changes_nothing_and_shows_every_operation(clean, lab_inventory, state):
    old = notice(lab_inventory, "eugeni")
    old.write_text("old notice\n")
    os.chmod(old, 0o600)
    before = all_trees(lab_inventory)

    result = invoke(state, "demo.notice", "--dry-run", "--message", "dry")

    assert result.returncode == 0, result.stdout + result.stderr
    assert all_trees(lab_inventory) == before
    for host in lab_inventory.hosts.values():
        assert host.name in result.stdout
        assert host.var("maintenance_notice_path") in result.stdout
    assert "replaces 11 bytes" in result.stdout and "DRY RUN" in result.stdout
    log = (state / "runs" / newest_run_id(state) / "run.log").read_text().splitlines()
    assert len([line for line in log if " dry-run " in line]) == len(lab_inventory.hosts)


def test_apply_verify_then_rollback_from_a_new_process_restores_the_pre_state(clean, lab_inventory, state):
    old = notice(lab_inventory, "eugeni")
    old.write_text("old notice\n")
    os.chmod(old, 0o600)
    before = all_trees(lab_inventory)

    applied = invoke(state, "demo.notice", "--yes", "--reason", "test", "--message", "hello", *host_args(HOSTS))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    for host in HOSTS:
        assert notice(lab_inventory, host).read_text() == "hello\n"
    assert invoke(state, "demo.verify", "--message", "hello", *host_args(HOSTS)).returncode == 0

    run_id = newest_run_id(state)
    rolled = invoke(state, "runs.rollback", run_id, "--yes", "--reason", "undo")
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert all_trees(lab_inventory) == before
    assert old.read_text() == "old notice\n" and (old.stat().st_mode & 0o777) == 0o600
    assert not notice(lab_inventory, "lists-01").exists()
    assert invoke(state, "demo.verify", "--message", "hello", *host_args(HOSTS)).returncode == ExitCode.VERIFY_FAILED
    assert load_run(state / "runs" / run_id).status == "rolled_back"


def test_no_confirmation_without_a_terminal(clean, lab_inventory, state):
    before = all_trees(lab_inventory)
    result = invoke(state, "demo.notice", "--host", "eugeni")
    assert result.returncode == ExitCode.REFUSED
    assert "not a terminal" in result.stdout + result.stderr
    assert all_trees(lab_inventory) == before


def test_typed_confirmation_defaults_to_no(clean, lab_inventory, tmp_path, monkeypatch):
    import migrate.core.report as report

    monkeypatch.setattr(report.sys.stdin, "isatty", lambda: True, raising=False)
    answers = iter(["", "yes", "apply"])
    monkeypatch.setattr("builtins.input", lambda: next(answers))
    reporter = Reporter()
    assert report.confirm(reporter, "go?") is False  # bare Enter
    assert report.confirm(reporter, "go?") is False  # not the word asked for
    assert report.confirm(reporter, "go?") is True

    runner = Runner(lab_inventory, StateDir(tmp_path / "state"), dry_run=False,
                    confirm=lambda reporter, question: False)
    outcome = runner.run([MaintenanceNotice({"hosts": ["eugeni"]})])
    assert outcome.status == "aborted" and outcome.exit_code == ExitCode.REFUSED
    assert not notice(lab_inventory, "eugeni").exists()


def test_a_failing_step_is_rolled_back(clean, lab_inventory, state, tmp_path):
    target = notice(lab_inventory, "eugeni").with_name("half-done")
    book = write_playbook(tmp_path, [{"step": "tests.helpers.steps:FailsAfterWrite",
                                      "params": {"host": "eugeni", "path": str(target)}}])
    result = invoke(state, "playbook.run", str(book), "--yes")
    assert result.returncode == ExitCode.STEP_FAILED_ROLLED_BACK, result.stdout
    assert not target.exists()
    kinds = [e["event"] for e in journal_events(state)]
    assert kinds.count("op_rolled_back") == 2 and "step_rollback_verified" in kinds


def test_failed_verification_exits_10_and_leaves_changes_for_rollback(clean, lab_inventory, state, tmp_path):
    target = notice(lab_inventory, "eugeni").with_name("written")
    book = write_playbook(tmp_path, [{"step": "tests.helpers.steps:WrongVerify",
                                      "params": {"host": "eugeni", "path": str(target)}}])
    result = invoke(state, "playbook.run", str(book), "--yes")
    assert result.returncode == ExitCode.VERIFY_FAILED
    assert target.read_bytes() == b"written\n"
    assert invoke(state, "runs.rollback", "last", "--yes").returncode == 0
    assert not target.exists()


def slow_playbook(tmp_path, pause: float, message: str = "resumed"):
    return write_playbook(tmp_path, [
        {"step": "demo.notice", "params": {"hosts": ["ns1"], "message": message}},
        {"step": "tests.helpers.steps:SlowNotice", "params": {"hosts": HOSTS, "message": message, "pause": pause}},
    ], name=f"slow-{pause}.yaml")


def reference_end_state(lab_inventory, tmp_path, state) -> dict:
    """The trees after an uninterrupted run of the same playbook (then rolled back)."""
    ref_state = state.with_name("reference-state")
    done = invoke(ref_state, "playbook.run", str(slow_playbook(tmp_path, 0)), "--yes")
    assert done.returncode == 0, done.stdout
    end = all_trees(lab_inventory)
    assert invoke(ref_state, "runs.rollback", "last", "--yes").returncode == 0
    return end


def kill(proc) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


@pytest.mark.slow
def test_sigkill_in_the_middle_of_a_step_then_resume(clean, lab_inventory, state, tmp_path):
    expected = reference_end_state(lab_inventory, tmp_path, state)
    proc = spawn_invoke(state, "playbook.run", str(slow_playbook(tmp_path, 3)), "--yes", "--reason", "kill test")
    # Step 2's third operation is the pause before lists-01's write: eugeni is written, the rest not.
    wait_for_event(state, lambda e: e["event"] == "op_start" and e.get("step") == 1 and e.get("op") == 2)
    kill(proc)
    run_id = newest_run_id(state)
    interrupted = load_run(state / "runs" / run_id)
    assert interrupted.steps[0].status == "done" and interrupted.steps[1].status == "running"
    assert notice(lab_inventory, "eugeni").exists() and not notice(lab_inventory, "web-01").exists()

    resumed = invoke(state, "runs.resume", run_id, "--yes", "--reason", "after kill")
    assert resumed.returncode == 0, resumed.stdout
    assert "interrupted" in resumed.stdout and "took over the lock" in resumed.stdout
    assert all_trees(lab_inventory) == expected
    final = load_run(state / "runs" / run_id)
    assert final.status == "done" and [s.status for s in final.steps] == ["done", "done"]


@pytest.mark.slow
def test_sigkill_between_steps_then_resume(clean, lab_inventory, state, tmp_path):
    expected = reference_end_state(lab_inventory, tmp_path, state)
    proc = spawn_invoke(state, "playbook.run", str(slow_playbook(tmp_path, 3)), "--yes")
    wait_for_event(state, lambda e: e["event"] == "step_end" and e.get("step") == 0)
    kill(proc)
    run_id = newest_run_id(state)
    interrupted = load_run(state / "runs" / run_id)
    assert interrupted.steps[0].status == "done"
    assert not any(o.ended for o in interrupted.steps[1].ops)

    resumed = invoke(state, "runs.resume", run_id, "--yes")
    assert resumed.returncode == 0, resumed.stdout
    assert "already done" in resumed.stdout
    assert all_trees(lab_inventory) == expected


@pytest.mark.slow
def test_lock_refuses_a_second_run_names_the_holder_and_a_stale_lock_is_broken_explicitly(
        clean, lab_inventory, state, tmp_path):
    proc = spawn_invoke(state, "playbook.run", str(slow_playbook(tmp_path, 3)), "--yes", "--reason", "holder")
    wait_for_event(state, lambda e: e["event"] == "op_start")
    holder_id = newest_run_id(state)

    second = invoke(state, "demo.notice", "--yes", "--host", "ns2")
    assert second.returncode == ExitCode.LOCKED
    text = second.stdout + second.stderr
    assert holder_id in text and "root" in text and "since" in text and "holder" in text
    assert "wait for it to finish" in text
    assert not notice(lab_inventory, "ns2").exists()
    assert invoke(state, "runs.unlock").returncode == 1  # the holder is alive: refused

    kill(proc)
    stale = invoke(state, "demo.notice", "--yes", "--host", "ns2")
    assert stale.returncode == ExitCode.LOCKED and "runs.unlock" in stale.stdout + stale.stderr
    unlocked = invoke(state, "runs.unlock")
    assert unlocked.returncode == 0 and holder_id in unlocked.stdout
    assert invoke(state, "demo.notice", "--yes", "--host", "ns2").returncode == 0


def test_secrets_never_reach_journal_log_or_output(clean, lab_inventory, state, tmp_path):
    token = "tok-" + secrets.token_hex(12)
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    inv = inventory_variant(tmp_path, host_vars={"eugeni": {"test_token": {"file": str(token_file)}}})
    target = notice(lab_inventory, "eugeni").with_name("token")
    book = write_playbook(tmp_path, [{"step": "tests.helpers.steps:UsesSecret",
                                      "params": {"host": "eugeni", "secret_var": "test_token", "target": str(target)}}])

    outputs = []
    for args in (["--dry-run"], ["--yes"]):
        result = invoke(state, "playbook.run", str(book), "-i", str(inv), *args)
        assert result.returncode == 0, result.stdout + result.stderr
        outputs.append(result.stdout + result.stderr)
    assert target.read_text() == f"token={token}\n"  # the step really had the secret
    rolled = invoke(state, "runs.rollback", "last", "-i", str(inv), "--yes")
    assert rolled.returncode == 0
    outputs.append(rolled.stdout + rolled.stderr)

    # Blobs hold the token file's content (allowed: that is what they are for); nothing else may
    # hold the token, in any encoding, the printf of every encoding included.
    scanned = [p for p in (state / "runs").rglob("*") if p.is_file() and p.parent.name != "blobs"]
    assert sorted(p.name for p in scanned) == ["journal.jsonl"] * 2 + ["run.log"] * 2
    for path in scanned:
        text = path.read_text()
        assert "***" in text or path.name == "run.log"
        assert not leaks(text, token), f"secret found in {path}"
    for out in outputs:
        assert not leaks(out, token)
    assert not target.exists()


def test_journal_survives_a_torn_last_line(tmp_path):
    from migrate.core.journal import Journal

    journal = Journal(tmp_path / "runs" / "r1")
    journal.append("run_start", run_id="r1", steps=[{"ref": "x:y", "id": "x", "params": {}}])
    journal.append("step_start", step=0)
    journal.close()
    with open(journal.path, "ab") as fh:
        fh.write(b'{"event": "op_st')  # what a SIGKILL mid-write leaves
    state = load_run(journal.run_dir)
    assert state.truncated and state.steps[0].status == "running"
    again = Journal(journal.run_dir)
    again.append("step_end", step=0, status="done")
    again.close()
    assert load_run(journal.run_dir).steps[0].status == "done"


def test_run_show_and_list_read_the_journal(clean, lab_inventory, state):
    assert invoke(state, "demo.notice", "--yes", "--host", "eugeni", "--reason", "show me").returncode == 0
    listed = json.loads(invoke(state, "runs.list", "--json").stdout)
    assert listed[-1]["status"] == "done" and listed[-1]["reason"] == "show me"
    shown = json.loads(invoke(state, "runs.show", listed[-1]["run_id"], "--json").stdout)
    op = shown["steps"][0]["ops"][0]
    assert op["ok"] is True and op["op"]["host"] == "eugeni"
    assert invoke(state, "runs.rollback", "last", "--yes").returncode == 0
