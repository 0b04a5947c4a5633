"""Message-IDs the way HyperKitty stores them, the hash in its URLs, and ids for messages without one.

What HyperKitty 1.3.12 does to the Message-ID of an imported message:

1. `hyperkitty_import` (`DbImporter.from_mbox`) reads the mbox with `mailbox.mbox` and, when the
   header is missing or its value is blank or `<>`, puts a random `make_msgid('generated')` in its
   place: not stable across runs. Otherwise it replaces the value by `DbImporter._fix_mid(value)`:
   all whitespace removed (which also unfolds), everything after the first `>` dropped when the
   value starts with `<`, otherwise `<` put in front, `>` appended when missing, then every
   non-ASCII character removed.
2. The message is re-parsed with `email.policy.default`, and `lib/utils.py: get_message_id` stores
   `email.utils.unquote(<header without whitespace>)`, cut to 254 characters when it has 255 or
   more (the column is a VARCHAR(255)).
3. `lib/utils.py: get_message_id_hash` makes the URL hash from the stored id:
   `b32encode(sha1(email.utils.unquote(stored).encode('utf-8')))`. Mailman core's
   `utilities/email.py: add_message_hash` gives the same value for every id `normalise` returns
   (it strips the angle brackets only, and these ids never start and end with a double quote).

Step 2 has a trap: `email.policy.default` parses the value as an RFC 5322 msg-id. With specials
(`;`, `:`, `\\`, `(`, `,`, `"` in the wrong place, a second `@`, nothing before the `@`, ...) it
returns a shortened id (`<a;b@x>` is stored as `<a`) or raises IndexError (`<@x>`, `<[a]@x>`,
`< >`), which stops `hyperkitty_import` for the whole mbox (seen with Python 3.11's email
package). `normalise` therefore applies step 1 and 2's cut, and then percent-encodes the characters
of ids that the parser would change, so that HyperKitty stores exactly what `normalise` returns.
For ordinary ids (letters, digits, the RFC 5322 atext characters, dots, one `@`, an optional domain
literal) the result is exactly what HyperKitty stores.
"""

from __future__ import annotations

import base64
import email.utils
import functools
import hashlib
import re

# RFC 5322 atext plus the dot: a msg-id made of these (and one `@` with something before it) comes
# back unchanged from email.policy.default's msg-id parser; tests/archives/test_msgid.py checks
# this against the parser.
_ATEXT = "A-Za-z0-9!#$%&'*+\\-/=?^_`{|}~"
_SAFE_ID = re.compile(rf"[{_ATEXT}.]+(?:@(?:[{_ATEXT}.]*|\[[{_ATEXT}.:]*\]))?")
_SAFE_PART = re.compile(rf"[{_ATEXT}.]")
_DOMAIN_LITERAL = re.compile(rf"\[[{_ATEXT}.:]*\]")
_WHITESPACE = re.compile(r"\s")
# An id already in the form `normalise` returns (the usual case): `normalise` gives it back as is.
_NORMAL_FORM = re.compile(rf"<(?:{_SAFE_ID.pattern})>")

# lib/utils.py get_message_id: `if len(msg_id) >= 255: msg_id = msg_id[:254]`.
MAX_ID_LENGTH = 254

# Prefix of the ids `deterministic_id` makes, so that a reader of HyperKitty recognises them.
GENERATED_PREFIX = "migrate."


def _hyperkitty_fix(raw: str) -> str:
    """`DbImporter._fix_mid` of hyperkitty_import, step by step (see the module docstring)."""
    value = _WHITESPACE.sub("", raw)
    if value.startswith("<"):
        end = value.find(">")
        if end != -1:
            value = value[: end + 1]
    else:
        value = "<" + value
    if not value.endswith(">"):
        value += ">"
    return value.encode("ascii", "ignore").decode("ascii")


def _percent_encode(text: str, keep: re.Pattern[str]) -> str:
    return "".join(char if keep.fullmatch(char) else f"%{ord(char):02X}" for char in text)


