"""Message-IDs: HyperKitty's cleaning, its URL hash, generated ids.

`hyperkitty_stores` below replays, with the standard library, the calls HyperKitty 1.3.12 makes on
an mbox message's Message-ID (hyperkitty_import DbImporter.from_mbox and _fix_mid, then
lib/utils.py get_message_id on the re-parsed message). It is the reference `normalise` is held to.
"""

from __future__ import annotations

import ast
import base64
import email.utils
import functools
import hashlib
import mailbox
import re
import subprocess
from email import message_from_bytes, policy
from email.utils import unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrate.archives.msgid import deterministic_id, message_hash, normalise
from migrate.core.paths import LAB_ROOT

ATEXT = "abcdefxyzABCXYZ0123456789!#$%&'*+-/=?^_`{|}~"


def hyperkitty_stores(header_value: bytes) -> str:
    """The id HyperKitty's importer stores for a message whose Message-ID header is `header_value`.

    Raises what HyperKitty would raise; returns "(generated)" where it would invent a random id.
    """
    raw = b"From: a@example.org\nMessage-ID: " + header_value + b"\nSubject: x\n\nbody\n"
    msg = mailbox.mboxMessage(raw)
    value = str(msg["message-id"])
    if value.strip() in ("", "<>"):
        return "(generated)"
    fixed = re.sub(r"\s", "", value)
    if fixed.startswith("<"):
        fixed = re.sub(">.*", ">", fixed)
    else:
        fixed = "<" + fixed
    if not fixed.endswith(">"):
        fixed += ">"
    fixed = fixed.encode("ascii", "ignore").decode("ascii")
    if fixed != value:
        msg.replace_header("Message-ID", fixed)
    reparsed = message_from_bytes(msg.as_bytes(unixfrom=False), policy=policy.default)
    stored = unquote(re.sub(r"\s", "", reparsed["Message-Id"]))
    return stored[:254] if len(stored) >= 255 else stored


def reference_hash(inner: str) -> str:
    return base64.b32encode(hashlib.sha1(inner.encode("utf-8")).digest()).decode("ascii")


# --- normalise ----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("<abc@example.org>", "<abc@example.org>"),
        # _fix_mid: whitespace removed, which unfolds a folded header too.
        ("  <abc@example.org>  ", "<abc@example.org>"),
        ("<abc@\n example.org>", "<abc@example.org>"),
        ("<a b c@example.org>", "<abc@example.org>"),
        # _fix_mid: a value starting with `<` loses everything after the first `>`.
        ("<58C6B8A3@example.com> (added by postmaster@example.com)", "<58C6B8A3@example.com>"),
        # _fix_mid: brackets enforced.
        ("abc@example.org", "<abc@example.org>"),
        ("<abc@example.org", "<abc@example.org>"),
        # _fix_mid: non-ASCII removed.
        ("<abcé@example.org>", "<abc@example.org>"),
        # Nothing usable: HyperKitty would invent a random id (or fail on `< >`).
        (None, None),
        ("", None),
        ("   ", None),
        ("<>", None),
        ("< >", None),
        ("<é>", None),
        # Ids email.policy.default would cut or choke on are percent-encoded instead.
        ("<a;b@example.org>", "<a%3Bb@example.org>"),
        ("<@example.org>", "<%40example.org>"),
        ("<a@b@c>", "<a@b%40c>"),
        ("(comment) <abc@x>", "<%28comment%29%3Cabc@x>"),
        ("<\"quoted\">", "<%22quoted%22>"),
        # Domain literals are fine as they are.
        ("<a@[192.0.2.1]>", "<a@[192.0.2.1]>"),
        ("<a@[IPv6:2001:db8::1]>", "<a@[IPv6:2001:db8::1]>"),
    ],
)
def test_normalise_examples(raw, expected):
    assert normalise(raw) == expected


def test_normalise_cuts_to_254_like_get_message_id():
    inner = "x" * 300 + "@example.org"
    assert normalise(f"<{inner}>") == f"<{inner[:254]}>"
    assert hyperkitty_stores(f"<{inner}>".encode()) == inner[:254]
    exact = "y" * 254
    assert normalise(exact) == f"<{exact}>"


