"""Names that become part of a URL, a path or a command: list names, domains, list addresses.

A Mailman 2 list's name comes from a folder listing and its domain from the `host_name` of its
config.pck; both are untrusted. `x/../victim@real.org` as a domain once turned one list's address
into another's REST URL. Each check returns the value unchanged or raises InvalidName, whose
message shows the value (repr) and says what is wrong; callers add which list and which field.

The rules are whole-value and ASCII only, spelled out per character rather than with a regular
expression: `$` accepts a trailing newline, `\\d` accepts other scripts' digits, and a
case-insensitive `[a-z]` accepts the Kelvin sign and the long s.
"""

from __future__ import annotations

import string

from .errors import MigrateError

# RFC 5321 4.5.3.1: a local part holds at most 64 octets, a domain 255 (253 written out without
# the root's trailing dot), a label 63 (RFC 1035 2.3.4).
LOCAL_PART_MAX = 64
DOMAIN_MAX = 253
LABEL_MAX = 63

# Mailman 2.1's ACCEPTABLE_LISTNAME_CHARACTERS, '[-+_.=a-z0-9]' (it lowercases names on creation).
_LIST_NAME_CHARS = frozenset(string.ascii_lowercase + string.digits + "-+_.=")
_LABEL_CHARS = frozenset(string.ascii_letters + string.digits + "-")


class InvalidName(MigrateError):
    """A name that must not reach a URL, a path or a command; `reason` says why."""

    def __init__(self, what: str, value: object, reason: str):
        self.what, self.value, self.reason = what, value, reason
        super().__init__(f"{what} {value!r} is not valid: {reason}")


def _first_problem(value: str) -> str | None:
    """What any name here must not hold, whatever its kind."""
    if value.endswith("\n"):
        return "it ends with a newline"
    for char in value:
        if not char.isascii():
            return f"it contains the non-ASCII character {char!r} (U+{ord(char):04X})"
        if char.isspace() or not char.isprintable():
            return f"it contains whitespace or a control character ({char!r})"
    if "/" in value:
        return "it contains '/'"
    return None


def _text(what: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidName(what, value, f"it is a {type(value).__name__}, not text")
    if not value:
        raise InvalidName(what, value, "it is empty")
    problem = _first_problem(value)
    if problem:
        raise InvalidName(what, value, problem)
    return value


def list_name_problem(value: str) -> str | None:
    """Why `value` cannot be a Mailman 2 list name (None if it can): the dot-string of RFC 5321 over
    the characters Mailman 2 allows, starting with a letter or digit so it is never an option."""
    if len(value) > LOCAL_PART_MAX:
        return f"it is {len(value)} characters long (at most {LOCAL_PART_MAX})"
    for char in value:
        if char not in _LIST_NAME_CHARS:
            if char in string.ascii_uppercase:
                return "it contains upper case letters (Mailman 2 list names are lower case)"
            return f"it contains {char!r}, which Mailman 2 list names cannot hold"
    if value[0] not in string.ascii_lowercase + string.digits:
        return "it does not start with a letter or a digit"
    if ".." in value or value.endswith("."):
        return "it has an empty part between dots"
    return None


def list_name(value: object, what: str = "list name") -> str:
    name = _text(what, value)
    problem = list_name_problem(name)
    if problem:
        raise InvalidName(what, value, problem)
    return name


def is_list_name(value: object) -> bool:
    try:
        list_name(value)
    except InvalidName:
        return False
    return True


def domain(value: object, what: str = "domain") -> str:
    """A host name as RFC 1035 (with RFC 1123's leading digits) writes it, without a trailing dot."""
    name = _text(what, value)
    labels = name.split(".")
    problem = None
    if any(not label for label in labels):
        problem = "it has an empty label (a leading, trailing or doubled '.')"
    elif len(name) > DOMAIN_MAX:
        problem = f"it is {len(name)} characters long (at most {DOMAIN_MAX})"
    else:
        for label in labels:
            bad = next((c for c in label if c not in _LABEL_CHARS), None)
            if bad is not None:
                problem = f"it contains {bad!r}, which a domain cannot hold"
            elif len(label) > LABEL_MAX:
                problem = f"its label {label[:20]!r}... is longer than {LABEL_MAX} characters"
            elif label.startswith("-") or label.endswith("-"):
                problem = f"its label {label!r} starts or ends with '-'"
            if problem:
                break
        else:
            if labels[-1].isdigit():
                problem = "it looks like an IP address, not a domain"
    if problem:
        raise InvalidName(what, value, problem)
    return name


def list_address(value: object, what: str = "list address") -> str:
    """`name@domain`: a Mailman 2 list name and a domain, as Mailman 3 addresses a list."""
    address = _text(what, value)
    local, at, host = address.partition("@")
    if not at:
        raise InvalidName(what, value, "it has no '@'")
    for part, check in ((local, list_name), (host, domain)):
        try:
            check(part)
        except InvalidName as exc:
            raise InvalidName(what, value, exc.reason) from None
    return address
