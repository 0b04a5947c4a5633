"""mbox lint and cleaned copy, on small handmade archives shaped like Mailman 2.1's.

`mailbox.mbox` is what `hyperkitty_import` reads the archive with, so the tests check the prepared
copy through it: the messages it finds are the true messages, with the same bodies.
"""

from __future__ import annotations

import email
import email.header
import email.policy
import json
import mailbox
import os
import re
import sqlite3
import subprocess
import time
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrate.archives import mbox
from migrate.archives.mbox import PROBLEM_KINDS, prepare, scan
from migrate.archives.msgid import message_hash, normalise
from migrate.core.paths import LAB_ROOT

LIST = "team@lists.example.org"
SEP = b"From alice@example.org  Mon Feb  8 10:00:00 2016\n"


def message(*headers: bytes, body: bytes = b"Hello.\n", separator: bytes = SEP) -> bytes:
    """One mbox entry the way Mailman 2.1's archiver appends it: From_ line, headers, body, blank."""
    return separator + b"".join(h + b"\n" for h in headers) + b"\n" + body + b"\n"


def ordinary(number: int, body: bytes = b"Hello.\n") -> bytes:
    return message(
        b"From: Alice <alice@example.org>",
        b"Date: Mon, 08 Feb 2016 10:00:00 +0100",
        f"Subject: message {number}".encode(),
        f"Message-ID: <m{number}@example.org>".encode(),
        body=body,
    )


def write(tmp_path: Path, content: bytes, name: str = "team.mbox") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def python_mbox(path: Path) -> list[bytes]:
    """The messages `mailbox.mbox` (hyperkitty_import's reader) finds, as bytes without From_ line."""
    box = mailbox.mbox(str(path), create=False)
    try:
        return [box.get_bytes(key) for key in box.iterkeys()]
    finally:
        box.close()


def body_of(raw: bytes) -> bytes:
    return raw.split(b"\n\n", 1)[1] if b"\n\n" in raw else b""


def header_of(raw: bytes, name: str) -> str | None:
    value = email.message_from_bytes(raw, policy=email.policy.compat32)[name]
    return None if value is None else str(value)


def prepared(tmp_path: Path, content: bytes, **options) -> tuple[Path, object]:
    src = write(tmp_path, content)
    dst = tmp_path / "team.prepared.mbox"
    return dst, prepare(src, dst, list_name=LIST, **options)


# --- scan -----------------------------------------------------------------------------------------

def test_clean_archive(tmp_path):
    content = ordinary(1) + ordinary(2) + ordinary(3)
    report = scan(write(tmp_path, content))
    assert report.clean, report.counts
    assert report.messages == 3
    assert report.message_ids == ["<m1@example.org>", "<m2@example.org>", "<m3@example.org>"]
    assert report.offsets == [m.start() for m in re.finditer(rb"^From alice", content, re.M)]
    assert report.size == len(content)
    assert set(report.counts) == set(PROBLEM_KINDS)
    json.dumps(report.to_json())


def test_empty_archive(tmp_path):
    report = scan(write(tmp_path, b""))
    assert (report.messages, report.clean) == (0, True)
    dst, result = prepared(tmp_path, b"")
    assert dst.read_bytes() == b"" and result.messages == 0


def test_clean_archive_is_copied_unchanged(tmp_path):
    content = ordinary(1) + ordinary(2)
    dst, result = prepared(tmp_path, content)
    assert dst.read_bytes() == content
    assert result.changes == [] and result.unresolved == []
    assert result.message_ids == ["<m1@example.org>", "<m2@example.org>"]


def test_unescaped_from_lines_do_not_count_as_messages(tmp_path):
    body = (
        b"Quoting the log:\n"
        b"\n"
        b"From here on it is broken.\n"                          # not a From_ line at all
        b"From bob@example.org Tue Feb  9 11:00:00 2016\n"        # From_ shaped, but no header follows
        b"and then the body goes on\n"
        b">From an already escaped line\n"
    )
    content = ordinary(1, body) + ordinary(2)
    src = write(tmp_path, content)
    assert len(python_mbox(src)) == 4, "mailbox.mbox cuts the first message at each From line"

    report = scan(src)
    assert report.messages == 2
    assert report.counts["unescaped_from_line"] == 2
    assert [p.line for p in report.examples if p.kind == "unescaped_from_line"] == [9, 10]

    dst, result = prepared(tmp_path, content)
    messages = python_mbox(dst)
    assert len(messages) == 2
    assert body_of(messages[0]) == body.replace(b"\nFrom ", b"\n>From ")
    assert [c.kind for c in result.changes] == ["escaped_from_line", "escaped_from_line"]
    assert result.changes[0].before == "From here on it is broken."
    assert result.changes[0].after == ">From here on it is broken."
    assert result.changes[0].message_index == 0 and result.changes[0].line == 9
    assert b">From an already escaped line\n" in dst.read_bytes()
    assert b">>From" not in dst.read_bytes()