def test_cutting_inside_a_domain_literal_stays_safe():
    raw = "<" + "a" * 250 + "@[192.0.2.1]>"
    result = normalise(raw)
    assert result is not None and len(result) == 256
    assert normalise(result) == result
    assert hyperkitty_stores(result.encode()) == result[1:-1]


messy_ids = st.text(
    alphabet=st.sampled_from(list(ATEXT + ".@<>[]()\";:,\\ \t\n") + ["é", "ß", "\u2028", "\x00", "\x7f"]),
    max_size=40,
)


@given(messy_ids)
def test_normalise_is_idempotent(raw):
    once = normalise(raw)
    assert normalise(once) == once


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(messy_ids.filter(lambda s: "\x00" not in s and "\n" not in s))
def test_hyperkitty_stores_exactly_what_normalise_returns(raw):
    """What prepare writes into the mbox comes out of HyperKitty's import unchanged."""
    result = normalise(raw)
    if result is not None:
        assert hyperkitty_stores(result.encode("ascii")) == result[1:-1]


safe_ids = st.builds(
    lambda left, right: left if right is None else f"{left}@{right}",
    st.text(alphabet=ATEXT + ".", min_size=1, max_size=30),
    st.none() | st.text(alphabet=ATEXT + ".", max_size=30) | st.from_regex(r"\[[0-9.:a-f]{0,15}\]", fullmatch=True),
)


