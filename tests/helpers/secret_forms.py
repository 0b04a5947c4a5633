"""The shapes a secret takes on its way into text, computed here from the standard library alone.

Tests grep raw files (journals, run logs, saved reports) for every one of them. They are worked out
independently of `migrate.core.secrets`, so a form that module forgets shows up as a leak here.
"""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import quote, quote_plus

# HTTP basic auth encodes "user:secret"; these three user names put the secret at each of the
# three byte alignments of a base64 stream.
BASIC_AUTH_USERS = ("usr", "user", "admin")

WINDOW = 8  # a piece this long of any form, found in a file, counts as a leak


def _lower_escapes(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), text)


def encoded_forms(secret: str) -> dict[str, str]:
    """Each encoded form by name, whole: what a program writes when it encodes the secret alone."""
    raw = secret.encode()
    std = base64.b64encode(raw).decode()
    url = base64.urlsafe_b64encode(raw).decode()
    forms = {
        "raw": secret,
        "url-quote": quote(secret, safe=""),
        "url-quote-lower": _lower_escapes(quote(secret, safe="")),
        "url-quote-path": quote(secret),
        "url-quote-plus": quote_plus(secret),
        "url-quote-plus-lower": _lower_escapes(quote_plus(secret)),
        "base64": std,
        "base64-unpadded": std.rstrip("="),
        "base64-urlsafe": url,
        "base64-urlsafe-unpadded": url.rstrip("="),
        "hex": raw.hex(),
        "hex-upper": raw.hex().upper(),
        "json": json.dumps(secret)[1:-1],
        "json-unicode": json.dumps(secret, ensure_ascii=False)[1:-1],
    }
    for user in BASIC_AUTH_USERS:
        forms[f"basic-auth-{user}"] = base64.b64encode(f"{user}:{secret}".encode()).decode()
    return forms


def secret_part(name: str, form: str, secret: str) -> str:
    """The part of `form` that depends on the secret alone.

    For base64 of "user:secret" the first and last characters also carry bits of the user name or
    of the padding, and cannot be told apart from any other stream; everything between must go.
    """
    if not name.startswith("basic-auth-"):
        return form
    prefix = len(name.removeprefix("basic-auth-")) + 1
    first_bit, end_bit = 8 * prefix, 8 * (prefix + len(secret.encode()))
    first = -(-first_bit // 6)  # the first character whose six bits all belong to the secret
    last = end_bit // 6  # one past the last such character
    return form[first:last]


def leaks(text: str, secret: str) -> list[tuple[str, str]]:
    """(form name, piece) for every WINDOW-long piece of a form of `secret` found in `text`."""
    found = []
    for name, form in encoded_forms(secret).items():
        part = secret_part(name, form, secret)
        for start in range(0, max(1, len(part) - WINDOW + 1)):
            piece = part[start:start + WINDOW]
            if piece in text:
                found.append((name, piece))
                break
    return found