def test_separator_needs_a_header_on_the_next_line(tmp_path):
    # A From_ shaped line at the very end, and one followed by a blank line: both are body text.
    content = ordinary(1, b"text\n\nFrom bob@example.org Tue Feb  9 11:00:00 2016\n\nmore\n") + ordinary(2)
    content += b"From carol@example.org Wed Feb 10 12:00:00 2016\n"
    report = scan(write(tmp_path, content))
    assert report.messages == 2
    assert report.counts["unescaped_from_line"] == 2


def test_separator_variants_mailman_wrote(tmp_path):
    separators = [
        b"From alice@example.org Mon Feb  8 10:00:00 2016\n",
        b"From alice@example.org  Mon Feb 08 10:00:00 2016\n",
        b"From alice@example.org Mon Feb  8 10:00 2016\n",
        b"From alice@example.org Mon Feb  8 10:00:00 CET 2016\n",
        b"From alice@example.org Mon Feb  8 10:00:00 2016 +0100\n",
        b"From alice@example.org Mon Feb  8 10:00:00 2016\r\n",
    ]
    content = b"".join(message(b"Message-ID: <s%d@x>" % i, b"Date: Mon, 08 Feb 2016 10:00:00 +0100",
                               b"From: a@example.org", separator=sep) for i, sep in enumerate(separators))
    report = scan(write(tmp_path, content))
    assert report.messages == len(separators)


def test_separator_without_blank_line_still_separates(tmp_path):
    # Mailman 2.1's Mailbox.AppendMessage adds no blank line after a body without final newline.
    first = ordinary(1, b"no final newline")
    content = first + ordinary(2)
    report = scan(write(tmp_path, content))
    assert report.messages == 2
    assert report.counts["separator_without_blank_line"] == 1
    dst, result = prepared(tmp_path, content)
    assert dst.read_bytes() == content
    assert len(python_mbox(dst)) == 2


def test_leading_text_is_reported_and_its_from_lines_escaped(tmp_path):
    content = b"junk before the archive\nFrom the start\n\n" + ordinary(1)
    report = scan(write(tmp_path, content))
    assert report.messages == 1
    assert report.counts["leading_text"] == 1
    assert report.counts["unescaped_from_line"] == 1
    dst, result = prepared(tmp_path, content)
    assert len(python_mbox(dst)) == 1
    assert result.changes[0].message_index is None


def test_missing_message_id_gets_a_stable_generated_one(tmp_path):
    lacking = message(b"From: a@example.org", b"Date: Mon, 08 Feb 2016 10:00:00 +0100", b"Subject: no id",
                      body=b"first\n")
    other = message(b"From: a@example.org", b"Date: Mon, 08 Feb 2016 10:00:00 +0100", b"Subject: no id",
                    body=b"second\n")
    content = ordinary(1) + lacking + other
    report = scan(write(tmp_path, content))
    assert report.counts["missing_message_id"] == 2
    assert report.message_ids == ["<m1@example.org>", None, None]

    dst, result = prepared(tmp_path, content)
    assigned = result.assigned_ids
    assert sorted(assigned) == [1, 2]
    assert assigned[1] != assigned[2]
    assert all(re.fullmatch(r"<migrate\.[a-z2-7]{32}@lists\.example\.org>", v) for v in assigned.values())
    messages = python_mbox(dst)
    assert [header_of(m, "Message-ID") for m in messages] == ["<m1@example.org>", assigned[1], assigned[2]]
    # Inserted after the last header, nothing else touched.
    assert b"Subject: no id\nMessage-ID: " + assigned[1].encode() + b"\n\nfirst\n" in dst.read_bytes()
    assert result.message_ids == ["<m1@example.org>", assigned[1], assigned[2]]
    change = [c for c in result.changes if c.message_index == 1][0]
    assert change.offset == len(ordinary(1)) and change.before is None

    again = tmp_path / "again.mbox"
    prepare(tmp_path / "team.mbox", again, list_name=LIST)
    assert again.read_bytes() == dst.read_bytes()


def test_generated_id_goes_before_a_body_that_starts_right_after_the_headers(tmp_path):
    content = SEP + b"From: a@example.org\nSubject: s\nFrom the body, no blank line\n\n"
    dst, result = prepared(tmp_path, content)
    (msgid,) = result.assigned_ids.values()
    assert dst.read_bytes() == (SEP + b"From: a@example.org\nSubject: s\nMessage-ID: " + msgid.encode()
                                + b"\n>From the body, no blank line\n\n")


