"""Messages of a Mailman 2 mbox that HyperKitty lacks, and why: what `archives.verify` and the
import's own verification report.

Two kinds of messages are looked for, so that none can go missing without a line in the report:
- the messages the separator rule splits the mbox into (`mbox`), by the Message-ID `prepare`
  gives each;
- plausible messages the rule leaves inside another's body: a `From ` or `>From ` line followed by
  a header block with a Message-ID (`mbox.embedded_messages`). An unescaped one is a message
  `hyperkitty_import` would have stored (it splits at every `From ` line), so its absence is a
  failure. An escaped one is body text in Mailman 2's own archive too (Mailman 2.1's cleanarch
  escapes separators it does not recognise, which merges messages): reported with what to do,
  as explained, since the migration kept what Mailman 2 holds.

The reason for a missing message comes from what `archives.check` finds in it (`mbox.scan` of its
bytes) and from hyperkitty_import's own lines that name its Message-ID, which the journals of the
import runs keep (`importer_lines`). Only the findings in `EXPLAINED_PROBLEMS`, known refusals of
the importer, make a missing message explained.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..core.runner import OUTPUT_TAIL
from . import mbox
from .hyperkitty import ImportArchives, stored_id

# Why HyperKitty may lack a message of the mbox, by the problem `mbox.scan` finds in it: these are
# known importer refusals (hyperkitty_import logs them and goes on), reported as explained.
EXPLAINED_PROBLEMS = {
    "non_ascii_sender": "HyperKitty refuses a non-ASCII sender address",
    "undecodable_header": "a header no charset decodes: the importer may fail to convert it",
}

# The other findings of `archives.check` in a message, as part of the reason it is missing.
FINDINGS = {
    "empty_message": "it is empty (nothing after the headers)",
    "missing_message_id": "it had no usable Message-ID (prepare gave it this one)",
    "unsafe_message_id": "its Message-ID is one HyperKitty's parser cuts or stops at",
    "decorated_message_id": "its Message-ID was written decorated (prepare normalised it)",
    "multiple_message_id_headers": "it has several Message-ID headers",
    "undecodable_header": "a header holds raw 8-bit bytes",
    "missing_date": "it has no Date header",
    "unparseable_date": "its Date header does not parse",
    "unescaped_from_line": "its body has `From ` lines (escaped in the prepared copy)",
    "separator_without_blank_line": "no blank line before its From_ line",
    "loose_separator": "its From_ line fails the strict From_ pattern",
}

PENDING = "arrived after the last import: run `archives.import --delta`"

# hyperkitty_import puts the exception on the line after these (`Failed to convert ...\n    {e}`).
_CONTINUED = ("skipping", "to bytes", "email.message.Message")


@dataclass
class Difference:
    """A message on one side only, with the reason when it is known."""

    message_id: str
    side: str  # "missing" (in the mbox, not in HyperKitty) or "extra" (the other way round)
    index: int | None = None  # position in the mbox (of the message holding it, for a hidden one)
    reason: str = ""
    explained: bool = False

    def describe(self) -> str:
        where = f" (mbox message {self.index})" if self.index is not None else ""
        return f"{self.side} {self.message_id}{where}: {self.reason or 'unknown reason'}"


def missing_messages(original: bytes, report: mbox.MboxReport, prepared: mbox.PrepareResult,
                     present: frozenset[str], *, pending_from: int | None = None, offset_base: int = 0,
                     importer_lines: Iterable[str] = ()) -> list[Difference]:
    """Every message of `original` that HyperKitty (holding the ids `present`) lacks: those
    `prepare` found, then the plausible messages hidden inside them. See `explain_missing`."""
    expected = set(prepared.message_ids)
    return (explain_missing(original, report, prepared, expected - present, pending_from=pending_from,
                            offset_base=offset_base, importer_lines=importer_lines)
            + hidden_messages(original, report, expected | present, pending_from=pending_from,
                              offset_base=offset_base))


def explain_missing(original: bytes, report: mbox.MboxReport, prepared: mbox.PrepareResult,
                    missing: set[str], *, pending_from: int | None = None, offset_base: int = 0,
                    importer_lines: Iterable[str] = ()) -> list[Difference]:
    """Why messages of `original` (ids in `missing`) are not in HyperKitty, where it is known.

    `pending_from`: byte offset (in the whole mbox; `original` starts at `offset_base`) of the last
    import's watermark; messages after it have simply not been imported yet. `importer_lines`:
    what hyperkitty_import said about single messages of this list.
    """
    unresolved = {c.message_index for c in prepared.unresolved if c.kind == "undecodable_header"}
    lines = list(importer_lines)
    found = []
    first: dict[str, int] = {}
    for index, msgid in enumerate(prepared.message_ids):
        first.setdefault(msgid, index)
    for msgid in sorted(missing, key=lambda m: first.get(m, -1)):
        index = first.get(msgid)
        difference = Difference(msgid, "missing", index)
        found.append(difference)
        if index is None:
            continue
        start = report.offsets[index]
        if pending_from is not None and offset_base + start >= pending_from:
            difference.reason = PENDING
            continue
        end = report.offsets[index + 1] if index + 1 < len(report.offsets) else len(original)
        counts = mbox.scan_data(original[start:end]).counts
        explained = [kind for kind in EXPLAINED_PROBLEMS
                     if counts.get(kind) and (kind != "undecodable_header" or index in unresolved)]
        reasons = [EXPLAINED_PROBLEMS[kind] for kind in explained]
        found_by_check = [why for kind, why in FINDINGS.items() if counts.get(kind) and kind not in explained]
        if found_by_check:
            reasons.append("archives.check: " + ", ".join(found_by_check))
        reasons += [f"hyperkitty_import: {line}" for line in _lines_about(msgid, lines)]
        difference.reason, difference.explained = "; ".join(reasons), bool(explained)
    return found


def hidden_messages(original: bytes, report: mbox.MboxReport, known: set[str] | frozenset[str], *,
                    pending_from: int | None = None, offset_base: int = 0) -> list[Difference]:
    """The plausible messages inside the messages of `original` whose id is not in `known` (the
    ids prepare gives the messages, and those HyperKitty holds), each once."""
    found: list[Difference] = []
    seen = set(known)
    line, counted = 1, 0
    for index, start in enumerate(report.offsets):
        end = report.offsets[index + 1] if index + 1 < len(report.offsets) else len(original)
        for position, msgid, escaped in mbox.embedded_messages(original, start, end):
            line += original.count(b"\n", counted, position)
            counted = position
            if msgid in seen:
                continue
            seen.add(msgid)
            text = original[position:original.find(b"\n", position)].rstrip(b"\r").decode("ascii", "replace")[:80]
            where = f"line {line} of the mbox ({text!r}), followed by a header block with this Message-ID"
            if pending_from is not None and offset_base + position >= pending_from:
                found.append(Difference(msgid, "missing", index, PENDING))
            elif escaped:
                found.append(Difference(msgid, "missing", index, (
                    f"quoted in mbox message {index} at {where}: Mailman 2 and HyperKitty both read it as "
                    "body text. If it is a message of its own (Mailman 2.1's cleanarch escapes From_ lines "
                    "like `From a at example.org ...`), remove the `>` in the Mailman 2 mbox, then run "
                    "`archives.prepare` and `archives.import --prestage` again"), explained=True))
            else:
                found.append(Difference(msgid, "missing", index, (
                    f"inside mbox message {index} at {where}: hyperkitty_import would store it as a message "
                    "of its own, the separator rule took it for body text")))
    return found


def _lines_about(msgid: str, lines: list[str]) -> list[str]:
    """The importer's lines naming `msgid` (it writes ids with or without their angle brackets),
    each with the line after it where that holds the exception."""
    bare = re.escape(stored_id(msgid))
    pattern = re.compile(rf"(?<![^\s<'\"(]){bare}(?![^\s>'\":,)])")
    about = []
    for number, line in enumerate(lines):
        if pattern.search(line):
            follow = number + 1 < len(lines) and line.rstrip().endswith(_CONTINUED)
            about.append(f"{line} {lines[number + 1].strip()}" if follow else line)
    return about


# "<list address>: <line>", as ImportArchives joins the importer's problems into its stderr.
_IMPORTER_LINE = re.compile(r"([^\s@:]+@[^\s:]+): (.+)")


def importer_lines(state_dir) -> dict[str, list[str]]:
    """What hyperkitty_import said about single messages, per list address, from the journal of
    every import run, oldest first and each line once. A journal keeps the tail of the output
    (`OUTPUT_TAIL` characters): the first lines of a long one are not there."""
    found: dict[str, dict[str, None]] = {}
    for run in state_dir.list_runs():
        planned: dict[int, list] = {}
        for raw in run.path.read_bytes().split(b"\n"):
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            if event.get("event") == "step_planned":
                planned[event.get("step")] = [op.get("type") for op in event.get("ops", [])]
                continue
            if event.get("event") != "op_end" or not event.get("stderr"):
                continue
            types = planned.get(event.get("step"), [])
            if not 0 <= event.get("op", -1) < len(types) or types[event["op"]] != ImportArchives.__name__:
                continue
            text = event["stderr"]
            lines = text.split("\n")[1:] if len(text) >= OUTPUT_TAIL else text.split("\n")
            for line in lines:
                match = _IMPORTER_LINE.fullmatch(line)
                if match:
                    found.setdefault(match[1], {}).setdefault(match[2], None)
    return {address: list(lines) for address, lines in found.items()}
