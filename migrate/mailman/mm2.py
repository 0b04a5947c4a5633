"""Read a Mailman 2.1 list's `config.pck` and `request.pck` from bytes into typed summaries.

The files are Python 2 pickles: `MailList.Save()` and `ListAdmin` write them with
`cPickle.dump(obj, fp, 1)` (binary protocol 1); files saved with Python 2's default, protocol 0,
are read too (see `pickle_guard`). A pickle is a program, so the unpickler here only
resolves classes under `Mailman.` and maps each to an inert stand-in; any other global (`os.system`,
`__builtin__.eval`, ...) stops the load before anything runs.

Text in these pickles comes in two kinds:
- Python 2 `str`: the bytes the web UI received, in the charset of the list's preferred language
  (`description`, `info`, `real_name`, `subject_prefix`, `msg_header`, `msg_footer`,
  `welcome_msg`, `goodbye_msg`, addresses, header filter patterns, held-message subjects). They
  come out of `load_config` as their latin-1 decoding (one character per byte, what
  `pickle.load(..., encoding='latin-1')` gives), and `decode_text` turns them into real text.
- Python 2 `unicode`: already text (member real names entered through some subscribe paths).
  They come out as `Py2Unicode`, a `str` that `decode_text` leaves alone.

Converting is lossy in places (unknown charsets, bytes that fit no charset, invalid regexps,
inconsistent rosters); the summaries report each such place as a `Problem` instead of printing it.
"""

from __future__ import annotations

import codecs
import io
import pickle
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..core.errors import MigrateError
from .pickle_guard import PickleRefused, check_opcodes, check_values, truncated


class Mailman2DataError(MigrateError):
    """A Mailman 2 file of a list cannot be read; nothing from it should be used."""

    def __init__(self, list_name: str, problem: str):
        self.list_name, self.problem = list_name, problem
        super().__init__(f"Mailman 2 list {list_name}: {problem}")


# The charset of each language as Mailman 2.1.39's Defaults.py declares it (`add_language(code,
# description, charset, direction)`). The web UI served a list's pages in this charset, so it is
# the charset of the bytes stored in the Python 2 str fields of config.pck.
LANGUAGE_CHARSETS: dict[str, str] = {
    "ar": "utf-8",
    "ast": "iso-8859-1",
    "ca": "utf-8",
    "cs": "iso-8859-2",
    "da": "iso-8859-1",
    "de": "iso-8859-1",
    "el": "iso-8859-7",
    "en": "us-ascii",
    "eo": "utf-8",
    "es": "iso-8859-1",
    "et": "iso-8859-15",
    "eu": "iso-8859-15",
    "fa": "utf-8",
    "fi": "iso-8859-1",
    "fr": "iso-8859-1",
    "gl": "utf-8",
    "he": "utf-8",
    "hr": "iso-8859-2",
    "hu": "iso-8859-2",
    "ia": "iso-8859-15",
    "it": "iso-8859-1",
    "ja": "euc-jp",
    "ko": "euc-kr",
    "lt": "iso-8859-13",
    "nl": "iso-8859-1",
    "no": "iso-8859-1",
    "pl": "iso-8859-2",
    "pt": "iso-8859-1",
    "pt_BR": "iso-8859-1",
    "ro": "utf-8",
    "ru": "utf-8",
    "sk": "utf-8",
    "sl": "iso-8859-2",
    "sr": "utf-8",
    "sv": "iso-8859-1",
    "tr": "iso-8859-9",
    "uk": "utf-8",
    "vi": "utf-8",
    "zh_CN": "utf-8",
    "zh_TW": "utf-8",
}

# Charsets early 2.1 releases used for a language that 2.1.39 serves in UTF-8, and languages those
# releases had under codes 2.1.39 dropped. Lists created then keep the old bytes in config.pck, so
# they are tried when the current charset cannot decode a value (2.1.0's Defaults.py: Russian
# koi8-r, 'big5' Traditional Chinese, 'gb' Simplified Chinese gb2312).
EARLIER_CHARSETS: dict[str, str] = {
    "ru": "koi8-r",
    "big5": "big5",
    "gb": "gb2312",
}