def _make_safe(inner: str) -> str:
    """`inner` with the characters email.policy.default would drop or choke on percent-encoded."""
    if _SAFE_ID.fullmatch(inner):
        return inner
    at = inner.find("@")
    if at <= 0:
        return _percent_encode(inner, _SAFE_PART)
    left, right = inner[:at], inner[at + 1 :]
    if not _DOMAIN_LITERAL.fullmatch(right):
        right = _percent_encode(right, _SAFE_PART)
    return _percent_encode(left, _SAFE_PART) + "@" + right


def hyperkitty_cleaned(raw: str | None) -> str | None:
    """The id HyperKitty's cleaning alone gives (`_fix_mid`, then get_message_id's cut), or None.

    Differs from `normalise` only for ids that email.policy.default would then shorten or fail on;
    `mbox.scan` reports those.
    """
    if raw is None:
        return None
    inner = _hyperkitty_fix(raw)[1:-1][:MAX_ID_LENGTH]
    return f"<{inner}>" if inner else None


@functools.lru_cache(maxsize=1 << 17)
def normalise(raw: str | None) -> str | None:
    """The Message-ID HyperKitty stores for a header value `raw`, with its angle brackets.

    None when there is no usable id: `raw` is None, or nothing is left once whitespace and
    non-ASCII characters are gone (HyperKitty would invent a random id or fail on those).
    Idempotent, and HyperKitty stores the result unchanged when it is written as the header.
    Cached: a map build asks for each article's id several times.
    """
    if raw is None:
        return None
    if len(raw) <= MAX_ID_LENGTH + 2 and _NORMAL_FORM.fullmatch(raw):
        return raw
    # The fixed value always starts with `<` and ends with `>`: get_message_id's unquote strips them.
    inner = _hyperkitty_fix(raw)[1:-1]
    if not inner:
        return None
    inner = _make_safe(inner)[:MAX_ID_LENGTH]
    # Cutting can leave half a domain literal (`a@[1.2`), which is not safe any more; once encoded,
    # the id holds atext and dots only, which stay safe whatever the cut.
    if not _SAFE_ID.fullmatch(inner):
        inner = _make_safe(inner)[:MAX_ID_LENGTH]
    return f"<{inner}>"


def message_hash(msgid: str) -> str:
    """The hash in HyperKitty's message URL (and core's Message-ID-Hash) for a normalised id.

    `msgid` is an id as `normalise` returns it; one pair of enclosing angle brackets is optional.
    HyperKitty hashes the stored id (brackets already gone) after one more `email.utils.unquote`
    (lib/utils.py get_message_id_hash), which only matters for ids that are `"..."`.
    """
    inner = msgid[1:-1] if msgid.startswith("<") and msgid.endswith(">") else msgid
    if inner.startswith('"'):
        inner = email.utils.unquote(inner)
    return _b32_160(hashlib.sha1(inner.encode("utf-8")).digest())


# Base32 (RFC 4648) of a 20-byte digest is 32 characters without padding; ten bits at a time
# through a table is several times faster than base64.b32encode on Python 3.11.
_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_B32_PAIRS = tuple(a + b for a in _B32 for b in _B32)
_SHIFTS = tuple(range(150, -1, -10))


def _b32_160(digest: bytes) -> str:
    number = int.from_bytes(digest, "big")
    pairs = _B32_PAIRS
    return "".join([pairs[(number >> shift) & 1023] for shift in _SHIFTS])


def deterministic_id(message_bytes: bytes, list_name: str) -> str:
    """A Message-ID for a message that has none: `<migrate.<hash>@<list domain>>`.

    `list_name` is the list's posting address (`list@example.org`); its domain ends the id.
    The hash is the SHA-256 of the message's content, so preparing the same mbox twice assigns the
    same ids, and different messages get different ids. Callers pass the content they want to
    identify the message by (mbox.prepare: the From_ line, headers and body, normalised).
    """
    local, at, domain = list_name.rpartition("@")
    if not at or not local or not domain:
        raise ValueError(f"list_name must be the list's posting address (list@domain), got {list_name!r}")
    digest = base64.b32encode(hashlib.sha256(message_bytes).digest()).decode("ascii").lower()
    # 32 base32 characters are 160 bits: collisions between messages of one list are not a concern.
    generated = normalise(f"<{GENERATED_PREFIX}{digest[:32]}@{domain.lower()}>")
    assert generated is not None
    return generated
