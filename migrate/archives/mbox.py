"""Mailman 2 mbox archives: lint them (`scan`) and write the cleaned copy HyperKitty imports (`prepare`).

Both read the mbox in blocks and hold one message at a time, so archives of hundreds of MB are
fine; the work grows with the size of the file, whatever its lines are.

Where messages start. `hyperkitty_import` reads the mbox with Python's `mailbox.mbox`, which starts
a new message at every line beginning with `From ` (`_mboxMMDF._generate_toc`). An unescaped
`From ` line in a body therefore cuts a message in two. Here a line beginning with `From ` is a
message separator only if the next line is a header field (`Name: ...`) and
- it passes the strict test of Mailman 2.1's `bin/cleanarch`: it looks like
  `From <sender> <asctime date>` (the pattern of Python 2's `mailbox.UnixMailbox._fromlinepattern`,
  which cleanarch uses: weekday, month, day, time, an optional zone, the year and an optional zone
  after it); or
- the header block it starts (consecutive fields and continuation lines) carries a Message-ID; or
- that header block ends with a blank line and holds a field that messages carry (From:, Date:,
  Subject:, Received:, ... `MESSAGE_FIELDS`).
The last two are `loose_separator`s: From_ lines the strict pattern refuses, such as
`From b at example.org  Tue Jan  2 00:00:00 2018` in archives rebuilt from pipermail's `.txt`
downloads (which write " at " for "@"), followed by a real message. cleanarch's rule alone would
escape them and merge each such message into the one before it, silently.

The trade-off. Body text can look like the start of a message: "From here on...\nNote: x\n\n"
(no field a message carries), "From the minutes:\nDate: Monday\nwe agreed" (no blank line after),
a reply quoting "> From: ..." (not a header field) stay body text. Text that does pass, a pasted
raw message with its From_ line and headers, becomes a message of its own, as `mailbox.mbox` and
therefore HyperKitty's own importer would make it; nothing is lost that way, while the opposite
error loses a message. The decision only looks forward, up to the end of the header block, so a
message counted in a prefix of a growing mbox is still counted once more is appended (a header
block that reaches the end of the data without a blank line is not taken as ended).

Separators are normally preceded by a blank line, but Mailman 2.1's `Mailbox.AppendMessage` wrote
none after a message whose body did not end with a newline, so a missing blank line is reported
(`separator_without_blank_line`) and the separator still counts, as cleanarch counts it. The number
of separators is the true number of messages; `prepare` escapes every other `From ` line so that
`mailbox.mbox` finds the same messages. `count_messages` and `starts_with_message` give the same
answers to callers that only need those (the survey, the delta import).

Text before the first separator is not a message: `mailbox.mbox` skips it once its `From ` lines
are escaped (`leading_text`).

A message of its own can still sit inside another's body behind an escaped `>From ` line (Mailman
2.1's cleanarch escapes loose separators). `embedded_messages` finds such lines followed by a
header block with a Message-ID, for verification to report the ids HyperKitty lacks.
"""

from __future__ import annotations

import codecs
import contextlib
import dataclasses
import email.message
import email.utils
import io
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from email.header import Header, decode_header, make_header
from pathlib import Path

from .msgid import deterministic_id, hyperkitty_cleaned, normalise

_SEPARATOR = re.compile(
    rb"From \s*\S+\s+[A-Za-z]{3}\s+[A-Za-z]{3}\s+\d?\d\s+\d?\d:\d\d(?::\d\d)?(?:\s+\S+)?\s+\d{4}\s*\S*\s*"
)
# RFC 5322 field name (printable ASCII but the colon), then the colon; cleanarch's `fre` test.
_HEADER_FIELD = re.compile(rb"([\x21-\x39\x3b-\x7e]+)[ \t]*:")
_FOLD = re.compile(rb"\r?\n(?=[ \t])")
_EIGHT_BIT = re.compile(rb"[\x80-\xff]")

