"""Secrets are never inline: an inventory value refers to an environment variable or a file.

A resolved secret is wrapped in `Secret`, whose repr and str never show the value, and its value
is registered so that `redact()` can strip it from anything written to journals, logs or errors.

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
      removed, and the one or two at each edge, which mix in bits of the neighbours, stay;
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
"""

from __future__ import annotations

import base64
import json
import os
import re
import stat
import threading
from pathlib import Path
from urllib.parse import quote, quote_plus

from .errors import SecretError

REDACTED = "***"
MIN_LENGTH = 8

_lock = threading.Lock()
_known_values: set[str] = set()
_known_forms: set[str] = set()
_pattern: re.Pattern[str] | None = None


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


def redact_obj(obj):
    """Redact strings inside nested dicts/lists/tuples (for journal records)."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, Secret):
        return REDACTED
    if isinstance(obj, dict):
        return {k: redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact_obj(v) for v in obj]
    return obj


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