def test_prepared_copy_keeps_the_archive_permissions(tmp_path):
    src = write(tmp_path, ordinary(1))
    src.chmod(0o660)
    dst = tmp_path / "copy.mbox"
    prepare(src, dst, list_name=LIST)
    assert dst.stat().st_mode & 0o777 == 0o660


@pytest.mark.parametrize("value", [b"Message-ID:", b"Message-ID: <>", b"Message-ID: < >", b"Message-Id: <\xc3\xa9>"])
def test_unusable_message_id_is_replaced(tmp_path, value):
    content = message(b"From: a@example.org", value, b"Subject: s")
    dst, result = prepared(tmp_path, content)
    (change,) = result.changes
    assert change.kind == "assigned_message_id"
    name = value.split(b":")[0]
    assert dst.read_bytes().split(b"\n")[2] == name + b": " + change.after.encode()


def test_decorated_message_ids_are_normalised(tmp_path):
    content = (
        message(b"From: a@example.org", b"Message-ID:\n <folded@example.org>")
        + message(b"From: a@example.org", b"Message-Id: <c@example.com> (added by postmaster@example.com)")
        + message(b"From: a@example.org", b"Message-ID: bare@example.org")
        + message(b"From: a@example.org", b"Message-ID: <a;b@example.org>")
    )
    report = scan(write(tmp_path, content))
    assert report.counts["decorated_message_id"] == 4
    assert report.counts["unsafe_message_id"] == 1
    expected = ["<folded@example.org>", "<c@example.com>", "<bare@example.org>", "<a%3Bb@example.org>"]
    assert report.message_ids == expected

    dst, result = prepared(tmp_path, content)
    assert [c.kind for c in result.changes] == ["normalised_message_id"] * 4
    assert result.changes[0].before == "Message-ID:\n <folded@example.org>"
    assert result.changes[1].after == "Message-Id: <c@example.com>"
    assert [header_of(m, "Message-ID") for m in python_mbox(dst)] == expected
    assert result.message_ids == expected


def test_duplicates_are_kept_and_reported(tmp_path):
    content = ordinary(1) + ordinary(2) + ordinary(1, b"same id, other body\n") + message(
        b"From: a@example.org", b"Message-ID: < m1@example.org >")
    report = scan(write(tmp_path, content))
    assert report.messages == 4
    assert report.counts["duplicate_message_id"] == 2
    assert report.duplicates == {"<m1@example.org>": [0, 2, 3]}
    dst, result = prepared(tmp_path, content)
    assert len(python_mbox(dst)) == 4
    assert result.duplicates == {"<m1@example.org>": [0, 2, 3]}


def test_multiple_message_id_headers(tmp_path):
    content = message(b"From: a@example.org", b"Message-ID: <one@x>", b"Message-ID: <two@x>")
    report = scan(write(tmp_path, content))
    assert report.counts["multiple_message_id_headers"] == 1
    assert report.message_ids == ["<one@x>"]


def decoded_subject(raw: bytes) -> str:
    return str(email.header.make_header(email.header.decode_header(header_of(raw, "Subject"))))


def test_utf8_header_is_encoded(tmp_path):
    content = message(b"From: a@example.org", b"Message-ID: <u@x>", "Subject: Grüße aus Köln".encode())
    report = scan(write(tmp_path, content))
    assert report.counts["undecodable_header"] == 1
    dst, result = prepared(tmp_path, content)
    (change,) = result.changes
    assert change.kind == "encoded_header" and change.detail == "decoded as utf-8"
    (raw,) = python_mbox(dst)
    assert decoded_subject(raw) == "Grüße aus Köln"
    assert raw.isascii()


def test_latin1_header_uses_the_declared_charset(tmp_path):
    content = message(b"From: a@example.org", b"Message-ID: <l@x>", "Subject: Grüße".encode("latin-1"),
                      b"Content-Type: text/plain; charset=\"ISO-8859-1\"")
    dst, result = prepared(tmp_path, content)
    assert result.changes[0].detail == "decoded as iso-8859-1"
    assert decoded_subject(python_mbox(dst)[0]) == "Grüße"


def test_latin1_header_without_charset_is_left_and_reported(tmp_path):
    content = message(b"From: a@example.org", b"Message-ID: <l@x>", "Subject: Grüße".encode("latin-1"))
    dst, result = prepared(tmp_path, content)
    assert result.changes == []
    (unresolved,) = result.unresolved
    assert unresolved.kind == "undecodable_header" and unresolved.before == "Subject: Gr\\xfc\\xdfe"
    assert dst.read_bytes() == content

    dst, result = prepared(tmp_path, content, fallback_charset="iso-8859-1")
    assert [c.kind for c in result.changes] == ["encoded_header"]
    assert decoded_subject(python_mbox(dst)[0]) == "Grüße"


