"""Checks a Mailman 2 pickle passes before and after the unpickler runs on it.

- `check_opcodes`, before: the opcode stream is walked without running anything, so that damage
  is found before the C unpickler acts on it (it sizes its memo by the index a PUT carries, and
  one damaged byte can make it allocate gigabytes).
- `check_values`, after: the unpickled value must be shaped like something Mailman 2 wrote (see
  `core.bounds`): no part that contains itself, no deep nesting, no tree vastly larger than the
  file. A 436-byte pickle of tuples that each hold the one below twice is 2**40 values to repr()
  or to any converter; a list appended to itself is endless.

Each refusal is a `PickleRefused` whose message says what is wrong with the file; the caller adds
the list it belongs to.

The walk is `pickletools.genops` with one difference: genops undoes the escapes of a protocol 0
STRING and then decodes the result as ASCII, which fails on every 8-bit byte. Python 2 wrote a
str there as its repr(), with such bytes as \\xNN escapes, so a Greek or Russian list saved in
protocol 0 was refused as "not a readable pickle ('ascii' codec can't decode byte 0xc1 ...)".
Here that argument stays bytes, as the unpickler itself reads it.
"""

from __future__ import annotations

import codecs
import io
import pickletools
import warnings
from typing import Any, BinaryIO, Iterable, Iterator

from ..core.bounds import ShapeError, check_shape, expansion_limit, label

# How the opcode readers say the stream ended in the middle of the pickle.
_RAN_OUT_OF_DATA = ("exhausted", "not enough data", "remain", "no newline found")

# Opcodes that store into the unpickler's memo at the index they carry.
_MEMO_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})

_OPCODES = {op.code.encode("latin-1"): op for op in pickletools.opcodes}


class PickleRefused(ValueError):
    """The bytes are not a pickle that can be read safely; the message says why."""


def truncated(what: str) -> str:
    return f"{what} is truncated (the pickle ends before its STOP opcode)"


def _read_string_argument(stream: BinaryIO) -> bytes:
    """STRING's argument: a quoted Python 2 repr() up to the newline, its escapes undone."""
    line = stream.readline()
    if not line.endswith(b"\n"):
        raise ValueError("no newline found when trying to read a STRING argument")
    quoted = line[:-1]
    if len(quoted) < 2 or quoted[:1] not in (b"'", b'"') or quoted[-1:] != quoted[:1]:
        raise ValueError(f"STRING argument {quoted[:40]!r} is not between quotes")
    return codecs.escape_decode(quoted[1:-1])[0]


def _opcodes(data: bytes) -> Iterator[tuple[pickletools.OpcodeInfo, Any, int]]:
    """(opcode, argument, position) up to and including STOP, like pickletools.genops."""
    stream = io.BytesIO(data)
    while True:
        position = stream.tell()
        code = stream.read(1)
        opcode = _OPCODES.get(code)
        if opcode is None:
            if not code:
                raise ValueError("pickle exhausted before seeing STOP")
            raise ValueError(f"at position {position}, opcode {code!r} unknown")
        if opcode.arg is None:
            argument = None
        elif opcode.arg.name == "stringnl":
            argument = _read_string_argument(stream)
        else:
            argument = opcode.arg.reader(stream)
        yield opcode, argument, position
        if opcode.name == "STOP":
            return


def check_opcodes(data: bytes, *, what: str) -> None:
    """Walk the opcode stream of `what` (e.g. "config.pck") without running it.

    A real pickle never stores more memo entries than it has bytes, so a PUT beyond that is damage.
    """
    try:
        with warnings.catch_warnings():
            # escape_decode warns about the stray backslashes damaged data is full of; the damage
            # is reported below instead.
            warnings.simplefilter("ignore", DeprecationWarning)
            for opcode, argument, position in _opcodes(data):
                if opcode.name in _MEMO_PUTS and not 0 <= int(argument) <= len(data):
                    raise PickleRefused(f"{what} is damaged: memo index {argument} at byte {position}")
    except ValueError as exc:
        if isinstance(exc, PickleRefused):
            raise
        if any(sign in str(exc) for sign in _RAN_OUT_OF_DATA):
            raise PickleRefused(truncated(what)) from None
        raise PickleRefused(f"{what} is not a readable pickle ({exc})") from None


def _parts(value: Any) -> Iterable[tuple[str, Any]] | None:
    if isinstance(value, dict):
        return ((label(key), part) for key, item in value.items() for part in (key, item))
    if isinstance(value, (list, tuple)):
        return ((f"[{i}]", item) for i, item in enumerate(value))
    attributes = getattr(value, "__dict__", None)
    if isinstance(attributes, dict) and not isinstance(value, type):
        # A stand-in instance: its pickled state and arguments.
        return ((f".{name}", item) for name, item in attributes.items())
    return None


def _weight(value: Any) -> int:
    return 1 + len(value) if isinstance(value, (str, bytes)) else 1


def check_values(value: Any, *, what: str, size: int) -> None:
    """Refuse an unpickled value of `what` (a file of `size` bytes) that is shaped like no Mailman 2
    file: one that contains itself, nests too deeply or stands for a vastly larger tree."""
    try:
        check_shape(value, _parts, limit=expansion_limit(size), weight=_weight)
    except ShapeError as shape:
        raise PickleRefused(f"{what} is shaped like no Mailman 2 file: its value at {shape.path or 'the top'} "
                            f"{shape.problem}") from None