# The problems `scan` counts, in the order reports list them.
PROBLEM_KINDS = (
    "unescaped_from_line",          # `From ` line in a message (or before the first): mailbox.mbox splits there
    "missing_message_id",           # none, or nothing usable in it: HyperKitty would invent a random one
    "duplicate_message_id",         # same id (normalised) as an earlier message: HyperKitty skips it
    "decorated_message_id",         # folded, commented, bracketless, non-ASCII or too long: HyperKitty cleans it
    "unsafe_message_id",            # HyperKitty's parser would cut the id or stop the import: percent-encoded
    "multiple_message_id_headers",  # HyperKitty uses the first
    "undecodable_header",           # raw 8-bit bytes in a header, no RFC 2047 charset
    "non_ascii_sender",             # HyperKitty rejects the message ("Non-ascii sender address")
    "missing_date",
    "unparseable_date",             # HyperKitty then uses Resent-Date or the From_ line's date
    "empty_message",                # nothing after the headers
    "separator_without_blank_line",
    "loose_separator",              # a From_ line the strict pattern refuses, starting a message's headers
    "leading_text",                 # bytes before the first separator; no reader keeps them
)

# Changes `prepare` makes, and the problems it leaves as they are.
CHANGE_KINDS = ("escaped_from_line", "normalised_message_id", "assigned_message_id", "encoded_header")
UNRESOLVED_KINDS = ("undecodable_header",)

_EXAMPLES_PER_KIND = 20

ADDRESS_FIELDS = frozenset({
    b"from", b"to", b"cc", b"bcc", b"reply-to", b"sender", b"resent-from", b"resent-to", b"resent-cc",
    b"resent-bcc", b"resent-sender", b"mail-followup-to", b"mail-reply-to", b"errors-to",
    b"disposition-notification-to",
})
# Fields messages carry: a header block holding one (and ended by a blank line) is a message's.
MESSAGE_FIELDS = frozenset({
    b"from", b"sender", b"reply-to", b"to", b"cc", b"date", b"message-id", b"subject", b"in-reply-to",
    b"references", b"received", b"return-path", b"delivered-to", b"mime-version",
})
# Free-text fields where RFC 2047 encoded words may stand anywhere; any X- field is treated alike.
UNSTRUCTURED_FIELDS = frozenset({
    b"subject", b"comments", b"keywords", b"content-description", b"organization", b"thread-topic",
    b"summary",
})


@dataclass(frozen=True)
class Problem:
    """One finding: its kind, the message (None before the first one), the line in the file."""

    kind: str
    message_index: int | None
    line: int
    detail: str = ""


@dataclass
class MboxReport:
    """What `scan` found. `message_ids[i]` and `offsets[i]` belong to message i (0-based)."""

    path: str
    size: int
    messages: int = 0
    message_ids: list[str | None] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PROBLEM_KINDS, 0))
    duplicates: dict[str, list[int]] = field(default_factory=dict)
    examples: list[Problem] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not any(self.counts.values())

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Change:
    """One line-level edit of `prepare` (or a problem it left), located in the source mbox."""

    kind: str
    message_index: int | None
    line: int
    offset: int
    before: str | None
    after: str | None
    detail: str = ""


@dataclass
class PrepareResult:
    """Every change `prepare` made, JSON-able; `message_ids` are the ids HyperKitty will store."""

    src: str
    dst: str
    list_name: str
    messages: int = 0
    message_ids: list[str] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    unresolved: list[Change] = field(default_factory=list)
    duplicates: dict[str, list[int]] = field(default_factory=dict)

    @property
    def assigned_ids(self) -> dict[int, str]:
        """Message index → the Message-ID `prepare` gave it (it had none, or none usable)."""
        return {c.message_index: c.after for c in self.changes
                if c.kind == "assigned_message_id" and c.message_index is not None and c.after}

    @property
    def counts(self) -> dict[str, int]:
        totals = dict.fromkeys(CHANGE_KINDS + UNRESOLVED_KINDS, 0)
        for change in self.changes + self.unresolved:
            totals[change.kind] += 1
        return totals

    def to_json(self) -> dict:
        data = asdict(self)
        data["assigned_ids"] = {str(index): msgid for index, msgid in self.assigned_ids.items()}
        data["counts"] = self.counts
        return data


# --- splitting ----------------------------------------------------------------------------------

# Blocks are searched for `From ` lines with bytes.find, which keeps the per-line work in C; only
# `From ` lines and header blocks are looked at in Python.
_BLOCK_BYTES = 1 << 22
_BLANK_LINES = (b"\n", b"\r\n")


