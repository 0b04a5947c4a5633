"""Secrets are never inline: an inventory value refers to an environment variable or a file.

A resolved secret is wrapped in `Secret`, whose repr and str never show the value, and its value
is registered so that redaction strips it from everything a run writes. Every sink uses the
functions here: `redact(text)` for lines (run.log, terminal output, error messages),
`redact_tail` for the tail of command output kept in the journal, and `redact_obj(data)` for
structured data (journal events, JSON output, saved reports), which turns any Python value into
JSON-ready data with every string in it, keys included, redacted.

A secret shorter than MIN_LENGTH (8) characters is refused where it is resolved: redacting it
would also strip ordinary words and numbers from every log, and its encoded forms would be short
enough to turn up by chance in digests and message-ids. Eight is also the least that NIST SP
800-63B accepts for a memorised secret; keys and tokens are far longer.

Besides the value itself, redaction removes these encodings of it, each matched as it appears
anywhere inside a longer text:
    - URL encoding: `quote` (with and without "/" kept) and `quote_plus`, in upper- and lower-case
      hexadecimal;
    - base64, standard and URL-safe, with and without padding, for the secret encoded alone, and
      for the secret at each of the three byte offsets inside a longer stream (HTTP basic auth's
      base64("user:secret")): there, the characters that carry only the secret's bits are
      removed, and the one at each edge that mixes in bits of a neighbour stays;
    - hexadecimal, lower and upper case, of its UTF-8 bytes;
    - JSON string escaping (with and without \\u escapes, "\\/" for "/") and Python repr escaping;
    - and each of these as it stands inside a single-quoted shell word, as `build_command` quotes
      arguments for run.log and error messages ("'" becomes '"'"').
Not covered: encodings that wrap lines (MIME base64 at 76 columns), compression, and encodings
of encodings beyond the shell quoting above.

Redaction runs on every journal event and log line, so all forms of all secrets are matched by
one regular expression, rebuilt only when a secret is registered, and shaped as a trie of literals
so that forms sharing a beginning are tried together. Where occurrences overlap, every character
covered by any of them is replaced: two secrets sharing characters cannot leave a piece of either.
Command output is redacted whole before its tail is kept, so a secret across the cut goes whole.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import re
import stat
import threading
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from urllib.parse import quote, quote_plus

from .errors import MigrateError, SecretError

REDACTED = "***"
MIN_LENGTH = 8

# Bounds of `redact_obj`: journal events and reports are a few levels deep and at most some
# hundred thousand values (the members or message-ids of a large list); beyond these, the data is
# hostile or broken, and is refused rather than walked for ever.
MAX_DEPTH = 64
MAX_VALUES = 2_000_000

_lock = threading.Lock()
_known_values: set[str] = set()
_known_forms: set[str] = set()
_pattern: re.Pattern[str] | None = None


class RedactionError(MigrateError):
    """Data too deep, too large or cyclic to be written out."""


def _check_length(value: str, source: str) -> None:
    """Refuse a secret too short to be redacted reliably; the message names `source`, never the value."""
    if not value:
        raise SecretError(f"the secret {source} is empty")
    if len(value) < MIN_LENGTH:
        raise SecretError(f"the secret {source} is shorter than {MIN_LENGTH} characters: "
                          f"too short to be kept out of logs; replace it with a longer one")


def register(value: str, source: str) -> None:
    """Remember a secret value so that `redact` removes it, and its encoded forms, from any text."""
    global _pattern
    _check_length(value, source)
    with _lock:
        if value in _known_values:
            return
        _known_values.add(value)
        _known_forms.update(encoded_forms(value))
        _pattern = re.compile(_trie_regex(_known_forms))


def redact(text: str) -> str:
    """Replace every registered secret value, in any of its encoded forms, in `text` by ***."""
    pattern = _pattern
    if not text or pattern is None:
        return text
    match = pattern.search(text)
    if match is None:
        return text
    pieces: list[str] = []
    done = 0
    while match is not None:
        start, end = match.span()
        # An occurrence starting inside this one may reach further (two secrets overlapping).
        position = start + 1
        while position < end:
            inner = pattern.match(text, position)
            if inner is not None and inner.end() > end:
                end = inner.end()
            position += 1
        pieces.append(text[done:start])
        pieces.append(REDACTED)
        done = end
        match = pattern.search(text, end)
    pieces.append(text[done:])
    return "".join(pieces)


def redact_tail(text: str, size: int) -> str:
    """The last `size` characters of `text` after redaction, never starting inside a *** marker.

    Redacting first means a secret across the cut is replaced whole, not left in part.
    """
    clean = redact(text)
    if len(clean) <= size:
        return clean
    cut = len(clean) - size
    # A marker cut in two would leave a "*" or "**" that hides that anything was removed.
    marker = clean.rfind(REDACTED, max(0, cut - len(REDACTED) + 1), cut + len(REDACTED) - 1)
    if marker != -1 and marker < cut:
        cut = marker
    return clean[cut:]


def redact_obj(obj):
    """`obj` as JSON-ready data (dicts with str keys, lists, str, numbers, bools, None), redacted.

    Dict keys are redacted like values; sets become sorted lists; bytes become text (UTF-8, other
    bytes shown as \\xNN escapes: file contents belong in the blob store, not here); exceptions,
    paths and any other object become their str; dataclasses and pydantic models become dicts.
    Raises RedactionError for cyclic data, data nested deeper than MAX_DEPTH or holding more than
    MAX_VALUES values.
    """
    return _Walk().value(obj, 0)


class _Walk:
    """One conversion: a budget of values, the containers on the current path (cycles), and the
    containers already converted (data that shares a sub-tree costs its distinct nodes only, but
    is counted, and its depth checked, as written out)."""

    def __init__(self):
        self.budget = MAX_VALUES
        self.open: set[int] = set()
        self.done: dict[int, tuple[object, object, int, int]] = {}  # id -> (original, converted, size, height)
        self.reach = 0  # the deepest level the output reaches so far

    def spend(self, amount: int) -> None:
        self.budget -= amount
        if self.budget < 0:
            raise RedactionError(f"data holds more than {MAX_VALUES} values")

    def value(self, obj, depth: int):
        self.spend(1)
        if obj is None or obj is True or obj is False:
            return obj
        if isinstance(obj, str):
            return redact(str.__str__(obj))
        if isinstance(obj, Secret):
            return REDACTED
        if isinstance(obj, int):
            return int(obj)
        if isinstance(obj, float):
            return float(obj)
        if isinstance(obj, (bytes, bytearray, memoryview)):
            return redact(bytes(obj).decode("utf-8", "backslashreplace"))
        if isinstance(obj, os.PathLike):
            return self.value(os.fspath(obj), depth)
        if isinstance(obj, BaseException):
            return redact(_text(obj) or type(obj).__name__)
        if isinstance(obj, Enum):
            return self.value(obj.value, depth)
        if isinstance(obj, (Mapping, list, tuple, set, frozenset)) or _is_record(obj):
            return self.container(obj, depth + 1)
        return redact(_text(obj))

    def container(self, obj, depth: int):
        key = id(obj)
        if key in self.done:
            _, converted, size, height = self.done[key]
            self.deepen(depth + height)
            self.spend(size)
            return converted
        self.deepen(depth)
        if key in self.open:
            raise RedactionError("data refers to itself (a cycle)")
        self.open.add(key)
        outer, self.reach = self.reach, depth
        before = self.budget
        try:
            converted = self.contents(obj, depth)
        finally:
            self.open.discard(key)
        height, self.reach = self.reach - depth, max(outer, self.reach)
        # The original is kept with the result so that its id cannot be reused while we run.
        self.done[key] = (obj, converted, before - self.budget, height)
        return converted

    def deepen(self, level: int) -> None:
        if level > MAX_DEPTH:
            raise RedactionError(f"data nested deeper than {MAX_DEPTH} levels")
        self.reach = max(self.reach, level)

    def contents(self, obj, depth: int):
        if dataclasses.is_dataclass(obj):
            obj = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        elif not isinstance(obj, (Mapping, list, tuple, set, frozenset)):
            obj = obj.model_dump()
        if isinstance(obj, Mapping):
            return self.mapping(obj, depth)
        items = [self.value(item, depth) for item in obj]
        if isinstance(obj, (set, frozenset)):
            items.sort(key=lambda item: json.dumps(item, sort_keys=True))
        return items

    def mapping(self, obj: Mapping, depth: int) -> dict:
        out: dict[str, object] = {}
        for key, item in obj.items():
            name = self.key(key, depth)
            # Keys that redaction (or JSON's conversion) made equal must not overwrite each other.
            unique, n = name, 1
            while unique in out:
                n += 1
                unique = f"{name} ({n})"
            out[unique] = self.value(item, depth)
        return out

    def key(self, key, depth: int) -> str:
        if isinstance(key, str):
            return redact(str.__str__(key))
        if key is None or isinstance(key, (bool, int, float)):
            return json.dumps(key)  # what json.dumps would make of it
        converted = self.value(key, depth)
        return converted if isinstance(converted, str) else json.dumps(converted, sort_keys=True)


def _is_record(obj) -> bool:
    """A dataclass instance or a pydantic model (recognised without importing pydantic)."""
    if isinstance(obj, type):
        return False
    if dataclasses.is_dataclass(obj):
        return True
    return callable(getattr(obj, "model_dump", None)) and hasattr(type(obj), "model_fields")


def _text(obj) -> str:
    try:
        return str(obj)
    except Exception:  # an object whose str fails must not stop a journal write
        return f"<{type(obj).__name__} object>"


# -- the forms a secret takes in text ------------------------------------------------------------


def encoded_forms(value: str) -> set[str]:
    """The value and its encodings listed in the module docstring."""
    raw = value.encode("utf-8", "surrogateescape")
    forms = {value, raw.hex(), raw.hex().upper()}
    for safe in ("", "/"):
        for quoted in (quote(raw, safe=safe), quote_plus(raw, safe=safe)):
            forms.add(quoted)
            forms.add(re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), quoted))
    escaped = {json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    escaped |= {re.sub(r"\\u([0-9a-f]{4})", lambda m: "\\u" + m.group(1).upper(), form) for form in escaped}
    escaped |= {form.replace("/", "\\/") for form in escaped}
    forms |= escaped | {repr(value)[1:-1]}
    full = base64.b64encode(raw).decode()
    encoded = {full, full.rstrip("=")}
    for offset in (0, 1, 2):
        encoded.add(_base64_core(raw, offset))
    forms |= encoded | {form.translate(_URLSAFE) for form in encoded}
    forms |= {form.replace("'", "'\"'\"'") for form in list(forms) if "'" in form}
    return {form for form in forms if form}


_URLSAFE = str.maketrans("+/", "-_")


def _base64_core(raw: bytes, offset: int) -> str:
    """The base64 characters that carry bits of `raw` only, when `raw` starts `offset` bytes into
    a group of three: the same in every stream that holds `raw` at that alignment."""
    encoded = base64.b64encode(bytes(offset) + raw).decode()
    first = (8 * offset + 5) // 6  # rounded up: the first character not mixing in a neighbour
    last = 8 * (offset + len(raw)) // 6
    return encoded[first:last]


def _trie_regex(forms: set[str]) -> str:
    """One pattern matching any of `forms`, longest first at each position, as a trie of literals."""
    trie: dict = {}
    for form in forms:
        node = trie
        for char in form:
            node = node.setdefault(char, {})
        node[""] = {}
    return _node_regex(trie)


def _node_regex(node: dict) -> str:
    # Iterative over long chains of single children (a form's tail), recursive at branch points,
    # which are few: at most one per form.
    branches = []
    for char in sorted(k for k in node if k):
        literal = [char]
        child = node[char]
        while len(child) == 1 and "" not in child:
            (char, child), = child.items()
            literal.append(char)
        branches.append(re.escape("".join(literal)) + (_node_regex(child) if child else ""))
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    if "" in node:
        return "(?:" + body + ")?"
    return body


class Secret:
    """A resolved secret. `reveal()` returns the value; nothing else ever shows it."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str):
        register(value, source)
        self._value = value
        self.source = source  # e.g. "env:MM3_REST_PASSWORD" or "file:/etc/migrate/mm3"

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.source})"

    def __str__(self) -> str:
        return REDACTED

    def __eq__(self, other) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self.source)


def check_secret_file(path: Path) -> None:
    """Refuse a secret file that is missing or readable by group or others."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise SecretError(f"secret file {path} does not exist") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretError(
            f"secret file {path} is accessible by group or others "
            f"(mode {stat.S_IMODE(st.st_mode):04o}); run: chmod 600 {path}"
        )


def from_env(name: str) -> Secret:
    value = os.environ.get(name)
    if value is None:
        raise SecretError(f"environment variable {name} is not set")
    return Secret(value, f"env:{name}")


def from_file(path: Path) -> Secret:
    check_secret_file(path)
    return Secret(path.read_text().rstrip("\n"), f"file:{path}")