def test_address_header_encodes_the_display_name_only(tmp_path):
    content = message("From: Jürgen Müller <juergen@example.org>".encode(), b"Message-ID: <a@x>",
                      "Cc: Zoë <zoe@example.org>, bob@example.org".encode())
    dst, result = prepared(tmp_path, content)
    assert [c.kind for c in result.changes] == ["encoded_header", "encoded_header"]
    parsed = email.message_from_bytes(python_mbox(dst)[0], policy=email.policy.default)
    assert parsed["From"].addresses[0].display_name == "Jürgen Müller"
    assert parsed["From"].addresses[0].addr_spec == "juergen@example.org"
    assert [a.addr_spec for a in parsed["Cc"].addresses] == ["zoe@example.org", "bob@example.org"]


def test_non_ascii_sender_address_is_reported(tmp_path):
    content = message("From: jürgen@example.org".encode(), b"Message-ID: <a@x>")
    report = scan(write(tmp_path, content))
    assert report.counts["non_ascii_sender"] == 1
    dst, result = prepared(tmp_path, content)
    assert [c.kind for c in result.unresolved] == ["undecodable_header"]
    assert result.unresolved[0].detail == "RFC 2047 cannot encode this field"


def test_structured_8bit_header_is_left(tmp_path):
    content = message(b"From: a@example.org", b"Message-ID: <a@x>", b"References: <caf\xc3\xa9@x>")
    dst, result = prepared(tmp_path, content)
    assert [c.kind for c in result.unresolved] == ["undecodable_header"]
    assert dst.read_bytes() == content


def test_dates_and_empty_messages(tmp_path):
    content = (
        message(b"From: a@example.org", b"Message-ID: <d1@x>")
        + message(b"From: a@example.org", b"Message-ID: <d2@x>", b"Date: the day after tomorrow")
        + message(b"From: a@example.org", b"Message-ID: <d3@x>", b"Date: Mon, 08 Feb 2016 10:00:00 +0100",
                  body=b"")
    )
    report = scan(write(tmp_path, content))
    assert report.counts["missing_date"] == 1
    assert report.counts["unparseable_date"] == 1
    assert report.counts["empty_message"] == 1
    assert report.messages == 3


def test_crlf_archive(tmp_path):
    content = (ordinary(1, b"line\nFrom here\n") + ordinary(2)).replace(b"\n", b"\r\n")
    content += message(b"From: a@example.org", b"Subject: none").replace(b"\n", b"\r\n")
    report = scan(write(tmp_path, content))
    assert report.messages == 3
    dst, result = prepared(tmp_path, content)
    out = dst.read_bytes()
    assert b">From here\r\n" in out
    assert re.search(rb"Subject: none\r\nMessage-ID: <migrate\.[a-z2-7]+@lists\.example\.org>\r\n\r\n", out)
    assert out.count(b"\n") == out.count(b"\r\n")


KITCHEN_SINK = (
    b"stray text\n\n"
    + ordinary(1, b"a\nFrom here\n\nFrom bob@example.org Tue Feb  9 11:00:00 2016\nstill body\n")
    + message(b"From: a@example.org", b"Subject: no id")
    + message(b"From: a@example.org", b"Message-ID:\n   <folded@x> (comment)", "Subject: Grüße".encode())
    + message(b"From: a@example.org", b"Message-ID: <>", "Subject: Gr\xfc\xdfe".encode("latin-1"))
    + message(b"From: a@example.org", b"Message-ID: <a;b@x>", "From: Zoë <z@example.org>".encode())
    + ordinary(1)
)


def test_prepare_is_idempotent_and_deterministic(tmp_path):
    src = write(tmp_path, KITCHEN_SINK)
    first, second, third = (tmp_path / n for n in ("first.mbox", "second.mbox", "third.mbox"))
    result = prepare(src, first, list_name=LIST)
    assert result.counts["escaped_from_line"] == 2
    assert prepare(src, second, list_name=LIST).to_json() | {"dst": ""} == result.to_json() | {"dst": ""}
    assert first.read_bytes() == second.read_bytes()

    again = prepare(first, third, list_name=LIST)
    assert third.read_bytes() == first.read_bytes()
    assert again.changes == []
    assert again.message_ids == result.message_ids
    assert [c.kind for c in again.unresolved] == [c.kind for c in result.unresolved]

    report = scan(first)
    assert report.counts["unescaped_from_line"] == 0
    assert report.counts["missing_message_id"] == 0
    assert report.counts["decorated_message_id"] == 0
    assert report.message_ids == result.message_ids
    json.dumps(result.to_json())