@dataclass
class _Chunk:
    """The bytes of one message (From_ line first), or of the text before the first message."""

    index: int | None
    offset: int
    line: int
    data: bytes
    blank_before: bool = True
    loose: bool = False  # its separator is a loose one (see the module docstring)


def _line_after(data: bytes, start: int) -> int:
    """Index just past the line that starts at `start` (its newline included)."""
    end = data.find(b"\n", start)
    return len(data) if end == -1 else end + 1


def _line_before(data: bytes, position: int) -> bytes:
    """The line that ends just before `position` (a line start)."""
    return data[data.rfind(b"\n", 0, position - 1) + 1:position]


def _plain_line(data: bytes, start: int) -> bool:
    """Whether the line at `start` can end a header block but cannot start one: neither a `From `
    line, nor a header field, nor a continuation line."""
    return (data[start:start + 1] not in (b" ", b"\t") and not data.startswith(b"From ", start)
            and not _HEADER_FIELD.match(data, start))


def _cut(block: bytes) -> int:
    """Where a block may end: just past its last plain line (0: it has none)."""
    end = len(block)
    while end:
        start = block.rfind(b"\n", 0, end - 1) + 1
        if _plain_line(block, start):
            return end
        end = start
    return 0


def _blocks(fileobj) -> Iterator[bytes]:
    """The file in blocks of whole lines, each ending with a plain line (see `_plain_line`) unless
    it is the last: whatever follows a `From ` line up to the end of its header block, and the
    line after, is in the same block as that `From ` line. The bytes after the cut wait for the
    next block; a block without a plain line waits whole, so every byte is copied a bounded number
    of times, however long a run of `From ` or header lines is."""
    waiting: list[bytes] = []
    while block := fileobj.read(_BLOCK_BYTES):
        if not block.endswith(b"\n"):
            block += fileobj.readline()
        cut = _cut(block)
        if not cut:
            waiting.append(block)
            continue
        waiting.append(block[:cut])
        yield b"".join(waiting)
        waiting = [block[cut:]] if cut < len(block) else []
    if waiting:
        yield b"".join(waiting)


def _separator(data: bytes, start: int) -> str | None:
    """Whether the `From ` line at `start` starts a message: "strict", "loose" or None (the rule
    of the module docstring). Looks no further than the end of the header block after it."""
    following = _line_after(data, start)
    if following == len(data) or not _HEADER_FIELD.match(data, following):
        return None
    if _SEPARATOR.fullmatch(data, start, following):
        return "strict"
    fields, end = _header_fields(data, following)
    keys = {fld.key for fld in fields}
    if b"message-id" in keys:
        return "loose"
    if keys & MESSAGE_FIELDS and data.startswith(_BLANK_LINES, end):
        return "loose"
    return None


def _chunks(fileobj) -> Iterator[_Chunk]:
    """Split an mbox into messages by the separator rule."""
    pieces: list[bytes] = []
    current = _Chunk(index=None, offset=0, line=1, data=b"")
    index = 0
    block_offset = 0
    previous_blank = True
    for block in _blocks(fileobj):
        consumed = 0
        for start in _from_lines(block, 0):
            kind = _separator(block, start)
            if kind is None:
                continue
            pieces.append(block[consumed:start])
            current.data = b"".join(pieces)
            if current.index is not None or current.data:
                yield current
            blank = previous_blank if start == 0 else _line_before(block, start) in _BLANK_LINES
            current = _Chunk(index, block_offset + start, current.line + current.data.count(b"\n"), b"", blank,
                             kind == "loose")
            index += 1
            pieces, consumed = [], start
        pieces.append(block[consumed:])
        previous_blank = _line_before(block, len(block)) in _BLANK_LINES
        block_offset += len(block)
    current.data = b"".join(pieces)
    if current.index is not None or current.data:
        yield current


def count_messages(data: bytes) -> int:
    """How many messages an mbox holds, by the separator rule (what `scan` counts)."""
    return sum(chunk.index is not None for chunk in _chunks(io.BytesIO(data)))


def starts_with_message(data: bytes) -> bool:
    """Whether `data`, after any blank lines, begins with a separator by the rule."""
    start = 0
    while data.startswith(_BLANK_LINES, start):
        start = _line_after(data, start)
    return data.startswith(b"From ", start) and _separator(data, start) is not None