# Mailman 2.1 Defaults.py: bit flags of user_options[address].
OPTION_BITS: dict[int, str] = {
    1: "disable_delivery",  # obsolete since 2.1, where delivery_status holds the state
    2: "not_metoo",  # DontReceiveOwnPosts
    4: "acknowledge",  # AcknowledgePosts
    8: "digest_plain",  # DisableMime: plain (RFC 1153) digests, only meaningful for digest members
    16: "conceal",  # ConcealSubscription
    32: "suppress_password_reminder",
    64: "receive_nonmatching_topics",
    128: "moderated",  # Moderate
    256: "no_dupes",  # DontReceiveDuplicates
}

# Mailman 2.1 MemberAdaptor.py: the first item of delivery_status[address] = (status, time).
# A member absent from delivery_status is ENABLED (0).
DELIVERY_STATUS: dict[int, str] = {
    0: "enabled",
    1: "unknown",
    2: "by_user",
    3: "by_admin",
    4: "by_bounce",
}

# Mailman 2.1 Defaults.py action numbers as header_filter_rules stores them.
FILTER_ACTIONS: dict[int, str] = {
    0: "defer",
    1: "approve",
    2: "reject",
    3: "discard",
    6: "accept",
    7: "hold",
}

# The four sender filters for non-members (Mailman 2.1 Handlers/Moderate.py order).
NONMEMBER_ACTIONS: dict[str, str] = {
    "accept_these_nonmembers": "accept",
    "hold_these_nonmembers": "hold",
    "reject_these_nonmembers": "reject",
    "discard_these_nonmembers": "discard",
}

# Handlers/Moderate.py: generic_nonmember_action and member_moderation_action numbers.
GENERIC_NONMEMBER_ACTIONS: dict[int, str] = {0: "accept", 1: "hold", 2: "reject", 3: "discard"}
MEMBER_MODERATION_ACTIONS: dict[int, str] = {0: "hold", 1: "reject", 2: "discard"}

# Defaults.py DEFAULT_ARCHIVE_VOLUME_FREQUENCY: how pipermail splits the archive into volumes.
ARCHIVE_VOLUME_FREQUENCIES: dict[int, str] = {
    0: "yearly",
    1: "monthly",
    2: "quarterly",
    3: "weekly",
    4: "daily",
}

# Mailman 2.1 ListAdmin.py: request.pck maps an integer id to (type, data); the key 'version' maps
# to (IGN, REQUESTS_FILE_SCHEMA_VERSION).
REQUEST_TYPES: dict[int, str] = {
    0: "ignore",  # IGN: only the version pseudo-entry
    1: "held_message",  # HELDMSG: (time, sender, subject, reason, filename, msgdata)
    2: "subscription",  # SUBSCRIPTION: (time, address, fullname, password, digest, language)
    3: "unsubscription",  # UNSUBSCRIPTION: the address alone
}

# Keys every 2.1 config.pck has; a missing one is reported, not guessed.
EXPECTED_KEYS = ("real_name", "host_name", "preferred_language", "members", "digest_members", "owner")


class Py2Unicode(str):
    """Text the pickle held as a Python 2 `unicode` object: already decoded, never decoded again."""

    __slots__ = ()


class Mailman2Object:
    """Inert stand-in for an instance of a Mailman 2 class found in a pickle.

    It has no behaviour: the pickled state becomes attributes (text converted like the rest of
    the pickle), and arguments a pickle passes to the class, if any, are kept in `pickled_args`.
    """

    legacy_class = "Mailman"

    def __init__(self, *args: Any, **kwargs: Any):
        self.__dict__["pickled_args"] = args

    def __setstate__(self, state: Any) -> None:
        self.__dict__["pickled_state"] = state

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"<{self.legacy_class} {fields}>"


class BounceInfo(Mailman2Object):
    """Stand-in for `Mailman.Bouncer._BounceInfo`, the values of `bounce_info[address]`.

    Attributes as Mailman 2.1 sets them: member, score (float), date ((y, m, d) of the last
    bounce), noticesleft, lastnotice ((y, m, d)), cookie (None or the re-enable cookie).
    """

    legacy_class = "Mailman.Bouncer._BounceInfo"


_KNOWN_STAND_INS: dict[tuple[str, str], type[Mailman2Object]] = {
    ("Mailman.Bouncer", "_BounceInfo"): BounceInfo,
}
_generic_stand_ins: dict[tuple[str, str], type[Mailman2Object]] = {}