@pytest.mark.parametrize("block", [1, 7, 64, 333])
def test_block_boundaries_change_nothing(tmp_path, block):
    """The reader works in blocks of whole lines; any block size gives the same results."""
    src = write(tmp_path, KITCHEN_SINK + ordinary(9, b"x" * 1000 + b"\nFrom y\n"))
    expected_report = scan(src).to_json()
    expected = prepare(src, tmp_path / "expected.mbox", list_name=LIST).to_json()
    with mock.patch.object(mbox, "_BLOCK_BYTES", block):
        assert scan(src).to_json() == expected_report
        result = prepare(src, tmp_path / "small-blocks.mbox", list_name=LIST).to_json()
    assert result | {"dst": ""} == expected | {"dst": ""}
    assert (tmp_path / "small-blocks.mbox").read_bytes() == (tmp_path / "expected.mbox").read_bytes()


def test_prepared_ids_are_what_mailbox_readers_see(tmp_path):
    dst, result = prepared(tmp_path, KITCHEN_SINK)
    messages = python_mbox(dst)
    assert len(messages) == result.messages == 6
    for raw, expected in zip(messages, result.message_ids):
        value = header_of(raw, "Message-ID")
        assert value == expected and normalise(value) == value
    assert len({message_hash(m) for m in result.message_ids}) == 5  # one duplicate


def test_prepare_in_place_and_no_temporary_left(tmp_path):
    src = write(tmp_path, KITCHEN_SINK)
    prepare(src, src, list_name=LIST)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["team.mbox"]
    assert scan(src).counts["unescaped_from_line"] == 0


def test_failed_prepare_leaves_destination_alone(tmp_path):
    src = write(tmp_path, message(b"From: a@example.org", b"Subject: no id"))
    dst = write(tmp_path, b"previous copy", name="dst.mbox")
    with pytest.raises(ValueError):
        prepare(src, dst, list_name="not-an-address")
    assert dst.read_bytes() == b"previous copy"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dst.mbox", "team.mbox"]


# --- property: prepare never loses or adds a message --------------------------------------------

text_line = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\n\r:", exclude_categories=["Cs"]),
                    max_size=30).map(lambda s: s.encode() + b"\n")
from_line = st.sampled_from([
    b"From here on\n", b"From bob@example.org Tue Feb  9 11:00:00 2016\n",
    b"From \n", b">From quoted\n", b"From alice@example.org  Mon Feb  8 10:00:00 2016 +0100\n",
])
body_lines = st.lists(st.one_of(text_line, from_line, st.just(b"\n")), max_size=8)
headers = st.lists(st.sampled_from([
    b"Subject: plain", b"Date: Mon, 08 Feb 2016 10:00:00 +0100", b"Message-ID: <fixed@x>",
    b"Message-ID:\n <folded@x>", "Subject: Grüße".encode(), b"X-Note: \xe9t\xe9", b"To: list@example.org",
]), max_size=4)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
          deadline=None)
@given(st.lists(st.tuples(headers, body_lines), min_size=1, max_size=6), st.sampled_from([1, 50, 1 << 22]))
def test_prepare_keeps_every_message_and_body(tmp_path, entries, block):
    bodies = [b"".join(lines) for _, lines in entries]
    content = b"".join(message(b"From: a@example.org", *hdrs, body=body) for (hdrs, _), body in zip(entries, bodies))
    src = write(tmp_path, content)
    dst = tmp_path / "out.mbox"

    with mock.patch.object(mbox, "_BLOCK_BYTES", block):
        assert scan(src).messages == len(entries)
        result = prepare(src, dst, list_name=LIST)
    messages = python_mbox(dst)
    assert result.messages == len(messages) == len(entries)
    for raw, body in zip(messages, bodies):
        escaped = b"".join(b">" + line if line.startswith(b"From ") else line
                           for line in body.splitlines(keepends=True))
        assert body_of(raw) == escaped
    assert prepare(dst, tmp_path / "again.mbox", list_name=LIST).changes == []


# --- against the lab's Mailman 2 archive generator ----------------------------------------------

def test_scan_and_prepare_agree_with_generated_archives(tmp_path):
    from migrate.lab.mailman2_archives import MIN_MESSAGES, generate_archives
    from migrate.lab.mailman2_seed import generate_tree

    generate_tree(tmp_path, members=3)
    facts = generate_archives(tmp_path, messages=MIN_MESSAGES)
    checked = 0
    for name, fact in facts.items():
        if not fact.archived or not fact.mbox_path:
            continue
        report = scan(tmp_path / fact.mbox_path)
        assert report.messages == fact.message_count, name
        assert report.offsets == [m.mbox_offset for m in fact.messages]
        result = prepare(tmp_path / fact.mbox_path, tmp_path / "prepared.mbox", list_name=f"{name}@{fact.host_name}")
        assert len(python_mbox(tmp_path / "prepared.mbox")) == fact.message_count
        for message in fact.messages:
            if message.hyperkitty_id is not None:
                assert result.message_ids[message.mbox_index] == f"<{message.hyperkitty_id}>"
                assert message_hash(result.message_ids[message.mbox_index]) == message.hyperkitty_hash
            else:
                assert message.mbox_index in result.assigned_ids
            if message.hyperkitty_duplicate_of is not None:
                assert message.mbox_index in result.duplicates[result.message_ids[message.mbox_index]]
        checked += 1
    assert checked >= 10