@dataclass
class _Field:
    name: bytes          # as written
    key: bytes           # lowercased
    start: int           # byte offset of its first line in the chunk
    end: int             # byte offset just past its last line


def _header_fields(data: bytes, start: int, limit: int | None = None) -> tuple[list[_Field], int]:
    """Header fields from byte `start` on, and the offset where the body starts.

    The header block ends at the first blank line, or at the first line that is neither a field
    nor a continuation (where the email package starts the body too), or at a `From ` line (where
    `mailbox.mbox` starts a message, whatever follows the word), or at `limit`.
    """
    fields: list[_Field] = []
    position = start
    limit = len(data) if limit is None else limit
    while position < limit:
        end = _line_after(data, position)
        match = None if data.startswith(b"From ", position) else _HEADER_FIELD.match(data, position, end)
        if match:
            fields.append(_Field(match[1], match[1].lower(), position, end))
        elif data[position:position + 1] in (b" ", b"\t") and fields:
            fields[-1].end = end
        else:
            break
        position = end
    return fields, position


def _field_value(data: bytes, fld: _Field) -> bytes:
    """The field's value, unfolded, without the name, the colon and surrounding whitespace."""
    return _FOLD.sub(b"", data[fld.start:fld.end].split(b":", 1)[1]).strip()


def _text(value: bytes) -> str:
    # Non-ASCII bytes become lone surrogates, which Message-ID normalisation removes like
    # HyperKitty removes the characters they stood for.
    return value.decode("ascii", "surrogateescape")


def _printable(value: bytes) -> str:
    return value.decode("ascii", "backslashreplace")


def _eol(data: bytes, end: int) -> bytes:
    """The line ending of the line that ends at `end` (LF when it has none)."""
    return b"\r\n" if data.endswith(b"\r\n", 0, end) else b"\n"


def _line_text(data: bytes, start: int) -> str:
    """The line starting at `start`, without its line ending, printable."""
    return _printable(data[start:_line_after(data, start)].rstrip(b"\r\n"))


def _from_lines(data: bytes, start: int) -> list[int]:
    """Offsets of the lines beginning with `From ` at or after `start` (a line start)."""
    positions = [start] if data.startswith(b"From ", start) else []
    position = data.find(b"\nFrom ", start)
    while position != -1:
        positions.append(position + 1)
        position = data.find(b"\nFrom ", position + 1)
    return positions


def _line_numbers(chunk: _Chunk, positions: list[int]) -> list[int]:
    """Line numbers in the file of the (ascending) byte offsets `positions` of a chunk."""
    numbers, line, last = [], chunk.line, 0
    for position in positions:
        line += chunk.data.count(b"\n", last, position)
        numbers.append(line)
        last = position
    return numbers


# --- analysis shared by scan and prepare --------------------------------------------------------

@dataclass
class _Analysis:
    fields: list[_Field]
    body_start: int
    from_lines: list[int]
    message_id_field: _Field | None
    raw_message_id: str | None
    message_id: str | None
    problems: list[Problem]


