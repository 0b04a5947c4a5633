"""Secrets are never inline: an inventory value refers to an environment variable or a file.

A resolved secret is wrapped in `Secret`, whose repr and str never show the value, and its value
is registered so that `redact()` can strip it from anything written to journals, logs or errors.

A secret shorter than MIN_LENGTH (8) characters is refused where it is resolved: redacting it
would also strip ordinary words and numbers from every log, and its encoded forms would be short
enough to turn up by chance in digests and message-ids. Eight is also the least that NIST SP
800-63B accepts for a memorised secret; keys and tokens are far longer.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

from .errors import SecretError

REDACTED = "***"
MIN_LENGTH = 8

_lock = threading.Lock()
_known_values: set[str] = set()


def _check_length(value: str, source: str) -> None:
    """Refuse a secret too short to be redacted reliably; the message names `source`, never the value."""
    if not value:
        raise SecretError(f"the secret {source} is empty")
    if len(value) < MIN_LENGTH:
        raise SecretError(f"the secret {source} is shorter than {MIN_LENGTH} characters: "
                          f"too short to be kept out of logs; replace it with a longer one")


def register(value: str, source: str) -> None:
    """Remember a secret value so that `redact` removes it from any text."""
    _check_length(value, source)
    with _lock:
        _known_values.add(value)


def redact(text: str) -> str:
    """Replace every registered secret value in `text` by ***."""
    if not text:
        return text
    with _lock:
        values = sorted(_known_values, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


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