# --- the real importer --------------------------------------------------------------------------

MAILMAN_WEB = LAB_ROOT / "venvs" / "mailman-web" / "bin" / "mailman-web"
REAL_CASES = (
    ordinary(1, b"a\nFrom here\n\nFrom bob@example.org Tue Feb  9 11:00:00 2016\nstill body\n")
    + message(b"From: a@example.org", b"Subject: no id")
    + message(b"From: a@example.org", b"Message-ID:\n   <folded@x> (comment)", "Subject: Grüße".encode())
    + message(b"From: a@example.org", b"Message-ID: <>", "Subject: Gr\xfc\xdfe".encode("latin-1"))
    + message(b"From: a@example.org", b"Message-ID: <a;b@x>", b"Subject: cut by the parser")
    + message("From: Zoë <z@example.org>".encode(), b"Message-ID: <a(b)c@x>", b"Subject: paren")
    + message(b"From: a@example.org", b"Message-ID: <@nolocal.example>", b"Subject: IndexError")
    + ordinary(1, b"same id again\n")
    + message(b"From: a@example.org", b"Message-ID: < >", b"Subject: IndexError too")
    + ordinary(2)
)


def hyperkitty_import(tmp_path: Path, imports: dict[str, Path]) -> dict[str, list[tuple[str, str]]]:
    """Run HyperKitty 1.3.12's own hyperkitty_import on a private SQLite database, one mbox per list
    address, and return what each list stores: (message_id, message_id_hash) in import order."""
    settings = tmp_path / "settings.py"
    settings.write_text(f"""from mailman_web.settings.base import *
from mailman_web.settings.mailman import *
SECRET_KEY = "test only"
ALLOWED_HOSTS = ["localhost"]
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": "{tmp_path}/hyperkitty.db"}}}}
HAYSTACK_CONNECTIONS = {{"default": {{"ENGINE": "haystack.backends.whoosh_backend.WhooshEngine",
                                      "PATH": "{tmp_path}/index"}}}}
MAILMAN_REST_API_URL = "http://127.0.0.1:9/"
MAILMAN_ARCHIVER_KEY = "unused"
COMPRESS_ENABLED = False
Q_CLUSTER = {{"orm": "default", "sync": True}}
LOGGING = {{"version": 1, "disable_existing_loggers": False}}
""")
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH")}
    env["MAILMAN_WEB_CONFIG"] = str(settings)
    commands = [["migrate", "-v0"]] + [["hyperkitty_import", "--no-sync-mailman", "-l", address, str(path)]
                                      for address, path in imports.items()]
    for argv in commands:
        run = subprocess.run([str(MAILMAN_WEB), *argv], env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-3000:]
    with sqlite3.connect(tmp_path / "hyperkitty.db") as db:
        return {address: db.execute(
            "SELECT e.message_id, e.message_id_hash FROM hyperkitty_email e JOIN hyperkitty_mailinglist l "
            "ON e.mailinglist_id = l.id WHERE l.name = ? ORDER BY e.id", (address,)).fetchall()
            for address in imports}


@pytest.mark.slow
@pytest.mark.skipif(not MAILMAN_WEB.exists(), reason="the lab's HyperKitty venv is not installed")
def test_hyperkitty_imports_the_prepared_copy_with_the_predicted_ids(tmp_path):
    """Unprepared, this archive loses messages: the body's From lines split the first message, and
    `<@nolocal.example>` stops the import with an IndexError from the email package.
    """
    dst, result = prepared(tmp_path, REAL_CASES)
    stored = hyperkitty_import(tmp_path, {LIST: dst})[LIST]
    unique = list(dict.fromkeys(result.message_ids))
    assert result.messages == 10 and len(unique) == 9
    assert [row[0] for row in stored] == [msgid[1:-1] for msgid in unique]
    assert [row[1] for row in stored] == [message_hash(msgid) for msgid in unique]


# --- separators that fail the strict From_ rule ---------------------------------------------------

# Pipermail's `.txt` downloads write the sender with " at " for "@"; archives rebuilt from them
# carry such From_ lines, which the strict rule (cleanarch's) does not take for separators.
OBFUSCATED_SEP = b"From b at example.org  Tue Jan  2 00:00:00 2018\n"