def _analyse(chunk: _Chunk) -> _Analysis:
    data = chunk.data
    first_line_end = _line_after(data, 0)
    fields, body_start = _header_fields(data, first_line_end)
    from_lines = _from_lines(data, first_line_end)
    findings: list[tuple[str, int, str]] = []

    if not chunk.blank_before and chunk.index:
        findings.append(("separator_without_blank_line", 0, ""))
    if chunk.loose:
        findings.append(("loose_separator", 0, _line_text(data, 0)))
    for position in from_lines:
        findings.append(("unescaped_from_line", position, _line_text(data, position)))

    id_fields = [f for f in fields if f.key == b"message-id"]
    raw_id = _text(_field_value(data, id_fields[0])) if id_fields else None
    msgid = normalise(raw_id)
    if len(id_fields) > 1:
        findings.append(("multiple_message_id_headers", id_fields[1].start, ""))
    if msgid is None:
        findings.append(("missing_message_id", id_fields[0].start if id_fields else 0, raw_id or ""))
    elif raw_id != msgid or b"\n" in data[id_fields[0].start:id_fields[0].end - 1]:
        findings.append(("decorated_message_id", id_fields[0].start, f"{raw_id!r} -> {msgid}"))
        if msgid != hyperkitty_cleaned(raw_id):
            findings.append(("unsafe_message_id", id_fields[0].start, f"{raw_id!r} -> {msgid}"))

    for fld in fields:
        if _EIGHT_BIT.search(data, fld.start, fld.end):
            findings.append(("undecodable_header", fld.start, _printable(fld.name)))

    date_fields = [f for f in fields if f.key == b"date"]
    if not date_fields:
        findings.append(("missing_date", 0, ""))
    else:
        date_text = _field_value(data, date_fields[0]).decode("ascii", "replace")
        if email.utils.parsedate_tz(date_text) is None:
            findings.append(("unparseable_date", date_fields[0].start, date_text))

    sender = [f for f in fields if f.key == b"from"]
    sender_value = _field_value(data, sender[0]) if sender else b""
    # Only raw 8-bit bytes or encoded words can make the address non-ASCII.
    if _EIGHT_BIT.search(sender_value) or b"=?" in sender_value:
        _, address = email.utils.parseaddr(_decoded_header(sender_value))
        if not address.isascii():
            findings.append(("non_ascii_sender", sender[0].start, address))

    if not data[body_start:].strip():
        findings.append(("empty_message", 0, ""))

    findings.sort(key=lambda finding: finding[1])
    lines = _line_numbers(chunk, [position for _, position, _ in findings])
    problems = [Problem(kind, chunk.index, line, detail) for (kind, _, detail), line in zip(findings, lines)]
    return _Analysis(fields, body_start, from_lines, id_fields[0] if id_fields else None, raw_id, msgid, problems)


def _decoded_header(value: bytes) -> str:
    """A header value as readers show it: RFC 2047 decoded, raw 8-bit bytes taken as UTF-8."""
    text = value.decode("utf-8", "replace")
    try:
        return str(make_header(decode_header(text)))
    except (LookupError, UnicodeError, ValueError):
        return text


# --- scan ---------------------------------------------------------------------------------------

def scan(path: str | os.PathLike[str]) -> MboxReport:
    """Lint an mbox without changing it: the true message count, ids, offsets, problem counts."""
    path = Path(path)
    with path.open("rb") as fileobj:
        return _scan(fileobj, MboxReport(path=str(path), size=path.stat().st_size))


def scan_data(data: bytes, name: str = "") -> MboxReport:
    """`scan` of an mbox already in memory (`name` goes into the report's path)."""
    return _scan(io.BytesIO(data), MboxReport(path=name, size=len(data)))


def _scan(fileobj, report: MboxReport) -> MboxReport:
    first_index: dict[str, int] = {}
    shown: dict[str, int] = dict.fromkeys(PROBLEM_KINDS, 0)

    def record(problem: Problem) -> None:
        report.counts[problem.kind] += 1
        if shown[problem.kind] < _EXAMPLES_PER_KIND:
            shown[problem.kind] += 1
            report.examples.append(problem)

    for chunk in _chunks(fileobj):
        if chunk.index is None:
            record(Problem("leading_text", None, 1, f"{len(chunk.data)} bytes"))
            positions = _from_lines(chunk.data, 0)
            for position, line in zip(positions, _line_numbers(chunk, positions)):
                record(Problem("unescaped_from_line", None, line, _line_text(chunk.data, position)))
            continue
        analysis = _analyse(chunk)
        report.messages += 1
        report.message_ids.append(analysis.message_id)
        report.offsets.append(chunk.offset)
        for problem in analysis.problems:
            record(problem)
        if analysis.message_id is not None:
            first = first_index.setdefault(analysis.message_id, chunk.index)
            if first != chunk.index:
                record(Problem("duplicate_message_id", chunk.index, chunk.line, analysis.message_id))
                report.duplicates.setdefault(analysis.message_id, [first]).append(chunk.index)
    return report


_EMBEDDED_FROM = re.compile(rb"^>*From ", re.M)


def embedded_messages(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[int, str, bool]]:
    """Plausible messages inside the message `data[start:end]` (its From_ line first): the offset,
    the normalised Message-ID and whether it is escaped, of each later line that starts with
    `From ` or `>From ` (any number of `>`) and heads a header block with a usable Message-ID."""
    end = len(data) if end is None else end
    for match in _EMBEDDED_FROM.finditer(data, _line_after(data, start), end):
        fields, _ = _header_fields(data, _line_after(data, match.start()), end)
        id_fields = [fld for fld in fields if fld.key == b"message-id"]
        msgid = normalise(_text(_field_value(data, id_fields[0]))) if id_fields else None
        if msgid is not None:
            yield match.start(), msgid, data.startswith(b">", match.start())