def stand_in_class(module: str, name: str) -> type[Mailman2Object]:
    """The inert class that replaces the Mailman 2 class `module.name` when unpickling."""
    key = (module, name)
    if key in _KNOWN_STAND_INS:
        return _KNOWN_STAND_INS[key]
    if key not in _generic_stand_ins:
        _generic_stand_ins[key] = type(name, (Mailman2Object,), {"legacy_class": f"{module}.{name}"})
    return _generic_stand_ins[key]


class _RefusedGlobal(pickle.UnpicklingError):
    def __init__(self, module: str, name: str):
        self.module, self.name = module, name
        super().__init__(f"{module}.{name}")


class _Mailman2Unpickler(pickle.Unpickler):
    # encoding='bytes' keeps Python 2 str (bytes) and unicode (str) apart; _as_text turns the
    # bytes into their latin-1 decoding afterwards, which is what encoding='latin-1' would give.
    def __init__(self, stream: io.BytesIO):
        super().__init__(stream, encoding="bytes")

    def find_class(self, module: str, name: str) -> Any:
        if module == "Mailman" or module.startswith("Mailman."):
            return stand_in_class(module, name)
        raise _RefusedGlobal(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not used by Mailman 2")


def _unpickle(data: bytes, *, list_name: str, what: str) -> Any:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"{what} must be given as bytes, not {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise Mailman2DataError(list_name, f"{what} is empty")
    try:
        check_opcodes(data, what=what)
    except PickleRefused as refused:
        raise Mailman2DataError(list_name, str(refused)) from None
    stream = io.BytesIO(data)
    try:
        with warnings.catch_warnings():
            # Python 2 kept an unknown escape in a protocol 0 STRING as it stood, and so does the
            # unpickler, with a DeprecationWarning that would only be noise in a run's output.
            warnings.simplefilter("ignore", DeprecationWarning)
            obj = _Mailman2Unpickler(stream).load()
    except _RefusedGlobal as refused:
        raise Mailman2DataError(
            list_name,
            f"{what} refers to {refused.module}.{refused.name}, which is not a Mailman 2 class; "
            "refusing to load it (a pickle can run any global it names)",
        ) from None
    except RecursionError:
        raise Mailman2DataError(list_name, f"{what} is nested too deeply to be a Mailman 2 file") from None
    except EOFError:
        raise Mailman2DataError(list_name, truncated(what)) from None
    except Exception as exc:  # a damaged pickle can fail with almost any exception type
        problem = f"{what} is not a readable pickle ({type(exc).__name__}: {exc})"
        raise Mailman2DataError(list_name, problem) from exc
    trailing = len(data) - stream.tell()
    if trailing:
        # Mailman writes the pickle and nothing else; extra bytes mean two writes got mixed up.
        raise Mailman2DataError(list_name, f"{what} has {trailing} bytes after the end of its pickle")
    try:
        check_values(obj, what=what, size=len(data))
    except PickleRefused as refused:
        advice = f"restore {what} from a backup, or leave the list out (--exclude {list_name})"
        raise Mailman2DataError(list_name, f"{refused}; {advice}") from None
    return _as_text(obj, {})


def _as_text(obj: Any, memo: dict[int, Any]) -> Any:
    """Python 2 str (bytes) → latin-1-decoded str, unicode → Py2Unicode, containers rebuilt."""
    if isinstance(obj, bytes):
        return obj.decode("latin-1")
    if isinstance(obj, str):
        return Py2Unicode(obj)
    key = id(obj)
    if key in memo:
        return memo[key]
    if isinstance(obj, list):
        items: list[Any] = []
        memo[key] = items
        items.extend(_as_text(item, memo) for item in obj)
        return items
    if isinstance(obj, tuple):
        converted = tuple(_as_text(item, memo) for item in obj)
        memo[key] = converted
        return converted
    if isinstance(obj, dict):
        mapping: dict[Any, Any] = {}
        memo[key] = mapping
        for k, v in obj.items():
            mapping[_as_text(k, memo)] = _as_text(v, memo)
        return mapping
    if isinstance(obj, Mailman2Object):
        memo[key] = obj
        attributes = obj.__dict__
        if "pickled_args" in attributes:
            attributes["pickled_args"] = _as_text(attributes["pickled_args"], memo)
        if "pickled_state" in attributes:
            state = _as_text(attributes.pop("pickled_state"), memo)
            if isinstance(state, dict) and all(isinstance(k, str) for k in state):
                attributes.update({str(k): v for k, v in state.items()})
            else:
                attributes["pickled_state"] = state
        return obj
    return obj


def load_config(data: bytes, *, list_name: str) -> dict[str, Any]:
    """Unpickle a list's config.pck into a dict of its attributes.

    Python 2 str values come back latin-1-decoded (pass them through `decode_text` with the list's
    charset), unicode values as `Py2Unicode`, Mailman 2 objects as inert stand-ins (`BounceInfo`).
    Raises Mailman2DataError for anything that is not a pickled dict or names a non-Mailman global.
    """
    config = _unpickle(data, list_name=list_name, what="config.pck")
    if not isinstance(config, dict):
        raise Mailman2DataError(
            list_name, f"config.pck holds a {type(config).__name__}, not the dict of list attributes"
        )
    odd_keys = [k for k in config if not isinstance(k, str)]
    if odd_keys:
        raise Mailman2DataError(list_name, f"config.pck has non-text attribute names: {odd_keys[:3]!r}")
    return config


def charset_for(language: str) -> str | None:
    """The charset Mailman 2.1 used for a language code (2.1.39's, else an early 2.1 one), or None."""
    return LANGUAGE_CHARSETS.get(language) or EARLIER_CHARSETS.get(language)


def decode_text(value: str, charset: str) -> str:
    """Turn a Python 2 str from a Mailman 2 pickle (latin-1-decoded) into text using `charset`.

    `Py2Unicode` values and strings with characters beyond U+00FF were never byte strings and are
    returned unchanged. Raises UnicodeDecodeError when the bytes are not valid in `charset` and
    LookupError for an unknown charset.
    """
    if isinstance(value, Py2Unicode):
        return str(value)
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:
        return value
    return raw.decode(charset)


@dataclass(frozen=True)
class Problem:
    """Something that did not convert cleanly: where, what kind, and what happened."""

    where: str  # e.g. "description", "members[bob@example.org]", "ban_list[2]"
    # "converted" (changed to fit), "lossy" (information may be lost), "dropped" (left out),
    # "invalid" (kept but unusable as is), "missing", "inconsistent" (contradicts other data)
    kind: str
    detail: str


def _single_byte(charset: str) -> bool:
    name = codecs.lookup(charset).name
    return name.startswith(("iso8859", "koi8", "cp125", "latin"))


def _decode_field(value: Any, *, charset: str, language: str, where: str, problems: list[Problem]) -> str:
    """decode_text with the fallbacks a migration needs, each one reported as a Problem."""
    if value is None:
        return ""
    if not isinstance(value, str):
        problems.append(Problem(where, "converted", f"expected text, found {type(value).__name__} {value!r}"))
        return str(value)
    if isinstance(value, Py2Unicode):
        return str(value)
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:
        return value
    if raw.isascii():
        return raw.decode("ascii")
    # Debian's 2.1.16+ packages moved most languages to UTF-8, so a de/fr/ru list there holds
    # UTF-8 bytes while its language still names a single-byte charset. Multi-byte UTF-8 sequences
    # almost never form in real single-byte text, so valid UTF-8 wins here.
    if charset != "utf-8" and _single_byte(charset):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            detail = f"bytes are UTF-8 although the list charset is {charset}; decoded as UTF-8"
            problems.append(Problem(where, "converted", detail))
            return text
    try:
        return raw.decode(charset)
    except (UnicodeDecodeError, LookupError):
        pass
    for fallback in (EARLIER_CHARSETS.get(language), "utf-8"):
        if not fallback or fallback == charset:
            continue
        try:
            text = raw.decode(fallback)
        except UnicodeDecodeError:
            continue
        problems.append(Problem(where, "converted", f"not valid {charset}; decoded as {fallback}"))
        return text
    problems.append(
        Problem(where, "lossy", f"not valid {charset} nor UTF-8; decoded as latin-1, characters may be wrong")
    )
    return raw.decode("latin-1")


@dataclass(frozen=True)
class Subscriber:
    """One member of a list, regular or digest, with everything Mailman 2 kept about them."""

    address: str  # as the member typed it (case preserved); rosters are keyed by address.lower()
    digest: bool
    digest_format: str | None  # "mime" or "plain" for digest members, None for regular ones
    options: frozenset[str]  # names from OPTION_BITS
    option_bits: int
    delivery: str  # a DELIVERY_STATUS name: "enabled" or why delivery is off
    disabled_at: float | None  # when delivery was switched off (epoch seconds)
    real_name: str
    language: str
    bounce_score: float | None

    @property
    def key(self) -> str:
        return self.address.lower()

    @property
    def nomail(self) -> bool:
        return self.delivery != "enabled"


@dataclass(frozen=True)
class AddressPattern:
    """An entry of a sender filter or the ban list: an address, a `^regexp` or an `@list`."""

    text: str
    kind: str  # "address", "regexp" (starts with ^) or "list" (@listname: members of that list)
    valid: bool = True


@dataclass(frozen=True)
class HeaderFilter:
    """One header_filter_rules entry: regexps (one per line) and the action when one matches."""

    patterns: tuple[str, ...]
    action: str  # a FILTER_ACTIONS name


@dataclass(frozen=True)
class ListSummary:
    """What a Mailman 2 list holds, in decoded text and named values, plus what did not convert."""

    name: str
    real_name: str
    host_name: str
    preferred_language: str
    charset: str
    description: str
    info: str
    subject_prefix: str
    msg_header: str
    msg_footer: str
    welcome_msg: str
    goodbye_msg: str
    subscribers: tuple[Subscriber, ...]
    owners: tuple[str, ...]
    moderators: tuple[str, ...]
    nonmembers: Mapping[str, tuple[AddressPattern, ...]]  # keyed by a NONMEMBER_ACTIONS action
    bans: tuple[AddressPattern, ...]
    header_filters: tuple[HeaderFilter, ...]
    generic_nonmember_action: str
    default_member_moderation: bool
    member_moderation_action: str
    archive: bool
    archive_private: bool
    archive_volume_frequency: int
    emergency: bool
    problems: tuple[Problem, ...] = field(default=())

    @property
    def members(self) -> tuple[str, ...]:
        """Regular (non-digest) members, case preserved."""
        return tuple(s.address for s in self.subscribers if not s.digest)

    @property
    def digest_members(self) -> tuple[str, ...]:
        return tuple(s.address for s in self.subscribers if s.digest)

    @property
    def nomail(self) -> dict[str, str]:
        """Address → why delivery is off, for members who get no mail."""
        return {s.address: s.delivery for s in self.subscribers if s.nomail}

    @property
    def archive_volume_period(self) -> str:
        return ARCHIVE_VOLUME_FREQUENCIES.get(self.archive_volume_frequency, "unknown")

    def subscriber(self, address: str) -> Subscriber:
        """The member with this address, compared case-insensitively as Mailman 2 does."""
        wanted = address.lower()
        for s in self.subscribers:
            if s.key == wanted:
                return s
        raise KeyError(address)


def _options(bits: int) -> tuple[frozenset[str], int]:
    names = frozenset(name for bit, name in OPTION_BITS.items() if bits & bit)
    unknown = bits & ~sum(OPTION_BITS)
    return names, unknown


def _pattern(text: str) -> AddressPattern:
    if text.startswith("^"):
        try:
            re.compile(text, re.IGNORECASE)
        except re.error:
            return AddressPattern(text, "regexp", valid=False)
        return AddressPattern(text, "regexp")
    if text.startswith("@"):
        return AddressPattern(text, "list")
    return AddressPattern(text, "address")


class _Reader:
    """Pulls typed values out of a config dict, recording every oddity as a Problem."""

    def __init__(self, config: Mapping[str, Any], *, charset: str, language: str):
        self.config, self.charset, self.language = config, charset, language
        self.problems: list[Problem] = []
        self.mappings: dict[str, Mapping[Any, Any]] = {}

    def report(self, where: str, kind: str, detail: str) -> None:
        self.problems.append(Problem(where, kind, detail))

    def text(self, key: str) -> str:
        """The decoded text of config[key]."""
        return self.decode(self.config.get(key), key)

    def decode(self, value: Any, where: str) -> str:
        return _decode_field(
            value, charset=self.charset, language=self.language, where=where, problems=self.problems
        )

    def mapping(self, key: str) -> Mapping[Any, Any]:
        if key not in self.mappings:
            value = self.config.get(key, {})
            if not isinstance(value, Mapping):
                self.report(key, "invalid", f"expected a dict, found {type(value).__name__}; ignored")
                value = {}
            self.mappings[key] = value
        return self.mappings[key]

    def sequence(self, key: str) -> list[Any]:
        value = self.config.get(key, [])
        if isinstance(value, (list, tuple)):
            return list(value)
        if isinstance(value, str):
            # A few 2.0-era lists stored these as newline-separated text.
            return [line for line in value.splitlines() if line.strip()]
        self.report(key, "invalid", f"expected a list, found {type(value).__name__}; ignored")
        return []

    def integer(self, key: str, default: int) -> int:
        value = self.config.get(key, default)
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            return value
        self.report(key, "invalid", f"expected a number, found {value!r}; using {default}")
        return default

    def named(self, key: str, table: Mapping[int, str], default: int) -> str:
        number = self.integer(key, default)
        if number in table:
            return table[number]
        self.report(key, "invalid", f"unknown value {number}; using {table[default]}")
        return table[default]

    def addresses(self, key: str) -> tuple[str, ...]:
        return tuple(self.decode(entry, f"{key}[{i}]") for i, entry in enumerate(self.sequence(key)) if entry)

    def patterns(self, key: str) -> tuple[AddressPattern, ...]:
        found = []
        for i, entry in enumerate(self.sequence(key)):
            text = self.decode(entry, f"{key}[{i}]").strip()
            if not text:
                continue
            pattern = _pattern(text)
            if not pattern.valid:
                self.report(f"{key}[{i}]", "invalid", f"regular expression {text!r} does not compile")
            found.append(pattern)
        return tuple(found)

    def header_filters(self) -> tuple[HeaderFilter, ...]:
        filters = []
        for i, rule in enumerate(self.sequence("header_filter_rules")):
            where = f"header_filter_rules[{i}]"
            # Mailman 2.1 stores (patterns, action, empty): newline-separated regexps, an action
            # number, and a flag the GUI uses for a blank row.
            if not (isinstance(rule, (tuple, list)) and len(rule) >= 2):
                self.report(where, "invalid", f"expected (patterns, action, empty), found {rule!r}")
                continue
            lines = tuple(line.strip() for line in self.decode(rule[0], where).splitlines())
            lines = tuple(line for line in lines if line)
            action = FILTER_ACTIONS.get(rule[1]) if isinstance(rule[1], int) else None
            if action is None:
                self.report(where, "invalid", f"unknown action {rule[1]!r}; rule kept with action 'unknown'")
                action = "unknown"
            for line in lines:
                try:
                    re.compile(line, re.IGNORECASE)
                except re.error:
                    self.report(where, "invalid", f"regular expression {line!r} does not compile")
            filters.append(HeaderFilter(lines, action))
        return tuple(filters)

    def subscribers(self) -> tuple[Subscriber, ...]:
        regular = self.mapping("members")
        digest = self.mapping("digest_members")
        both = set(regular) & set(digest)
        for key in sorted(both, key=str):
            self.report(f"members[{key}]", "inconsistent", "regular and digest member; kept as digest member")
        entries = [(key, value, False) for key, value in regular.items() if key not in both]
        entries += [(key, value, True) for key, value in digest.items()]
        result = [self.subscriber(key, value, is_digest) for key, value, is_digest in entries]
        keys = {s.key for s in result}
        for table in ("delivery_status", "user_options", "bounce_info"):
            for stray in sorted(str(k) for k in self.mapping(table) if str(k).lower() not in keys):
                self.report(f"{table}[{stray}]", "dropped", "entry for an address that is not a member")
        result.sort(key=lambda s: (s.digest, s.key))
        return tuple(result)

    def subscriber(self, key: Any, value: Any, is_digest: bool) -> Subscriber:
        roster = "digest_members" if is_digest else "members"
        key_text = self.decode(key, f"{roster}[{key!r}]")
        where = f"{roster}[{key_text}]"
        # The roster key is the lowercased address; the value is 0 when the member typed it in
        # lower case and the case-preserved address otherwise.
        address = key_text
        if isinstance(value, str) and value:
            address = self.decode(value, where)
            if address.lower() != key_text:
                self.report(where, "inconsistent", f"case-preserved address {address!r} differs from the key")
        bits = self.mapping("user_options").get(key, 0)
        if not isinstance(bits, int):
            self.report(where, "invalid", f"user_options {bits!r} is not a number; using 0")
            bits = 0
        options, unknown = _options(bits)
        if unknown:
            self.report(where, "dropped", f"unknown option bits {unknown:#x}")
        if "digest_plain" in options and not is_digest:
            self.report(where, "inconsistent", "plain-digest bit on a regular member, where it has no effect")
        delivery, disabled_at = "enabled", None
        status = self.mapping("delivery_status")
        if key in status:
            entry = status[key]
            code = entry[0] if isinstance(entry, (tuple, list)) and entry else entry
            if isinstance(entry, (tuple, list)) and len(entry) > 1 and isinstance(entry[1], (int, float)):
                disabled_at = float(entry[1])
            if isinstance(code, int) and code in DELIVERY_STATUS:
                delivery = DELIVERY_STATUS[code]
            else:
                delivery = "unknown"
                self.report(where, "invalid", f"unknown delivery status {entry!r}; treated as 'unknown'")
        score = getattr(self.mapping("bounce_info").get(key), "score", None)
        language = self.mapping("language").get(key) or self.language
        return Subscriber(
            address=address,
            digest=is_digest,
            digest_format=("plain" if "digest_plain" in options else "mime") if is_digest else None,
            options=options,
            option_bits=bits,
            delivery=delivery,
            disabled_at=disabled_at,
            real_name=self.decode(self.mapping("usernames").get(key), f"usernames[{key_text}]"),
            language=str(language),
            bounce_score=float(score) if isinstance(score, (int, float)) else None,
        )


def summarize_config(config: Mapping[str, Any], *, list_name: str, charset: str | None = None) -> ListSummary:
    """Build a ListSummary from a config dict returned by `load_config`.

    `charset` overrides the charset derived from the list's preferred language, for hosts whose
    Mailman 2 stored another one.
    """
    language = config.get("preferred_language")
    language = str(language) if isinstance(language, str) and language else "en"
    if charset is None:
        charset = charset_for(language)
        unknown_language = charset is None
        charset = charset or "utf-8"
    else:
        codecs.lookup(charset)
        unknown_language = False
    read = _Reader(config, charset=charset, language=language)
    for key in EXPECTED_KEYS:
        if key not in config:
            read.report(key, "missing", "not in config.pck")
    if unknown_language:
        read.report("preferred_language", "converted", f"unknown language {language!r}; assuming UTF-8 text")
    internal = config.get("_internal_name")
    if isinstance(internal, str) and internal and internal != list_name:
        read.report("_internal_name", "inconsistent", f"config names the list {internal!r}")
    frequency = read.integer("archive_volume_frequency", 1)
    if frequency not in ARCHIVE_VOLUME_FREQUENCIES:
        read.report("archive_volume_frequency", "invalid", f"unknown value {frequency}")
    return ListSummary(
        name=list_name,
        real_name=read.text("real_name"),
        host_name=read.text("host_name"),
        preferred_language=language,
        charset=charset,
        description=read.text("description"),
        info=read.text("info"),
        subject_prefix=read.text("subject_prefix"),
        msg_header=read.text("msg_header"),
        msg_footer=read.text("msg_footer"),
        welcome_msg=read.text("welcome_msg"),
        goodbye_msg=read.text("goodbye_msg"),
        subscribers=read.subscribers(),
        owners=read.addresses("owner"),
        moderators=read.addresses("moderator"),
        nonmembers={action: read.patterns(key) for key, action in NONMEMBER_ACTIONS.items()},
        bans=read.patterns("ban_list"),
        header_filters=read.header_filters(),
        generic_nonmember_action=read.named("generic_nonmember_action", GENERIC_NONMEMBER_ACTIONS, 1),
        default_member_moderation=bool(read.integer("default_member_moderation", 0)),
        member_moderation_action=read.named("member_moderation_action", MEMBER_MODERATION_ACTIONS, 0),
        archive=bool(read.integer("archive", 1)),
        archive_private=bool(read.integer("archive_private", 0)),
        archive_volume_frequency=frequency,
        emergency=bool(read.integer("emergency", 0)),
        problems=tuple(read.problems),
    )


def read_list(data: bytes, *, list_name: str, charset: str | None = None) -> ListSummary:
    """load_config + summarize_config: config.pck bytes straight to a ListSummary."""
    return summarize_config(load_config(data, list_name=list_name), list_name=list_name, charset=charset)


@dataclass(frozen=True)
class HeldMessage:
    """A post waiting for a moderator; its text is in the var dir's data/<filename>."""

    request_id: int
    received: float
    sender: str
    subject: str
    reason: str
    filename: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PendingSubscription:
    """A subscription waiting for approval. The password Mailman 2 stored in clear is left out."""

    request_id: int
    received: float
    address: str
    real_name: str
    digest: bool
    language: str


@dataclass(frozen=True)
class PendingUnsubscription:
    request_id: int
    address: str


@dataclass(frozen=True)
class Requests:
    """What request.pck holds: the decisions a moderator still owes before the cutover."""

    version: int | None
    held_messages: tuple[HeldMessage, ...]
    subscriptions: tuple[PendingSubscription, ...]
    unsubscriptions: tuple[PendingUnsubscription, ...]
    problems: tuple[Problem, ...] = ()

    @property
    def pending(self) -> int:
        return len(self.held_messages) + len(self.subscriptions) + len(self.unsubscriptions)


def _record_type(value: Any) -> tuple[int | None, Any, str | None]:
    """(type, data, note) of a request.pck value."""
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], int):
        return value[0], value[1], None
    # ListAdmin._UpdateRecords: 2.1.1 through 2.1.11 could store a bare 6-tuple without its type;
    # a digest flag (0 or 1) in slot 4 marks a subscription, anything else a held message.
    if isinstance(value, tuple) and len(value) == 6:
        rtype = 2 if value[4] in (0, 1) else 1
        return rtype, value, "stored without its request type (a 2.1.1-2.1.11 bug); type inferred"
    return None, value, None