def two_messages(second_separator: bytes = OBFUSCATED_SEP) -> bytes:
    return (b"From a@example.org Mon Jan  1 00:00:00 2018\n"
            b"From: a@example.org\nDate: Mon, 01 Jan 2018 00:00:00 +0000\nSubject: one\nMessage-ID: <one@x>\n"
            b"\nfirst\n\n"
            + second_separator +
            b"From: b@example.org\nDate: Tue, 02 Jan 2018 00:00:00 +0000\nSubject: two\nMessage-ID: <two@x>\n"
            b"\nsecond\n\n")


def test_obfuscated_separator_followed_by_a_header_block_starts_a_message(tmp_path):
    content = two_messages()
    src = write(tmp_path, content)
    assert [header_of(m, "Message-ID") for m in python_mbox(src)] == ["<one@x>", "<two@x>"]

    report = scan(src)
    assert report.messages == 2
    assert report.message_ids == ["<one@x>", "<two@x>"]
    assert report.offsets == [0, content.index(OBFUSCATED_SEP)]
    assert report.counts["unescaped_from_line"] == 0
    assert report.counts["loose_separator"] == 1
    (finding,) = [p for p in report.examples if p.kind == "loose_separator"]
    assert (finding.message_index, finding.line) == (1, 9)
    assert finding.detail == OBFUSCATED_SEP.decode().rstrip("\n")

    dst, result = prepared(tmp_path, content)
    assert result.messages == 2 and result.changes == []
    assert result.message_ids == ["<one@x>", "<two@x>"]
    assert dst.read_bytes() == content
    messages = python_mbox(dst)
    assert [header_of(m, "Message-ID") for m in messages] == ["<one@x>", "<two@x>"]
    assert [body_of(m) for m in messages] == [b"first\n", b"second\n"]


@pytest.mark.parametrize("after_from_line, separates", [
    # Fields a message carries, ended by a blank line: a message, whatever the From line says.
    (b"From: b@example.org\nSubject: two\n\nsecond\n", True),
    (b"Received: from x by y;\n Tue, 2 Jan 2018 00:00:00 +0000\nSubject: two\n\nsecond\n", True),
    (b"From: b@example.org\r\nSubject: two\r\n\r\nsecond\r\n", True),
    # A Message-ID makes it a message even when its body follows without a blank line: mailbox.mbox
    # splits there, and HyperKitty would store it under that id.
    (b"From: b@example.org\nMessage-ID: <two@x>\nsecond, right after the headers\n", True),
    # Body text: no field a message carries, or not ended by a blank line, or nothing header-like.
    (b"Note: the hall is booked\n\nmore text\n", False),
    (b"Date: Monday\nwe decided to meet again\n\n", False),
    (b"> From: bob@example.org\n> Subject: quoted\n\n", False),
    (b"\nFrom: b@example.org\nSubject: two\n\n", False),
    # At the end of the data nothing says the block is over: more header lines may still come.
    (b"From: b@example.org\nSubject: two\n", False),
])
def test_which_from_lines_followed_by_header_lines_separate(tmp_path, after_from_line, separates):
    first = ordinary(1)
    for from_line in (b"From b at example.org  Tue Jan  2 00:00:00 2018\n", b"From here on it is broken.\n"):
        content = first + from_line + after_from_line
        report = scan(write(tmp_path, content))
        assert report.messages == (2 if separates else 1), (from_line, after_from_line)
        assert report.counts["unescaped_from_line"] == (0 if separates else 1)
        dst, result = prepared(tmp_path, content)
        assert len(python_mbox(dst)) == result.messages == report.messages


@pytest.mark.parametrize("block", [1, 7, 64, 333])
def test_block_boundaries_change_nothing_for_loose_separators(tmp_path, block):
    content = (two_messages() + two_messages(b"From c at example.org Wed Jan  3 00:00:00 2018\n")
               + ordinary(3, b"From here\nNote: x\n\nFrom there\nDate: Monday\ntext\n") + two_messages())
    src = write(tmp_path, content)
    expected_report = scan(src).to_json()
    expected = prepare(src, tmp_path / "expected.mbox", list_name=LIST).to_json()
    assert expected_report["messages"] == 7
    with mock.patch.object(mbox, "_BLOCK_BYTES", block):
        assert scan(src).to_json() == expected_report
        result = prepare(src, tmp_path / "small-blocks.mbox", list_name=LIST).to_json()
    assert result | {"dst": ""} == expected | {"dst": ""}
    assert (tmp_path / "small-blocks.mbox").read_bytes() == (tmp_path / "expected.mbox").read_bytes()


def test_count_messages_is_the_scan_count(tmp_path):
    content = KITCHEN_SINK + two_messages() + ordinary(5, b"From here on\nNote: x\n\n")
    assert mbox.count_messages(content) == scan(write(tmp_path, content)).messages == 9
    assert mbox.count_messages(b"") == 0
    assert mbox.count_messages(b"no separator at all\nFrom here\n") == 0


