"""Secrets stay out of every file and output a run writes, whatever shape or encoding they take.

These tests run without the lab: the runner drives commands on the controller itself ("local"),
and the raw files it writes are read back byte for byte.
"""

from __future__ import annotations

import io
import json
import secrets as random
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from migrate.core.errors import MigrateError, SecretError
from migrate.core.executor import RunLog
from migrate.core.inventory import load_inventory
from migrate.core.journal import Journal, StateDir
from migrate.core.report import Reporter
from migrate.core.runner import OUTPUT_TAIL, ExitCode, Runner, _output
from migrate.core.secrets import REDACTED, Secret, from_env, from_file, redact, redact_obj
from migrate.core.transport import LocalTransport

from ..helpers.secret_forms import encoded_forms, leaks
from ..helpers.steps import ShowsSecret, secret_shapes

LAB_INVENTORY = Path(__file__).resolve().parents[2] / "inventories" / "lab.yaml"


def new_secret() -> str:
    """A secret whose encodings all differ from it: a space, a slash, quotes, a backslash, a ü."""
    return f"Zq{random.token_hex(6)} ü/+\"'\\&={random.token_hex(6)}"


@pytest.fixture
def secret(monkeypatch) -> str:
    value = new_secret()
    monkeypatch.setenv("TEST_SHOWN_SECRET", value)
    from_env("TEST_SHOWN_SECRET")  # resolved as a step would: registered for redaction
    return value


def files_of(run_dir: Path) -> dict[str, str]:
    return {str(p.relative_to(run_dir)): p.read_bytes().decode("utf-8", "replace")
            for p in sorted(run_dir.rglob("*")) if p.is_file()}


def assert_no_leak(texts: dict[str, str], secret: str) -> None:
    found = {where: leaks(text, secret) for where, text in texts.items()}
    assert not {where: pieces for where, pieces in found.items() if pieces}


def journal_of(tmp_path: Path, event: str, **data) -> str:
    journal = Journal(tmp_path / "runs" / "r1")
    journal.append(event, **data)
    journal.close()
    return journal.path.read_text()


def run_shows_secret(tmp_path: Path, **params) -> tuple[Path, str]:
    """Run the ShowsSecret step for real, in this process; return its run folder and the output."""
    console = Console(file=io.StringIO(), width=200)
    runner = Runner(load_inventory(LAB_INVENTORY), StateDir(tmp_path / "state", tmp_path / "locks"),
                    dry_run=False, yes=True, reporter=Reporter(console=console))
    outcome = runner.run([ShowsSecret({"secret_env": "TEST_SHOWN_SECRET", **params})])
    assert outcome.exit_code == ExitCode.OK, outcome.message
    return tmp_path / "state" / "runs" / outcome.run_id, console.file.getvalue()


def op_output(run_dir: Path) -> dict:
    events = [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]
    return next(e for e in events if e["event"] == "op_end")


# -- short secrets are refused ---------------------------------------------------------------------