def load_requests(data: bytes, *, list_name: str, charset: str = "utf-8", language: str = "en") -> Requests:
    """Summarise a list's request.pck: held posts, pending subscriptions and unsubscriptions.

    `charset` decodes the Python 2 str fields (subjects, reasons, names); pass the list's charset.
    """
    db = _unpickle(data, list_name=list_name, what="request.pck")
    if not isinstance(db, dict):
        raise Mailman2DataError(list_name, f"request.pck holds a {type(db).__name__}, not a dict of requests")
    problems: list[Problem] = []

    def text(value: Any, where: str) -> str:
        return _decode_field(value, charset=charset, language=language, where=where, problems=problems)

    version = None
    held: list[HeldMessage] = []
    subs: list[PendingSubscription] = []
    unsubs: list[PendingUnsubscription] = []
    for key, value in db.items():
        if key == "version":
            if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], int):
                version = value[1]
            else:
                problems.append(Problem("version", "invalid", f"expected (0, schema), found {value!r}"))
            continue
        where = f"request {key!r}"
        if not isinstance(key, int):
            problems.append(Problem(where, "dropped", "not an integer request id"))
            continue
        rtype, record, note = _record_type(value)
        if note:
            problems.append(Problem(where, "converted", note))
        kind = REQUEST_TYPES.get(rtype) if rtype is not None else None
        try:
            if kind == "held_message":
                # 2.0beta3 and later hold 6 fields; older records lack the msgdata dict.
                when, sender, subject, reason, filename, *rest = record
                held.append(
                    HeldMessage(
                        request_id=key,
                        received=float(when),
                        sender=text(sender, f"{where} sender"),
                        subject=text(subject, f"{where} subject"),
                        reason=text(reason, f"{where} reason"),
                        filename=text(filename, f"{where} filename"),
                        metadata=rest[0] if rest and isinstance(rest[0], dict) else {},
                    )
                )
            elif kind == "subscription":
                # 2.1a4+: (time, address, fullname, password, digest, language); 2.1a2 lacks
                # fullname, 2.0 also lacks language.
                if len(record) == 6:
                    when, address, fullname, _password, digest, lang = record
                elif len(record) == 5:
                    (when, address, _password, digest, lang), fullname = record, ""
                else:
                    (when, address, _password, digest), fullname, lang = record, "", language
                subs.append(
                    PendingSubscription(
                        request_id=key,
                        received=float(when),
                        address=text(address, f"{where} address"),
                        real_name=text(fullname, f"{where} real name"),
                        digest=bool(digest),
                        language=str(lang),
                    )
                )
            elif kind == "unsubscription":
                unsubs.append(PendingUnsubscription(request_id=key, address=text(record, f"{where} address")))
            else:
                problems.append(Problem(where, "dropped", f"unknown request record {value!r}"))
        except (TypeError, ValueError) as exc:
            problems.append(Problem(where, "dropped", f"malformed {kind} record ({exc}): {record!r}"))
    return Requests(
        version=version,
        held_messages=tuple(sorted(held, key=lambda r: r.request_id)),
        subscriptions=tuple(sorted(subs, key=lambda r: r.request_id)),
        unsubscriptions=tuple(sorted(unsubs, key=lambda r: r.request_id)),
        problems=tuple(problems),
    )