def test_starts_with_message(tmp_path):
    assert not mbox.starts_with_message(two_messages()[5:])
    tail = two_messages()[two_messages().index(OBFUSCATED_SEP):]
    assert mbox.starts_with_message(tail) and mbox.starts_with_message(b"\n" + tail)
    assert not mbox.starts_with_message(b"From here on\nNote: x\n\n")
    assert not mbox.starts_with_message(b"")


# --- reading stays linear in the size of the file -------------------------------------------------

def test_long_runs_of_from_lines_are_read_in_linear_time(tmp_path):
    """300,000 body `From ` lines in a row took 36 s to lint: the reader extended its block one line
    at a time, copying the block each time. Now they take about as long as the same lines spread
    out with a blank line after each, which no block end ever waits for (measured in the same test,
    so the bound holds on a slow machine too)."""
    head = SEP + b"From: a@example.org\nMessage-ID: <run@x>\n\n"
    line = b"From here on, the log says the job failed again\n"
    runs = write(tmp_path, head + line * 300_000, "runs.mbox")
    spread = write(tmp_path, head + (line + b"\n") * 300_000, "spread.mbox")
    assert runs.stat().st_size > 3 * mbox._BLOCK_BYTES

    def timed(path):
        started = time.perf_counter()
        report = scan(path)
        return time.perf_counter() - started, report

    baseline, spread_report = timed(spread)
    elapsed, report = timed(runs)
    assert report.messages == spread_report.messages == 1
    assert report.counts["unescaped_from_line"] == spread_report.counts["unescaped_from_line"] == 300_000
    assert elapsed < 10 * baseline, f"{elapsed:.2f} s against {baseline:.2f} s for the spread-out lines"


# An archive rebuilt from pipermail's `.txt` downloads: obfuscated From_ lines in several spellings,
# a message whose body starts right after its headers, one without a Message-ID, and body text
# that only looks like the start of a message.
REAL_OBFUSCATED = (
    ordinary(1, b"See below.\nFrom here on it is broken.\nNote: nothing to do with mail\n")
    + message(b"From: b@example.org", b"Date: Tue, 02 Jan 2018 00:00:00 +0000", b"Subject: two",
              b"Message-ID: <two@x>", separator=b"From b at example.org  Tue Jan  2 00:00:00 2018\n")
    + message(b"From: c@example.org", b"Date: Wed, 03 Jan 2018 00:00:00 +0000", b"Subject: three",
              b"Message-ID: <three@x>", separator=b"From c at example.org Wed Jan  3 00:00:00 CET 2018\n")
    + b"From d at example.org  Thu Jan  4 00:00:00 2018\nFrom: d@example.org\nSubject: four\n"
      b"Message-ID: <four@x>\nthe body starts right after the headers\n\n"
    + message(b"From: e@example.org", b"Date: Fri, 05 Jan 2018 00:00:00 +0000", b"Subject: no id",
              separator=b"From e at example.org  Fri Jan  5 00:00:00 2018\n")
    + ordinary(6, b"quoting:\n> From: someone@example.org\n> Subject: old\n\nFrom the minutes:\nDate: Monday\nok\n")
)


@pytest.mark.slow
@pytest.mark.skipif(not MAILMAN_WEB.exists(), reason="the lab's HyperKitty venv is not installed")
def test_the_prepared_copy_keeps_every_message_hyperkittys_importer_keeps(tmp_path):
    """The same archive imported as it is and as prepared, into two lists of one database: every
    message HyperKitty's own importer stores from the original (by Message-ID; the pieces it cuts
    off at body `From ` lines get random generated ids) is stored from the prepared copy too, under
    the ids prepare predicts."""
    original = write(tmp_path, REAL_OBFUSCATED, "original.mbox")
    dst, result = prepared(tmp_path, REAL_OBFUSCATED)
    as_is, ours = "as-is@lists.example.org", LIST
    stored = hyperkitty_import(tmp_path, {as_is: original, ours: dst})

    generated = [i for i, _ in stored[as_is] if ".generated@" in i]
    kept_by_importer = {i for i, _ in stored[as_is]} - set(generated)
    assert kept_by_importer == {"m1@example.org", "two@x", "three@x", "four@x", "m6@example.org"}
    # The message without an id, and the two pieces cut off at body From lines.
    assert len(generated) == 3
    assert result.messages == 6 == scan(original).messages
    assert [row[0] for row in stored[ours]] == [msgid[1:-1] for msgid in result.message_ids]
    assert kept_by_importer <= {row[0] for row in stored[ours]}
    assert list(result.assigned_ids) == [4]
