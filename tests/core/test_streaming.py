"""Streaming a command's output while it runs, and the progress hook operations report through."""

from __future__ import annotations

import threading
import time

import pytest

from migrate.core.executor import Executor, ProgressHandle, show_progress
from migrate.core.ops import Operation
from migrate.core.transport import Connections, LocalTransport, Result

# Three percentages without newlines, a pause between them, like hyperkitty_import's progress;
# the last one carries a character whose UTF-8 bytes may be split between two reads.
TICKS = 'for i in 1 2 3; do printf "\\r%s%%" "$i"; sleep 0.3; done; printf " fertig ✓\\n"'


@pytest.mark.lab
def test_ssh_output_arrives_while_the_command_runs(lab_hosts, lab_inventory):
    chunks: list[tuple[float, str]] = []
    with Connections(lab_inventory) as connections:
        started = time.monotonic()
        result = connections.get("eugeni").run(
            ["sh", "-c", TICKS], on_output=lambda text: chunks.append((time.monotonic() - started, text)))
        ended = time.monotonic() - started
    assert result.ok
    assert "".join(text for _, text in chunks) == result.stdout == "\r1%\r2%\r3% fertig ✓\n"
    # The first percentage was seen long before the command ended: it was streamed, not replayed.
    first = next(at for at, text in chunks if "1%" in text)
    assert first < ended - 0.4
    assert len(chunks) >= 3


@pytest.mark.lab
def test_ssh_run_without_a_callback_is_unchanged(lab_hosts, lab_inventory):
    with Connections(lab_inventory) as connections:
        result = connections.get("eugeni").run(["sh", "-c", TICKS])
    assert result.stdout == "\r1%\r2%\r3% fertig ✓\n"


def test_local_transport_hands_over_the_whole_output_at_the_end():
    seen: list[str] = []
    result = LocalTransport().run(["printf", "a\\rb"], on_output=seen.append)
    assert seen == ["a\rb"] and result.stdout == "a\rb"


class _Transport:
    """A transport of the old shape: its run() knows nothing of on_output."""

    name = "old"

    def __init__(self):
        self.calls = []

    def run(self, argv, *, input=None, env=None, cwd=None, timeout=None):
        self.calls.append(list(argv))
        return Result("old", " ".join(argv), 0, "out")


class _Connections:
    def __init__(self, transport):
        self.transport = transport

    def get(self, name):
        return self.transport


class _Op(Operation):
    """Runs `true` with or without a stream callback, and reports progress."""

    def __init__(self, host, stream):
        super().__init__(host)
        self.stream = stream
        self.seen = []

    def describe(self):
        return "probe"

    def perform(self, effects):
        with effects.progress("probe", 3) as bar:
            bar.advance()
            bar.update(completed=3)
        kwargs = {"on_output": self.seen.append} if self.stream else {}
        return effects.run(self.host, ["true"], **kwargs)


def test_effects_run_without_a_callback_suits_transports_of_the_old_shape():
    transport = _Transport()
    executor = Executor(_Connections(transport), dry_run=False)
    assert executor.execute(_Op("old", stream=False)).stdout == "out"
    assert transport.calls == [["true"]]


def test_effects_run_passes_the_callback_to_the_transport():
    executor = Executor(Connections(inventory=None), dry_run=False)
    op = _Op("local", stream=True)
    executor.execute(op)
    assert op.seen == []  # `true` prints nothing, and nothing else was made up


class _Recorder(ProgressHandle):
    def __init__(self, log, description, total):
        self.log = log
        log.append(("start", description, total))

    def advance(self, amount=1):
        self.log.append(("advance", amount))

    def update(self, *, completed=None, total=None):
        self.log.append(("update", completed, total))

    def close(self):
        self.log.append(("close",))


def test_progress_goes_nowhere_unless_someone_shows_it():
    executor = Executor(Connections(inventory=None), dry_run=False)
    executor.execute(_Op("local", stream=False))  # the default handle accepts every call


def test_show_progress_reaches_operations_of_executors_built_inside():
    log: list = []
    with show_progress(lambda description, total: _Recorder(log, description, total)):
        inside = Executor(Connections(inventory=None), dry_run=False)
    outside = Executor(Connections(inventory=None), dry_run=False)
    inside.execute(_Op("local", stream=False))
    assert log == [("start", "probe", 3), ("advance", 1), ("update", 3, None), ("close",)]
    log.clear()
    outside.execute(_Op("local", stream=False))
    assert log == []


def test_show_progress_is_per_thread_of_control():
    log: list = []
    built: dict = {}

    def elsewhere():
        built["executor"] = Executor(Connections(inventory=None), dry_run=False)

    with show_progress(lambda description, total: _Recorder(log, description, total)):
        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
    built["executor"].execute(_Op("local", stream=False))
    assert log == []


def test_dry_run_reports_no_progress_and_runs_nothing():
    log: list = []
    with show_progress(lambda description, total: _Recorder(log, description, total)):
        executor = Executor(Connections(inventory=None), dry_run=True)
    assert executor.execute(_Op("local", stream=True)) is None
    assert log == [] and [op.describe() for op in executor.recorded] == ["probe"]