# --- prepare ------------------------------------------------------------------------------------

def _identity_bytes(escaped: bytes) -> bytes:
    """What a generated Message-ID is derived from: the escaped message with LF line ends and no
    trailing white space, so that CRLF copies and copies already cleaned by cleanarch agree."""
    return escaped.replace(b"\r\n", b"\n").rstrip() + b"\n"


def _declared_charset(data: bytes, fields: list[_Field]) -> str | None:
    for fld in fields:
        if fld.key == b"content-type":
            holder = email.message.Message()
            holder["Content-Type"] = _field_value(data, fld).decode("ascii", "replace")
            return holder.get_content_charset()
    return None


def _charset_for(value: bytes, candidates: list[str]) -> tuple[str, str] | None:
    """The first charset among `candidates` that decodes `value`, with the decoded text."""
    for charset in candidates:
        try:
            codecs.lookup(charset)
            return charset, value.decode(charset)
        except (LookupError, UnicodeDecodeError):
            continue
    return None


def _encode_field(name: bytes, text: str, eol: bytes) -> bytes | None:
    """The field rewritten with RFC 2047 encoded words (UTF-8), or None where that is not allowed."""
    key = name.lower()
    if key in ADDRESS_FIELDS:
        pairs = email.utils.getaddresses([text])
        if not pairs or any(not address or not address.isascii() for _, address in pairs):
            return None
        value = ", ".join(email.utils.formataddr((display, address), charset="utf-8")
                          for display, address in pairs)
        if not value.isascii():
            return None
        return name + b": " + value.encode("ascii") + eol
    if key in UNSTRUCTURED_FIELDS or key.startswith(b"x-"):
        encoded = Header(text, "utf-8", header_name=name.decode("ascii"), continuation_ws=" ").encode(
            linesep=eol.decode("ascii"))
        return name + b": " + encoded.encode("ascii") + eol
    return None


def _escape_from_lines(data: bytes, positions: list[int]) -> bytes:
    if not positions:
        return data
    parts, last = [], 0
    for position in positions:
        parts += [data[last:position], b">"]
        last = position
    parts.append(data[last:])
    return b"".join(parts)


def _prepare_message(chunk: _Chunk, list_name: str, fallback_charset: str | None,
                     result: PrepareResult) -> bytes:
    analysis = _analyse(chunk)
    data = chunk.data
    # Edits as (start, end, rank, replacement) on the original bytes, applied in one pass at the
    # end; at one offset a header inserted after the last field (rank 0) goes before the `>` of a
    # body line starting there (rank 1). Records wait as (byte offset, record, resolved) until
    # their line numbers are known.
    edits: list[tuple[int, int, int, bytes]] = []
    records: list[tuple[int, Change, bool]] = []

    def change(kind: str, position: int, before: bytes | None, after: bytes | str | None,
               detail: str = "", *, resolved: bool = True) -> None:
        if isinstance(after, bytes):
            after = _printable(after.rstrip(b"\r\n"))
        record = Change(kind, chunk.index, 0, chunk.offset,
                        None if before is None else _printable(before.rstrip(b"\r\n")), after, detail)
        records.append((position, record, resolved))

    for position in analysis.from_lines:
        line = data[position:_line_after(data, position)]
        edits.append((position, position, 1, b">"))
        change("escaped_from_line", position, line, b">" + line)

    id_field = analysis.message_id_field
    msgid = analysis.message_id
    if msgid is None:
        msgid = deterministic_id(_identity_bytes(_escape_from_lines(data, analysis.from_lines)), list_name)
        if id_field is not None:
            new_line = id_field.name + b": " + msgid.encode("ascii") + _eol(data, id_field.end)
            edits.append((id_field.start, id_field.end, 0, new_line))
            change("assigned_message_id", id_field.start, data[id_field.start:id_field.end], msgid,
                   "the Message-ID had nothing usable")
        else:
            new_line = b"Message-ID: " + msgid.encode("ascii") + _eol(data, _line_after(data, 0))
            edits.append((analysis.body_start, analysis.body_start, 0, new_line))
            change("assigned_message_id", analysis.body_start, None, msgid, "the message had no Message-ID")
    elif id_field is not None and (analysis.raw_message_id != msgid
                                   or b"\n" in data[id_field.start:id_field.end - 1]):
        new_line = id_field.name + b": " + msgid.encode("ascii") + _eol(data, id_field.end)
        edits.append((id_field.start, id_field.end, 0, new_line))
        change("normalised_message_id", id_field.start, data[id_field.start:id_field.end], new_line)

    candidates = ["utf-8"]
    for charset in (_declared_charset(data, analysis.fields), fallback_charset):
        if charset and charset not in candidates:
            candidates.append(charset)
    for fld in analysis.fields:
        if fld is id_field or not _EIGHT_BIT.search(data, fld.start, fld.end):
            continue
        original = data[fld.start:fld.end]
        decoded = _charset_for(_field_value(data, fld), candidates)
        encoded = _encode_field(fld.name, decoded[1], _eol(data, fld.end)) if decoded else None
        if encoded is None:
            reason = ("no charset decodes it (tried " + ", ".join(candidates) + ")" if decoded is None
                      else "RFC 2047 cannot encode this field")
            change("undecodable_header", fld.start, original, None, reason, resolved=False)
            continue
        edits.append((fld.start, fld.end, 0, encoded))
        change("encoded_header", fld.start, original, encoded, f"decoded as {decoded[0]}")

    records.sort(key=lambda item: item[0])
    for (_, record, resolved), line in zip(records, _line_numbers(chunk, [item[0] for item in records])):
        (result.changes if resolved else result.unresolved).append(dataclasses.replace(record, line=line))
    result.message_ids.append(msgid)

    parts, last = [], 0
    for start, end, _, replacement in sorted(edits, key=lambda edit: edit[:3]):
        parts += [data[last:start], replacement]
        last = end
    parts.append(data[last:])
    return b"".join(parts)