def test_a_short_secret_is_refused_naming_its_reference_not_its_value(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_SHORT_SECRET", "k3y")
    with pytest.raises(SecretError) as caught:
        from_env("TEST_SHORT_SECRET")
    assert "env:TEST_SHORT_SECRET" in str(caught.value) and "k3y" not in str(caught.value)
    assert "8 characters" in str(caught.value)

    file = tmp_path / "short"
    file.write_text("k3y\n")
    file.chmod(0o600)
    with pytest.raises(SecretError) as caught:
        from_file(file)
    assert str(file) in str(caught.value) and "k3y" not in str(caught.value)

    with pytest.raises(SecretError) as caught:
        Secret("k3y", "test:short")
    assert "test:short" in str(caught.value) and "k3y" not in str(caught.value)
    assert redact("the k3y is k3y") == "the k3y is k3y"  # refused, so never registered


def test_a_short_secret_is_refused_when_the_inventory_resolves_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_SHORT_SECRET", "k3y")
    path = tmp_path / "inventory.yaml"
    path.write_text("hosts:\n  eugeni:\n    address: 127.0.0.11\n"
                    "    vars: {rest_password: {env: TEST_SHORT_SECRET}}\n")
    host = load_inventory(path).host("eugeni")
    with pytest.raises(SecretError) as caught:
        host.secret("rest_password")
    message = str(caught.value)
    assert message.startswith(f"{path}: hosts.eugeni.vars.rest_password: ") and "k3y" not in message


def test_the_secrets_the_lab_generates_are_long_enough(tmp_path):
    from migrate.lab.mailman3 import ensure_secret

    value = ensure_secret(tmp_path / "secrets" / "generated")
    assert Secret(value, "test:lab").reveal() == value


# -- encoded forms, in the run log, the journal and the output -------------------------------------


def test_no_encoded_form_reaches_the_run_log_the_journal_or_the_output(secret, tmp_path):
    run_dir, shown = run_shows_secret(tmp_path, forms=list(encoded_forms(secret)))
    files = files_of(run_dir)
    assert sorted(files) == ["journal.jsonl", "run.log"]  # no file content: no blob either
    assert f" {REDACTED}" in files["run.log"] and REDACTED in op_output(run_dir)["stdout"]
    assert_no_leak({**files, "output": shown}, secret)


@pytest.mark.parametrize("form", sorted(encoded_forms("x" * 8)))
def test_each_encoded_form_is_redacted_inside_a_longer_text(secret, form):
    encoded = encoded_forms(secret)[form]
    text = redact(f"Authorization: Basic {encoded}, then more")
    assert not leaks(text, secret)
    assert text.startswith("Authorization: Basic ") and text.endswith(", then more")


def test_run_log_lines_hold_no_encoded_form(secret, tmp_path):
    log = RunLog(tmp_path / "run.log")
    for form in encoded_forms(secret).values():
        log.write("run", "lists-01", f"curl -H 'Authorization: Basic {form}' https://x/?pw={form}")
    log.close()
    assert_no_leak({"run.log": (tmp_path / "run.log").read_text()}, secret)


SECRET_FOR_PROPERTIES = new_secret()
Secret(SECRET_FOR_PROPERTIES, "test:properties")


@settings(max_examples=200, deadline=None)
@given(before=st.text(max_size=40), after=st.text(max_size=40), form=st.sampled_from(sorted(encoded_forms("x" * 8))))
def test_redaction_holds_whatever_surrounds_the_secret(before, after, form):
    value = SECRET_FOR_PROPERTIES
    text = redact(before + encoded_forms(value)[form] + after)
    assert not leaks(text, value)



def test_text_without_a_secret_is_left_alone(secret):
    text = "plain log line: 1234 abcd \u00fc ***"
    assert redact(text) == text
    assert redact_obj({"a": [1, 2.5, None, True, text]}) == {"a": [1, 2.5, None, True, text]}


# -- every shape of data, in the journal, tables and JSON output -----------------------------------


@pytest.mark.parametrize("shape", sorted(secret_shapes("x" * 8)))
def test_journal_holds_no_secret_in_any_shape_of_data(secret, tmp_path, shape):
    text = journal_of(tmp_path, "probe", value=secret_shapes(secret)[shape])
    assert_no_leak({"journal.jsonl": text}, secret)
    assert REDACTED in text
    json.loads(text)  # still one JSON document per line


def test_journal_stores_json_shapes_for_python_data(secret, tmp_path):
    text = journal_of(tmp_path, "probe", ids={"<b@x>", "<a@x>"}, raw=b"caf\xc3\xa9 \xff", error=KeyError("k"),
                      where=Path("/srv/lists"), key={secret: [secret]}, code=ExitCode.VERIFY_FAILED)
    record = json.loads(text)
    assert record["ids"] == ["<a@x>", "<b@x>"]  # sets sorted, so that two runs compare equal
    assert record["raw"] == "café \\xff"  # bytes as text; what is not UTF-8 shown escaped
    assert record["error"] == "'k'"
    assert record["where"] == "/srv/lists"
    assert record["key"] == {REDACTED: [REDACTED]}
    assert record["code"] == 10


def test_journal_refuses_a_cycle_and_data_nested_without_end(tmp_path):
    loop: list = []
    loop.append(loop)
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    dag: list = ["leaf"]
    for _ in range(40):  # two references per level: 2**40 leaves if expanded
        dag = [dag, dag]
    chain: list = [[]]
    for _ in range(1500):  # shallow at each first visit, 1500 levels deep once expanded
        chain.append([chain[-1]])
    journal = Journal(tmp_path / "runs" / "r1")
    for value in (loop, deep, dag, chain):
        with pytest.raises(MigrateError, match="probe"):
            journal.append("probe", value=value)
    journal.close()
    assert journal.path.read_text() == ""


def test_reporter_tables_and_json_hold_no_secret_in_any_shape(secret, capsys):
    console = Console(file=io.StringIO(), width=400)
    reporter = Reporter(console=console)
    shapes = secret_shapes(secret)
    reporter.table("shapes", ["name", "value"], [(name, value) for name, value in shapes.items()])
    reporter.emit_json(shapes)
    printed = capsys.readouterr().out
    json.loads(printed)
    assert_no_leak({"table": console.file.getvalue(), "json": printed}, secret)


def test_a_step_verification_in_every_shape_reaches_journal_and_terminal_redacted(secret, tmp_path):
    run_dir, shown = run_shows_secret(tmp_path, shapes=True)
    events = [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]
    checks = next(e for e in events if e["event"] == "step_verified")["checks"]
    assert [c["name"] for c in checks] == list(secret_shapes(secret))
    assert_no_leak({**files_of(run_dir), "output": shown}, secret)


# -- what commands print: the tail kept in the journal ---------------------------------------------


@pytest.mark.parametrize("kept", [1, 9, 20])
def test_a_secret_across_the_stdout_tail_cut_leaves_no_piece(secret, tmp_path, kept):
    # The command prints 5000 x's, the secret, then y's so that only its last `kept` characters
    # fall inside the 4000 characters the journal keeps.
    after = OUTPUT_TAIL - kept
    run_dir, shown = run_shows_secret(tmp_path, before=5000, after=after)
    stdout = op_output(run_dir)["stdout"]
    assert stdout.endswith(REDACTED + "y" * after)
    assert_no_leak({**files_of(run_dir), "output": shown}, secret)


def test_the_tail_never_starts_inside_a_redaction_marker(secret):
    for before_cut in range(len(REDACTED) + 1):
        result = LocalTransport().run([sys.executable, "-c", "import sys; sys.stdout.write(sys.argv[1])",
                                       "x" * 10 + secret + "y" * (OUTPUT_TAIL - before_cut)])
        tail = _output(result)["stdout"]
        assert tail.endswith("y" * (OUTPUT_TAIL - before_cut))
        assert tail.startswith(REDACTED) or tail.startswith("y"), tail[:10]


# -- saved reports and task errors --------------------------------------------------------------------


def test_saved_reports_hold_no_secret_in_any_shape(secret, tmp_path):
    from migrate.core.report import save_json

    save_json(tmp_path / "report.json", secret_shapes(secret))
    text = (tmp_path / "report.json").read_text()
    assert set(json.loads(text)) == set(secret_shapes(secret))
    assert_no_leak({"report.json": text}, secret)


def test_a_task_error_line_holds_no_secret(secret):
    from invoke.exceptions import Exit

    from migrate.tasks._common import guarded

    @guarded
    def task():
        raise MigrateError(f"cannot log in with {encoded_forms(secret)['basic-auth-user']}")

    with pytest.raises(Exit) as caught:
        task()
    assert str(caught.value.message).startswith("error: cannot log in with ")
    assert_no_leak({"error": str(caught.value.message)}, secret)
