"""Why a message of the Mailman 2 mbox is not in HyperKitty: reasons from the lint findings and the
importer's own lines, and the plausible messages that sit inside another message's body."""

from __future__ import annotations

import json
import time

from migrate.archives import mbox
from migrate.archives.missing import explain_missing, importer_lines, missing_messages
from migrate.archives.steps import prepare_bytes, scan_bytes
from migrate.core.journal import StateDir

LIST = "team@lists.example.org"
SEP = b"From alice@example.org  Mon Feb  8 10:00:00 2016\n"


def message(*headers: bytes, body: bytes = b"Hello.\n", separator: bytes = SEP) -> bytes:
    return separator + b"".join(h + b"\n" for h in headers) + b"\n" + body + b"\n"


def ordinary(number: int, body: bytes = b"Hello.\n") -> bytes:
    return message(b"From: Alice <alice@example.org>", b"Date: Mon, 08 Feb 2016 10:00:00 +0100",
                   f"Subject: message {number}".encode(), f"Message-ID: <m{number}@example.org>".encode(),
                   body=body)


def analysed(data: bytes):
    _, prepared = prepare_bytes(data, list_name=LIST, fallback_charset=None)
    return scan_bytes(data), prepared


EMPTY = message(b"From: a@example.org", b"Date: Mon, 08 Feb 2016 10:00:00 +0100", b"Message-ID: <empty@x>",
                body=b"")


def test_a_missing_message_takes_its_reason_from_the_lint_findings():
    data = ordinary(1) + EMPTY + ordinary(3)
    report, prepared = analysed(data)
    assert report.counts["empty_message"] == 1
    (difference,) = explain_missing(data, report, prepared, {"<empty@x>"})
    assert difference.index == 1
    assert "empty" in difference.reason and "unknown reason" not in difference.describe()
    # An empty message is no known refusal of HyperKitty's: it stays unexplained.
    assert not difference.explained


def test_the_importers_own_line_about_the_message_is_part_of_the_reason():
    data = ordinary(1) + EMPTY
    report, prepared = analysed(data)
    lines = [
        "Failed adding message <empty@x>: the message has no text part",  # add_to_list's ValueError
        "Message notempty@x failed to import, skipping",                   # another message
        "Message empty@x.org failed to import, skipping",                  # another id, same start
    ]
    (difference,) = explain_missing(data, report, prepared, {"<empty@x>"}, importer_lines=lines)
    assert "empty" in difference.reason
    assert "hyperkitty_import: Failed adding message <empty@x>: the message has no text part" in difference.reason
    assert "notempty" not in difference.reason and "x.org" not in difference.reason

    # The bracketless form the importer prints in its other messages is found too.
    (difference,) = explain_missing(data, report, prepared, {"<empty@x>"},
                                    importer_lines=["Message empty@x failed to import, skipping", "    boom"])
    assert "hyperkitty_import: Message empty@x failed to import, skipping boom" in difference.reason


def test_a_missing_message_with_nothing_known_says_so():
    data = ordinary(1)
    report, prepared = analysed(data)
    (difference,) = explain_missing(data, report, prepared, {"<m1@example.org>"})
    assert difference.reason == "" and difference.describe().endswith("unknown reason")


# -- plausible messages inside a body --------------------------------------------------------------

# Mailman 2.1's cleanarch takes `From b at example.org ...` for body text and escapes it: the
# message after it becomes part of the one before, in the mbox itself.
ESCAPED_BY_CLEANARCH = (
    ordinary(1)
    + ordinary(2, b"see you\n\n>From b at example.org  Tue Jan  2 00:00:00 2018\nFrom: b@example.org\n"
                  b"Subject: two\nMessage-ID: <hidden@x>\n\nsecond\n")
)


def test_a_message_hidden_in_a_body_is_reported_with_where_it_is():
    report, prepared = analysed(ESCAPED_BY_CLEANARCH)
    assert prepared.message_ids == ["<m1@example.org>", "<m2@example.org>"]
    differences = missing_messages(ESCAPED_BY_CLEANARCH, report, prepared,
                                   frozenset({"<m1@example.org>", "<m2@example.org>"}))
    (hidden,) = differences
    assert (hidden.message_id, hidden.side, hidden.index) == ("<hidden@x>", "missing", 1)
    line = ESCAPED_BY_CLEANARCH[:ESCAPED_BY_CLEANARCH.index(b">From b")].count(b"\n") + 1
    assert f"line {line}" in hidden.reason and ">From" in hidden.reason
    # Mailman 2's own archive holds it as body text too: reported, with what to do, not a failure.
    assert hidden.explained and "remove the `>`" in hidden.reason

    # Once HyperKitty holds that id (say, the message was archived on its own too), nothing is said.
    present = frozenset({"<m1@example.org>", "<m2@example.org>", "<hidden@x>"})
    assert missing_messages(ESCAPED_BY_CLEANARCH, report, prepared, present) == []