def prepare(src: str | os.PathLike[str], dst: str | os.PathLike[str], *, list_name: str,
            fallback_charset: str | None = None) -> PrepareResult:
    """Write the cleaned copy of mbox `src` to `dst` (atomically) and return every change made.

    - `From ` lines that are not separators get a `>` in front (the mboxrd escape; lines already
      starting with `>From ` are left alone, since no reader down the line unescapes them);
    - the first Message-ID header is rewritten to its `msgid.normalise` form when that differs;
    - messages with no usable Message-ID get `msgid.deterministic_id`, recorded by position;
    - header fields with raw 8-bit bytes are re-encoded as RFC 2047 (UTF-8) when a charset decodes
      them: UTF-8, the message's declared charset, then `fallback_charset` (the list's Mailman 2
      charset); otherwise they are left as they are and listed in `unresolved`.
    Nothing else changes. Messages with the same Message-ID are all kept (HyperKitty keeps the
    first) and listed in `duplicates`. The output is deterministic and `prepare` on it changes
    nothing. `list_name` is the list's posting address; its domain ends generated ids.
    """
    src, dst = Path(src), Path(dst)
    result = PrepareResult(src=str(src), dst=str(dst), list_name=list_name)
    first_index: dict[str, int] = {}
    handle, temporary = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    try:
        with os.fdopen(handle, "wb", buffering=1 << 20) as out, src.open("rb") as fileobj:
            for chunk in _chunks(fileobj):
                if chunk.index is None:
                    positions = _from_lines(chunk.data, 0)
                    for position, line in zip(positions, _line_numbers(chunk, positions)):
                        text = _line_text(chunk.data, position)
                        result.changes.append(Change("escaped_from_line", None, line, 0, text, ">" + text,
                                                     "before the first message"))
                    out.write(_escape_from_lines(chunk.data, positions))
                    continue
                out.write(_prepare_message(chunk, list_name, fallback_charset, result))
                result.messages += 1
                msgid = result.message_ids[-1]
                first = first_index.setdefault(msgid, chunk.index)
                if first != chunk.index:
                    result.duplicates.setdefault(msgid, [first]).append(chunk.index)
            out.flush()
            os.fsync(out.fileno())
        # The copy is as private as the original (Mailman 2 keeps private archives 0660).
        os.chmod(temporary, stat.S_IMODE(src.stat().st_mode))
        os.replace(temporary, dst)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return result