@settings(max_examples=300)
@given(
    safe_ids,
    st.sampled_from(["<{}>", "{}", "<{}", " <{}> ", "<{}>\n (added by postmaster@example.com)", "<{}>>junk"]),
    st.sampled_from(["", "é", "\u00fc\u00df"]),
)
def test_normalise_equals_what_hyperkitty_stores_for_ordinary_ids(inner, decoration, accent):
    """Decorated, folded, bracketless or accented forms of ordinary ids: exactly HyperKitty's id."""
    raw = decoration.format(inner[: len(inner) // 2] + accent + inner[len(inner) // 2 :])
    assert normalise(raw) == "<" + hyperkitty_stores(raw.encode("utf-8")) + ">"


# --- message_hash -------------------------------------------------------------------------------

def test_message_hash_known_value():
    # b32encode(sha1(b"abc@example.org")) worked out independently of the module.
    assert message_hash("<abc@example.org>") == reference_hash("abc@example.org")
    assert message_hash("abc@example.org") == message_hash("<abc@example.org>")
    assert len(message_hash("<x@y>")) == 32


@given(safe_ids)
def test_message_hash_matches_reference(inner):
    assert message_hash(f"<{inner}>") == reference_hash(inner)


@given(messy_ids)
def test_message_hash_of_normalised_ids_matches_reference(raw):
    result = normalise(raw)
    if result is not None:
        assert message_hash(result) == reference_hash(result[1:-1])


HYPERKITTY_PACKAGE = LAB_ROOT / "venvs" / "mailman-web" / "lib" / "python3.11" / "site-packages" / "hyperkitty"


@functools.cache
def installed_hyperkitty_functions() -> dict:
    """`_fix_mid`, `get_message_id` and `get_message_id_hash` from the lab's installed HyperKitty.

    Their modules import Django, which this venv does not have; the three functions only need
    `re`, `email.utils`, `hashlib` and `base64`, so they are compiled alone from the installed source.
    """
    wanted = {
        HYPERKITTY_PACKAGE / "management" / "commands" / "hyperkitty_import.py": "_fix_mid",
        HYPERKITTY_PACKAGE / "lib" / "utils.py": ("get_message_id", "get_message_id_hash"),
    }
    namespace = {"re": re, "email": email, "b32encode": base64.b32encode, "sha1": hashlib.sha1}
    for path, names in wanted.items():
        if not path.exists():
            pytest.skip("HyperKitty is not installed in the lab venv")
        names = (names,) if isinstance(names, str) else names
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name in names:
                exec(compile(ast.Module(body=[node], type_ignores=[]), str(path), "exec"), namespace)
    return namespace


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(messy_ids.filter(lambda s: "\x00" not in s and "\n" not in s))
def test_installed_hyperkitty_stores_exactly_what_normalise_returns(raw):
    """The same property with HyperKitty's own `_fix_mid` and `get_message_id`."""
    functions = installed_hyperkitty_functions()
    result = normalise(raw)
    if result is None:
        return
    assert functions["_fix_mid"](None, result) == result
    msg = message_from_bytes(b"Message-ID: " + result.encode() + b"\n\nbody\n", policy=policy.default)
    stored = functions["get_message_id"](msg)
    assert stored == result[1:-1]
    assert functions["get_message_id_hash"](stored) == message_hash(result)


@settings(max_examples=200)
@given(
    safe_ids,
    st.sampled_from(["<{}>", "{}", "<{}", " <{}> ", "<{}>\n (added by postmaster@example.com)", "<{}>>junk"]),
)
def test_normalise_equals_installed_fix_mid_for_ordinary_ids(inner, decoration):
    functions = installed_hyperkitty_functions()
    raw = decoration.format(inner)
    fixed = functions["_fix_mid"](None, raw)
    assert normalise(raw) == "<" + email.utils.unquote(fixed)[:254] + ">"


MAILMAN3_PYTHON = LAB_ROOT / "venvs" / "mailman3" / "bin" / "python"
MAILMAN_WEB_PYTHON = LAB_ROOT / "venvs" / "mailman-web" / "bin" / "python"
SAMPLE_IDS = ["<abc@example.org>", "<a%3Bb@x>", "<" + "z" * 254 + ">", "<a@[192.0.2.1]>", "<migrate.abc@lists.example.org>"]


@pytest.mark.skipif(not MAILMAN3_PYTHON.exists(), reason="the lab's Mailman 3 venv is not installed")
def test_message_hash_matches_mailman_core():
    script = (
        "import sys\n"
        "from email.message import Message\n"
        "from mailman.utilities.email import add_message_hash\n"
        "for line in sys.stdin.read().splitlines():\n"
        "    msg = Message(); msg['Message-ID'] = line\n"
        "    print(add_message_hash(msg))\n"
    )
    out = subprocess.run([str(MAILMAN3_PYTHON), "-c", script], input="\n".join(SAMPLE_IDS),
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == [message_hash(msgid) for msgid in SAMPLE_IDS]


@pytest.mark.skipif(not MAILMAN_WEB_PYTHON.exists(), reason="the lab's HyperKitty venv is not installed")
def test_message_hash_and_id_match_hyperkitty():
    script = (
        "import sys\n"
        "from email import message_from_string, policy\n"
        "from hyperkitty.lib.utils import get_message_id, get_message_id_hash\n"
        "for line in sys.stdin.read().splitlines():\n"
        "    msg = message_from_string('Message-ID: ' + line + '\\n\\n', policy=policy.default)\n"
        "    stored = get_message_id(msg)\n"
        "    print(stored, get_message_id_hash(stored))\n"
    )
    result = subprocess.run([str(MAILMAN_WEB_PYTHON), "-c", script], input="\n".join(SAMPLE_IDS),
                            capture_output=True, text=True)
    if result.returncode != 0 and "ModuleNotFoundError" in result.stderr:
        pytest.skip("HyperKitty is not (yet) installed in the lab venv")
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows == [[msgid[1:-1], message_hash(msgid)] for msgid in SAMPLE_IDS]


# --- deterministic_id ---------------------------------------------------------------------------

def test_deterministic_id_form():
    generated = deterministic_id(b"From: a@example.org\n\nhello\n", "team@Lists.Example.org")
    assert re.fullmatch(r"<migrate\.[a-z2-7]{32}@lists\.example\.org>", generated)
    assert normalise(generated) == generated


def test_deterministic_id_needs_a_posting_address():
    with pytest.raises(ValueError):
        deterministic_id(b"x", "team")
    with pytest.raises(ValueError):
        deterministic_id(b"x", "@example.org")


@given(st.binary(max_size=200))
def test_deterministic_id_is_stable(content):
    assert deterministic_id(content, "team@example.org") == deterministic_id(bytes(content), "team@example.org")


@given(st.binary(max_size=200), st.binary(max_size=200))
def test_deterministic_id_differs_for_different_content(first, second):
    if first != second:
        assert deterministic_id(first, "team@example.org") != deterministic_id(second, "team@example.org")