def test_an_unescaped_from_line_with_a_message_inside_a_message_is_a_failure():
    """The separator rule splits at every such line, so only a message boundary set by other means
    (here: the whole data taken as one message) leaves one inside; verification does not rely on
    the rule for that."""
    data = ordinary(1, b"text\n\nFrom b at example.org  Tue Jan  2 00:00:00 2018\nFrom: b@example.org\n"
                       b"Message-ID: <inside@x>\n\nsecond\n")
    report = mbox.MboxReport(path="", size=len(data), messages=1, message_ids=["<m1@example.org>"], offsets=[0])
    _, prepared = analysed(ordinary(1))
    (hidden,) = missing_messages(data, report, prepared, frozenset({"<m1@example.org>"}))
    assert hidden.message_id == "<inside@x>" and hidden.index == 0
    assert not hidden.explained and "hyperkitty_import would" in hidden.reason


def test_hidden_messages_after_the_watermark_are_pending():
    report, prepared = analysed(ESCAPED_BY_CLEANARCH)
    differences = missing_messages(ESCAPED_BY_CLEANARCH, report, prepared, frozenset({"<m1@example.org>"}),
                                   pending_from=report.offsets[1])
    assert sorted(d.message_id for d in differences) == ["<hidden@x>", "<m2@example.org>"]
    assert all("archives.import --delta" in d.reason for d in differences)


def test_embedded_messages_are_found_at_from_lines_with_a_message_id_only():
    data = ordinary(1, b"From here\nNote: x\n\n"
                       b">>From c@example.org Tue Jan  2 00:00:00 2018\nMessage-ID: <c@x>\n\n"
                       b"From the log:\nMessage-ID: <>\n\n"
                       b"> From: quoted@example.org\n> Message-ID: <quoted@x>\n\n"
                       b"From d at example.org\nSubject: s\n Message-ID: <folded-into-subject@x>\n"
                       b"Message-Id:\n <d@x>\n\n")
    found = [(data[p:data.index(b"\n", p)], msgid, escaped) for p, msgid, escaped in mbox.embedded_messages(data)]
    assert found == [(b">>From c@example.org Tue Jan  2 00:00:00 2018", "<c@x>", True),
                     (b"From d at example.org", "<d@x>", False)]


# -- the importer's lines, from the journals ---------------------------------------------------------

def _import_run(state: StateDir, stderr: str, status: str = "done") -> str:
    journal = state.new_journal()
    journal.append("run_start", run_id=journal.run_id, dry_run=False,
                   steps=[{"ref": "migrate.archives.steps:ImportArchive", "id": "archives.import", "params": {}}])
    journal.append("step_planned", step=0, ops=[{"type": "WriteFile"}, {"type": "ImportArchives", "lists": []}])
    for op in (0, 1):
        journal.append("op_start", step=0, op=op, pre_state=None)
        journal.append("op_end", step=0, op=op, ok=True, exited=0, **({"stderr": stderr} if op == 1 else {}))
    journal.append("step_end", step=0, status=status)
    journal.append("run_end", status="done", exit_code=0)
    journal.close()
    time.sleep(1.1)  # run ids sort by second
    return journal.run_id


def test_importer_lines_are_read_from_the_import_runs(tmp_path):
    state = StateDir(tmp_path)
    _import_run(state, "a@x: Failed adding message <1@x>: bad\nb@x: Message 2@x failed to import, skipping")
    _import_run(state, "a@x: Failed adding message <1@x>: bad\na@x: Failed to convert 3@x to bytes")
    # A torn line (the journal keeps only the tail of the output) is left out.
    _import_run(state, "ed message <9@x>: cut\na@x: Message 4@x failed to import, skipping")
    (tmp_path / "runs" / "junk").mkdir()
    found = importer_lines(state)
    assert found == {"a@x": ["Failed adding message <1@x>: bad", "Failed to convert 3@x to bytes",
                             "Message 4@x failed to import, skipping"],
                     "b@x": ["Message 2@x failed to import, skipping"]}
    json.dumps(found)
