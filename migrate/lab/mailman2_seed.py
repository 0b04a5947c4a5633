"""Generate a realistic Mailman 2.1 var dir: what the legacy host's /var/lib/mailman holds.

Mailman 2 runs on Python 2 only, so it cannot produce test data here; this module writes files of
the same shape, opcode for opcode:

    lists/<name>/config.pck      the list's attributes (MailList.Save: cPickle.dump(dict, fp, 1))
    lists/<name>/request.pck     pending requests (ListAdmin: cPickle.dump(db, fp, 1))
    data/heldmsg-<name>-<id>.txt the text of each held post (HOLD_MESSAGES_AS_PICKLES = No)

The pickles are written by a small Python 2 pickle writer rather than Python 3's pickle, because
Python 3 cannot write a Python 2 `str`: here `bytes` become Python 2 str (SHORT_BINSTRING /
BINSTRING opcodes, holding text in the list's charset), `Unicode` values become Python 2 unicode
(BINUNICODE), and `_BounceInfo` instances are written as Python 2 old-style instances of
`Mailman.Bouncer._BounceInfo`. A loader therefore meets exactly what a real config.pck gives it,
including the charset traps: `pickle.load(f, encoding='latin-1')` yields latin-1-decoded bytes,
`encoding='bytes'` yields the raw bytes, and a UTF-8 loader chokes on or drops iso-8859 text.

Fixed, well-known lists exercise each special case (see SPECIAL_LISTS); filler lists make up the
requested count. Output depends only on the arguments: the same seed gives identical bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import struct
import sys
import types
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

# Mailman 2.1 constants the generated data uses (Defaults.py, MemberAdaptor.py, ListAdmin.py).
NOT_METOO, ACKNOWLEDGE, DIGEST_PLAIN, CONCEAL = 2, 4, 8, 16
SUPPRESS_REMINDER, NONMATCHING_TOPICS, MODERATED, NO_DUPES = 32, 64, 128, 256
UNKNOWN, BY_USER, BY_ADMIN, BY_BOUNCE = 1, 2, 3, 4  # delivery_status codes; ENABLED (0) is absence
DEFER, APPROVE, REJECT, DISCARD, ACCEPT, HOLD = 0, 1, 2, 3, 6, 7  # header_filter_rules actions
IGN, HELDMSG, SUBSCRIPTION, UNSUBSCRIPTION = 0, 1, 2, 3  # request.pck record types
REQUESTS_FILE_SCHEMA_VERSION = 1
# Mailman 2.1.39 Version.py DATA_FILE_VERSION; MailList.Save() stores it as data_version.
DATA_FILE_VERSION = 112

DOMAIN = "lists.example.org"
EPOCH = 1_262_304_000  # 2010-01-01T00:00:00Z: generated timestamps count from here


class Unicode(str):
    """Text to pickle as a Python 2 `unicode` object rather than a byte string."""

    __slots__ = ()


class _BounceInfo:
    """Mailman 2.1's per-member bounce record, under the module and name Mailman gave it.

    Written as a Python 2 old-style instance; `mailman2_modules()` registers this class so a plain
    `pickle.load` can resolve `Mailman.Bouncer._BounceInfo` while reading generated pickles.
    """

    __module__ = "Mailman.Bouncer"
    py2_old_style = True

    def __init__(self, member: str, score: float, date: tuple[int, int, int], noticesleft: int):
        # Attribute order follows Mailman's __init__ and reset(); the pickle keeps it.
        self.member = member
        self.cookie: str | None = None
        self.score = score
        self.date = date
        self.noticesleft = noticesleft
        self.lastnotice = (1970, 1, 2)  # Bouncer.ZEROHOUR_PLUSONEDAY: "never notified"


@contextmanager
def mailman2_modules() -> Iterator[types.ModuleType]:
    """Make `Mailman.Bouncer._BounceInfo` importable for the duration of a plain pickle.load.

    Whatever `Mailman` / `Mailman.Bouncer` entries sys.modules had before are put back afterwards.
    """
    saved = {name: sys.modules.get(name) for name in ("Mailman", "Mailman.Bouncer")}
    package = types.ModuleType("Mailman")
    package.__path__ = []
    bouncer = types.ModuleType("Mailman.Bouncer")
    bouncer._BounceInfo = _BounceInfo
    package.Bouncer = bouncer
    sys.modules["Mailman"], sys.modules["Mailman.Bouncer"] = package, bouncer
    try:
        yield bouncer
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


class Py2Pickler:
    """Writes a pickle the way Python 2's cPickle did for protocol 1 (Mailman's choice) or 2.

    Types: None, bool, int, float, bytes (Python 2 str), `Unicode` (Python 2 unicode), ASCII-only
    str (Python 2 str), tuple, list, dict, and instances of classes flagged `py2_old_style`.
    """

    def __init__(self, protocol: int = 1):
        if protocol not in (1, 2):
            raise ValueError("Mailman 2 pickles use protocol 1 (or 2)")
        self.protocol = protocol
        self.out = bytearray()
        self.memo: dict[int, int] = {}
        self.alive: list[Any] = []  # memo keys are id()s: keep the objects so ids are not reused

    def dumps(self, obj: Any) -> bytes:
        if self.protocol == 2:
            self.out += b"\x80\x02"
        self._save(obj)
        self.out += b"."
        return bytes(self.out)

    def _put(self, obj: Any) -> None:
        index = len(self.memo)
        self.memo[id(obj)] = index
        self.alive.append(obj)
        self.out += b"q" + bytes([index]) if index < 256 else b"r" + struct.pack("<I", index)

    def _get(self, index: int) -> None:
        self.out += b"h" + bytes([index]) if index < 256 else b"j" + struct.pack("<I", index)

    def _save(self, obj: Any) -> None:
        if obj is None:
            self.out += b"N"
        elif isinstance(obj, bool):
            # Python 2.3+: NEWTRUE/NEWFALSE from protocol 2, the INT forms 01/00 before.
            if self.protocol == 2:
                self.out += b"\x88" if obj else b"\x89"
            else:
                self.out += b"I01\n" if obj else b"I00\n"
        elif isinstance(obj, int):
            self._save_int(obj)
        elif isinstance(obj, float):
            self.out += b"G" + struct.pack(">d", obj)
        elif id(obj) in self.memo:
            self._get(self.memo[id(obj)])
        elif isinstance(obj, Unicode):
            data = obj.encode("utf-8")
            self.out += b"X" + struct.pack("<I", len(data)) + data
            self._put(obj)
        elif isinstance(obj, (bytes, str)):
            data = obj if isinstance(obj, bytes) else obj.encode("ascii")
            if len(data) < 256:
                self.out += b"U" + bytes([len(data)]) + data
            else:
                self.out += b"T" + struct.pack("<i", len(data)) + data
            self._put(obj)
        elif isinstance(obj, tuple):
            self._save_tuple(obj)
        elif isinstance(obj, list):
            self.out += b"]"
            self._put(obj)
            self._batch(obj, b"a", b"e", lambda item: self._save(item))
        elif isinstance(obj, dict):
            self.out += b"}"
            self._put(obj)
            self._batch(list(obj.items()), b"s", b"u", lambda kv: (self._save(kv[0]), self._save(kv[1])))
        elif getattr(type(obj), "py2_old_style", False):
            # pickle.py save_inst in binary mode: MARK, class, OBJ, then the __dict__ and BUILD.
            cls = type(obj)
            self.out += b"("
            if id(cls) in self.memo:
                self._get(self.memo[id(cls)])
            else:
                self.out += b"c%s\n%s\n" % (cls.__module__.encode("ascii"), cls.__name__.encode("ascii"))
                self._put(cls)
            self.out += b"o"
            self._put(obj)
            self._save(dict(vars(obj)))
            self.out += b"b"
        else:
            raise TypeError(f"cannot write {type(obj).__name__} into a Mailman 2 pickle")

    def _save_int(self, value: int) -> None:
        if 0 <= value <= 0xFF:
            self.out += b"K" + bytes([value])
        elif 0 <= value <= 0xFFFF:
            self.out += b"M" + struct.pack("<H", value)
        elif -(2**31) <= value < 2**31:
            self.out += b"J" + struct.pack("<i", value)
        else:
            self.out += b"I" + str(value).encode("ascii") + b"\n"

    def _save_tuple(self, obj: tuple) -> None:
        if not obj:
            self.out += b")"
            return
        if self.protocol == 2 and len(obj) <= 3:
            for item in obj:
                self._save(item)
            self.out += (b"\x85", b"\x86", b"\x87")[len(obj) - 1]
        else:
            self.out += b"("
            for item in obj:
                self._save(item)
            self.out += b"t"
        self._put(obj)

    def _batch(self, items: Sequence[Any], single: bytes, many: bytes, save: Any) -> None:
        # Python 2 pickles containers in batches of 1000 (pickle.py _BATCHSIZE).
        for start in range(0, len(items), 1000):
            chunk = items[start : start + 1000]
            if len(chunk) == 1:
                save(chunk[0])
                self.out += single
            else:
                self.out += b"("
                for item in chunk:
                    save(item)
                self.out += many


def py2_pickle(obj: Any, protocol: int = 1) -> bytes:
    """The bytes Python 2's cPickle.dump(obj, fp, protocol) would have written for `obj`."""
    return Py2Pickler(protocol).dumps(obj)


@dataclass(frozen=True)
class SpecialList:
    """A fixed list of the generated tree and the cases it exercises."""

    name: str
    language: str
    charset: str  # the charset its text fields are stored in
    covers: tuple[str, ...]


SPECIAL_LISTS: dict[str, SpecialList] = {
    s.name: s
    for s in (
        SpecialList("kultur-de", "de", "iso-8859-1", (
            "latin-1 description and info (German)", "member real name as latin-1 str",
            "custom msg_header, msg_footer, welcome_msg, goodbye_msg",
            "HTML entity for a character outside the charset",
            "public archive", "archive_volume_frequency 1 (monthly)",
        )),
        SpecialList("cuisine-fr", "fr", "iso-8859-1", (
            "latin-1 description and info (French)", "private archive", "archive_volume_frequency 0 (yearly)",
        )),
        SpecialList("charla-es", "es", "iso-8859-1", (
            "latin-1 description and info (Spanish)", "public archive",
            "archive_volume_frequency 2 (quarterly)",
        )),
        SpecialList("dyskusja-pl", "pl", "iso-8859-2", (
            "iso-8859-2 description and info (Polish)", "private archive",
            "archive_volume_frequency 3 (weekly)",
        )),
        SpecialList("nihongo-ja", "ja", "euc-jp", (
            "euc-jp description and info (Japanese)", "public archive", "archive_volume_frequency 4 (daily)",
        )),
        SpecialList("novosti-ru", "ru", "koi8-r", (
            "koi8-r description and info (Russian, stored before 2.1 switched Russian to UTF-8)",
        )),
        SpecialList("tieng-viet", "vi", "utf-8", ("UTF-8 description and info (Vietnamese)",)),
        SpecialList("debian-utf8-de", "de", "utf-8", (
            "UTF-8 bytes in a German (iso-8859-1) list, as Debian's 2.1.16+ packages stored them",
        )),
        SpecialList("roster-cases", "en", "us-ascii", (
            "regular members", "digest members (plain and MIME)",
            "nomail members for each reason (unknown, by user, by admin, by bounce)",
            "each option bit (not-metoo, acknowledge, digest plain, conceal, no reminder,"
            " nonmatching topics, moderated, nodupes)",
            "case-preserved addresses", "bounce_info with _BounceInfo instances",
            "real names as Python 2 unicode", "several owners and moderators",
        )),
        SpecialList("moderation-rules", "en", "us-ascii", (
            "nonmember accept/hold/reject/discard as addresses, ^regexps and @list references",
            "bans as addresses and regexps, including the invalid regexp ^[unclosed",
            "header_filter_rules with every action", "default member moderation",
        )),
        SpecialList("emergency-stop", "en", "us-ascii", ("emergency moderation on", "archiving off")),
        SpecialList("held-requests", "en", "us-ascii", (
            "request.pck with held posts, pending subscriptions and a pending unsubscription",
            "data/heldmsg-*.txt message files",
        )),
    )
}

_FIRST = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
          "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "xena", "yann", "zoe")
_LAST = ("smith", "jones", "garcia", "mueller", "rossi", "dubois", "novak", "kowalski", "tanaka", "ivanov")
_DOMAINS = ("example.com", "example.net", "example.org", "mail.example.de", "uni.example.edu")


def _enc(text: str, charset: str) -> bytes:
    """A Python 2 str as the web UI stored it: the text encoded in the list's charset."""
    return text.encode(charset)


@dataclass
class _Roster:
    """The member attributes of one config.pck, filled the way OldStyleMemberships fills them."""

    language: str
    members: dict[str, Any] = field(default_factory=dict)
    digest_members: dict[str, Any] = field(default_factory=dict)
    user_options: dict[str, int] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)
    languages: dict[str, str] = field(default_factory=dict)
    usernames: dict[str, Any] = field(default_factory=dict)
    delivery_status: dict[str, tuple[int, float]] = field(default_factory=dict)
    bounce_info: dict[str, _BounceInfo] = field(default_factory=dict)

    def __contains__(self, address: str) -> bool:
        return address.lower() in self.members or address.lower() in self.digest_members

    def __len__(self) -> int:
        return len(self.members) + len(self.digest_members)

    def add(self, rng: random.Random, address: str, *, digest: bool = False, options: int = 0,
            status: int | None = None, when: float = 0.0, real_name: Any = None,
            language: str | None = None) -> str:
        key = address.lower()
        # Rosters are keyed by the lowercased address; the value is 0, or the address as typed
        # when that differs in case.
        roster = self.digest_members if digest else self.members
        roster[key] = 0 if key == address else address
        self.user_options[key] = options
        self.passwords[key] = "".join(rng.choice("abcdefghijkmnopqrstuvwxyz23456789") for _ in range(8))
        self.languages[key] = language or self.language
        if real_name is not None:
            self.usernames[key] = real_name
        if status is not None:
            self.delivery_status[key] = (status, when)
        return key

    def attributes(self) -> dict[str, Any]:
        def ordered(d: dict[str, Any]) -> dict[str, Any]:
            return {k: d[k] for k in sorted(d)}

        return {
            "members": ordered(self.members),
            "digest_members": ordered(self.digest_members),
            "user_options": ordered(self.user_options),
            "passwords": ordered(self.passwords),
            "language": ordered(self.languages),
            "usernames": ordered(self.usernames),
            "delivery_status": ordered(self.delivery_status),
            "bounce_info": ordered(self.bounce_info),
        }


def _random_address(rng: random.Random, roster: _Roster) -> str:
    while True:
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        address = f"{first}.{last}{rng.randrange(100)}@{rng.choice(_DOMAINS)}"
        if rng.random() < 0.1:
            address = f"{first.title()}.{last.title()}{rng.randrange(100)}@{rng.choice(_DOMAINS).upper()}"
        if address not in roster:
            return address


def _fill(rng: random.Random, roster: _Roster, total: int) -> None:
    """Add ordinary members until the roster holds `total` (a few digest, a few with options)."""
    while len(roster) < total:
        digest = rng.random() < 0.2
        options = 0
        if digest and rng.random() < 0.5:
            options |= DIGEST_PLAIN
        if rng.random() < 0.15:
            options |= rng.choice((NOT_METOO, ACKNOWLEDGE, CONCEAL, NO_DUPES))
        roster.add(rng, _random_address(rng, roster), digest=digest, options=options)


def _base_config(name: str, *, language: str, charset: str, when: float, archive_private: int = 0,
                 archive_volume_frequency: int = 1) -> dict[str, Any]:
    """The attributes MailList.Save() writes, with Mailman 2.1 defaults where a case needs none."""
    ascii_prefix = charset == "us-ascii"
    return {
        "data_version": DATA_FILE_VERSION,
        "_internal_name": name,
        "real_name": name.capitalize(),
        "host_name": DOMAIN,
        "web_page_url": f"http://{DOMAIN}/mailman/",
        "preferred_language": language,
        "available_languages": sorted({"en", language}),
        "description": "",
        "info": "",
        "subject_prefix": f"[{name.capitalize()}] ",
        "msg_header": "",
        "msg_footer": (
            "_______________________________________________\n"
            "%(real_name)s mailing list\n%(real_name)s@%(host_name)s\n"
            "%(web_page_url)slistinfo%(cgiext)s/%(_internal_name)s\n"
        ),
        "digest_header": "",
        "digest_footer": "%(real_name)s mailing list\n%(real_name)s@%(host_name)s\n",
        "welcome_msg": "",
        "goodbye_msg": "",
        "send_welcome_msg": True,
        "send_goodbye_msg": True,
        "owner": [f"{name}-admin@{DOMAIN}"],
        "moderator": [],
        "password": hashlib.sha1(f"admin-{name}".encode()).hexdigest(),
        "mod_password": None,
        "post_password": None,
        "advertised": True,
        "subscribe_policy": 1,
        "unsubscribe_policy": 0,
        "private_roster": 1,
        "generic_nonmember_action": 1,
        "default_member_moderation": False,
        "member_moderation_action": 0,
        "member_moderation_notice": "",
        "accept_these_nonmembers": [],
        "hold_these_nonmembers": [],
        "reject_these_nonmembers": [],
        "discard_these_nonmembers": [],
        "forward_auto_discards": True,
        "ban_list": [],
        "header_filter_rules": [],
        "emergency": False,
        "archive": True,
        "archive_private": archive_private,
        "archive_volume_frequency": archive_volume_frequency,
        "max_message_size": 40,
        "reply_goes_to_list": 0,
        "reply_to_address": "",
        "first_strip_reply_to": False,
        "include_rfc2369_headers": True,
        "nondigestable": True,
        "digestable": True,
        "digest_is_default": False,
        "mime_is_default_digest": False,
        "digest_size_threshhold": 30,
        "bounce_processing": True,
        "bounce_score_threshold": 5.0,
        "bounce_info_stale_after": 604800,
        "new_member_options": 256,
        "encode_ascii_prefixes": 0 if ascii_prefix else 2,
        "topics": [],
        "topics_enabled": 0,
        "topics_userinterest": {},
        "acceptable_aliases": "",
        "next_request_id": 1,
        "created_at": when,
        "last_post_time": when + 86400 * 900,
    }


def _texts(config: dict[str, Any], charset: str, **fields: str) -> None:
    for key, text in fields.items():
        config[key] = _enc(text, charset)


# Text of the language lists: (real_name, description, info). Only characters the list's charset
# holds, except where a case calls for something else.
_LANGUAGE_TEXT: dict[str, tuple[str, str, str]] = {
    "kultur-de": (
        "Kultur-DE",
        "Kulturverein Müller café ñ: Grüße aus Köln",
        "Willkommen beim Kulturverein!\nÄnderungen der Öffnungszeiten, Straßenfest, Größe der Säle.\n"
        # Mailman 2 turned characters outside the list charset into HTML character references.
        "Jahresbeitrag: 25 &#8364;\n",
    ),
    "cuisine-fr": (
        "Cuisine-FR",
        "Recettes: crème brûlée, pâté, façon grand-mère",
        "Liste de diffusion des gourmets.\n"
        "Échanges de recettes, déjà testées à Noël, où qu'on soit.\n",
    ),
    "charla-es": (
        "Charla-ES",
        "Charla en español: año, niño, ¿qué tal? ¡olé!",
        "Lista para hablar de todo.\nSeñales, canción, corazón, pingüino.\n",
    ),
    "dyskusja-pl": (
        "Dyskusja-PL",
        "Zażółć gęślą jaźń",
        "Lista dyskusyjna.\nŁódź, Gdańsk, Kraków, Wrocław: źdźbło, żółw, śnieg.\n",
    ),
    "nihongo-ja": (
        "Nihongo-JA",
        "日本語のメーリングリスト",
        "これは日本語で話すためのリストです。\n質問はお気軽にどうぞ。\n",
    ),
    "novosti-ru": (
        "Novosti-RU",
        "Новости и обсуждения",
        "Добро пожаловать в список рассылки.\n"
        "Пишите по-русски, ёлки-палки!\n",
    ),
    "tieng-viet": (
        "Tieng-Viet",
        "Diễn đàn tiếng Việt",
        "Chào mừng các bạn đến với diễn đàn.\n"
        "Xin vui lòng viết bằng tiếng Việt có dấu.\n",
    ),
    "debian-utf8-de": (
        "Debian-UTF8-DE",
        "Größe, Übung, Straße – in UTF-8 gespeichert",
        "Diese Liste lief auf Debians Mailman-Paket ab 2.1.16.\nUmlaute: äöü ÄÖÜ ß, Euro: €\n",
    ),
}

_LANGUAGE_ARCHIVES: dict[str, tuple[int, int]] = {  # name → (archive_private, archive_volume_frequency)
    "kultur-de": (0, 1),
    "cuisine-fr": (1, 0),
    "charla-es": (0, 2),
    "dyskusja-pl": (1, 3),
    "nihongo-ja": (0, 4),
    "novosti-ru": (0, 1),
    "tieng-viet": (1, 1),
    "debian-utf8-de": (0, 1),
}


def _language_list(rng: random.Random, spec: SpecialList, members: int, when: float) -> tuple[dict, dict]:
    private, frequency = _LANGUAGE_ARCHIVES[spec.name]
    config = _base_config(spec.name, language=spec.language, charset=spec.charset, when=when,
                          archive_private=private, archive_volume_frequency=frequency)
    real_name, description, info = _LANGUAGE_TEXT[spec.name]
    config["real_name"] = real_name
    _texts(config, spec.charset, description=description, info=info)
    roster = _Roster(spec.language)
    if spec.name == "kultur-de":
        _texts(
            config, spec.charset,
            msg_header="Kulturverein Köln - Mitteilungen an alle Mitglieder\n",
            msg_footer=(
                "-- \nKulturverein Köln e.V., Vorsitzende: Jürgen Weiß\n"
                "%(web_page_url)slistinfo/%(_internal_name)s\n"
            ),
            welcome_msg="Herzlich willkommen! Bitte lesen Sie die Regeln über Höflichkeit.",
            goodbye_msg="Schade, dass Sie gehen. Auf Wiedersehen!",
            subject_prefix="[Kultur-DE] ",
        )
        # A name typed into the web UI is a Python 2 str in the list charset.
        roster.add(rng, "juergen.weiss@example.de", real_name=_enc("Jürgen Weiß", spec.charset))
    config["owner"] = [f"owner@{DOMAIN}", f"{spec.name}-owner@example.com"]
    _fill(rng, roster, members)
    config.update(roster.attributes())
    return config, {"version": (IGN, REQUESTS_FILE_SCHEMA_VERSION)}


def _roster_cases(rng: random.Random, spec: SpecialList, members: int, when: float) -> tuple[dict, dict]:
    config = _base_config(spec.name, language="en", charset=spec.charset, when=when)
    config["real_name"] = "Roster-Cases"
    config["description"] = "Every kind of Mailman 2 membership"
    config["owner"] = [f"owner@{DOMAIN}", "Second.Owner@Example.COM", "third-owner@example.net"]
    config["moderator"] = ["moderator@example.org", "Other.Moderator@Example.NET"]
    roster = _Roster("en")
    day = 86400.0
    roster.add(rng, "regular.member@example.com", real_name="Regular Member")
    roster.add(rng, "Alice.Example@Example.ORG", real_name="Alice Example")
    roster.add(rng, "Bob.CamelCase@Example.com", digest=True)
    roster.add(rng, "digest.plain@example.com", digest=True, options=DIGEST_PLAIN)
    roster.add(rng, "digest.mime@example.com", digest=True)
    roster.add(rng, "nomail.unknown@example.com", status=UNKNOWN, when=when + 10 * day)
    roster.add(rng, "nomail.byuser@example.com", status=BY_USER, when=when + 20 * day)
    roster.add(rng, "nomail.byadmin@example.com", status=BY_ADMIN, when=when + 30 * day)
    bouncing = roster.add(rng, "nomail.bybounce@example.com", status=BY_BOUNCE, when=when + 40 * day)
    roster.add(rng, "opt.notmetoo@example.com", options=NOT_METOO)
    roster.add(rng, "opt.ack@example.com", options=ACKNOWLEDGE)
    roster.add(rng, "opt.conceal@example.com", options=CONCEAL)
    roster.add(rng, "opt.noreminder@example.com", options=SUPPRESS_REMINDER)
    roster.add(rng, "opt.nmtopics@example.com", options=NONMATCHING_TOPICS)
    roster.add(rng, "opt.moderated@example.com", options=MODERATED)
    roster.add(rng, "opt.nodupes@example.com", options=NO_DUPES)
    roster.add(rng, "opt.all@example.com", digest=True,
               options=NOT_METOO | ACKNOWLEDGE | DIGEST_PLAIN | CONCEAL | MODERATED | NO_DUPES)
    # Names entered through the subscribe form may be Python 2 unicode objects, including ones whose
    # characters all fit latin-1 (a reader must not decode those a second time).
    roster.add(rng, "lukasz@example.pl", real_name=Unicode("Łukasz Żółkiewski"), language="pl")
    roster.add(rng, "jose@example.es", real_name=Unicode("José Müller"), language="es")
    disabled = _BounceInfo(bouncing, 5.0, (2011, 3, 2), 0)
    disabled.cookie = "6c3f2f1e0c9a4b7d8e5f"
    disabled.lastnotice = (2011, 3, 9)
    roster.bounce_info[bouncing] = disabled
    # A member with a first bounce on record and delivery still on: the usual case.
    bounced_once = "regular.member@example.com"
    roster.bounce_info[bounced_once] = _BounceInfo(bounced_once, 1.0, (2011, 4, 1), 3)
    _fill(rng, roster, members)
    config.update(roster.attributes())
    return config, {"version": (IGN, REQUESTS_FILE_SCHEMA_VERSION)}


def _moderation_rules(rng: random.Random, spec: SpecialList, members: int, when: float) -> tuple[dict, dict]:
    config = _base_config(spec.name, language="en", charset=spec.charset, when=when)
    config["real_name"] = "Moderation-Rules"
    config["description"] = "Sender filters, bans and header filters"
    config["default_member_moderation"] = True
    config["member_moderation_action"] = 1
    config["generic_nonmember_action"] = 2
    config["accept_these_nonmembers"] = ["friend@partner.example", "^.*@trusted\\.example$", "@kultur-de"]
    config["hold_these_nonmembers"] = ["newsletter@vendor.example", "^.*@freemail\\.example$"]
    config["reject_these_nonmembers"] = ["troll@example.net", "^troll[0-9]+@.*"]
    config["discard_these_nonmembers"] = ["spam@spam.example", "^.*@(spam|junk)\\.example$"]
    config["ban_list"] = ["banned@example.com", "^.*@banned\\.example$", "^[unclosed"]
    # (newline-separated regexps, action, empty): the third slot is the GUI's "blank row" flag.
    config["header_filter_rules"] = [
        ("X-Spam-Flag: YES", HOLD, False),
        ("^Subject:.*viagra\n^X-Spam-Score: \\*{5,}", DISCARD, False),
        ("^From:.*@spam\\.example", REJECT, False),
        ("^X-Trusted-Relay: yes", ACCEPT, False),
        ("^X-Approved-By: board", APPROVE, False),
        ("^X-Review: later", DEFER, False),
    ]
    roster = _Roster("en")
    roster.add(rng, "moderated.member@example.com", options=MODERATED)
    _fill(rng, roster, members)
    config.update(roster.attributes())
    return config, {"version": (IGN, REQUESTS_FILE_SCHEMA_VERSION)}


def _emergency_stop(rng: random.Random, spec: SpecialList, members: int, when: float) -> tuple[dict, dict]:
    config = _base_config(spec.name, language="en", charset=spec.charset, when=when)
    config["real_name"] = "Emergency-Stop"
    config["description"] = "A list under emergency moderation"
    config["emergency"] = True
    config["archive"] = False
    roster = _Roster("en")
    _fill(rng, roster, members)
    config.update(roster.attributes())
    return config, {"version": (IGN, REQUESTS_FILE_SCHEMA_VERSION)}


def _held_message(list_name: str, request_id: int, sender: str, subject: str, when: float) -> bytes:
    date = f"Mon, {1 + request_id:02d} Mar 2014 10:{request_id:02d}:00 +0000"
    return (
        f"From {sender}  Mon Mar {1 + request_id:2d} 10:{request_id:02d}:00 2014\n"
        f"Return-Path: <{sender}>\nFrom: {sender}\nTo: {list_name}@{DOMAIN}\n"
        f"Subject: {subject}\nDate: {date}\n"
        f"Message-ID: <held-{request_id}.{int(when)}@example.net>\n"
        "MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n"
        f"Held message {request_id} for {list_name}.\n"
    ).encode("ascii")


def _held_requests(
    rng: random.Random, spec: SpecialList, members: int, when: float
) -> tuple[dict, dict, dict[str, bytes]]:
    config = _base_config(spec.name, language="en", charset=spec.charset, when=when)
    config["real_name"] = "Held-Requests"
    config["description"] = "A list with work waiting in the moderation queue"
    config["subscribe_policy"] = 2
    config["unsubscribe_policy"] = 1
    roster = _Roster("en")
    roster.add(rng, "leaver@example.com")
    _fill(rng, roster, members)
    config.update(roster.attributes())
    day = 86400.0
    held = [
        (1, "stranger@example.net", "Buy cheap watches", "Post by non-member to a members-only list"),
        (2, "leaver@example.com", "=?iso-8859-1?q?Gr=FC=DFe_aus_K=F6ln?=",
         "Message body is too big: 61234 bytes with a limit of 40 KB"),
        (3, "someone@example.org", "Re: meeting", "Message has implicit destination"),
    ]
    db: dict[Any, Any] = {"version": (IGN, REQUESTS_FILE_SCHEMA_VERSION)}
    files: dict[str, bytes] = {}
    for request_id, sender, subject, reason in held:
        received = when + request_id * day
        filename = f"heldmsg-{spec.name}-{request_id}.txt"
        metadata = {"listname": spec.name, "tolist": 1, "received_time": received, "version": 3}
        db[request_id] = (HELDMSG, (received, sender, subject, reason, filename, metadata))
        files[filename] = _held_message(spec.name, request_id, sender, subject, received)
    db[4] = (SUBSCRIPTION, (when + 4 * day, "newbie@example.org", "New Bie", "s3cret", 0, "en"))
    fan_name = Unicode("Zoë Digest")
    db[5] = (SUBSCRIPTION, (when + 5 * day, "Digest.Fan@Example.com", fan_name, "pa55", 1, "de"))
    db[6] = (UNSUBSCRIPTION, "leaver@example.com")
    config["next_request_id"] = 7
    return config, db, files


_FILLER_LANGUAGES = (("en", "us-ascii"), ("en", "us-ascii"), ("en", "us-ascii"), ("de", "iso-8859-1"),
                     ("fr", "iso-8859-1"), ("es", "iso-8859-1"), ("nl", "iso-8859-1"), ("it", "iso-8859-1"))


def _filler(rng: random.Random, name: str, members: int, when: float) -> tuple[dict, dict]:
    language, charset = rng.choice(_FILLER_LANGUAGES)
    private, frequency = rng.choice((0, 0, 1)), rng.choice((1, 1, 1, 0, 2))
    config = _base_config(name, language=language, charset=charset, when=when,
                          archive_private=private, archive_volume_frequency=frequency)
    config["description"] = f"{name.replace('-', ' ').title()} discussion"
    config["info"] = "A general discussion list.\n"
    roster = _Roster(language)
    _fill(rng, roster, members)
    config.update(roster.attributes())
    return config, {"version": (IGN, REQUESTS_FILE_SCHEMA_VERSION)}


def generate_tree(var_dir: Path, *, lists: int = 12, members: int = 40, seed: int = 1) -> list[str]:
    """Write a Mailman 2.1 var dir under `var_dir` and return the names of the lists written.

    All SPECIAL_LISTS are always written; filler lists (`team-01`, ...) bring the total up to
    `lists`. Each list has `members` members, or more where its fixed cases need more.
    """
    if lists < 0 or members < 0:
        raise ValueError("lists and members must not be negative")
    rng = random.Random(seed)
    var_dir = Path(var_dir)
    names: list[str] = []
    held_files: dict[str, bytes] = {}
    builders = {
        "roster-cases": _roster_cases,
        "moderation-rules": _moderation_rules,
        "emergency-stop": _emergency_stop,
    }
    for index, spec in enumerate(SPECIAL_LISTS.values()):
        when = EPOCH + index * 86400 * 31
        if spec.name == "held-requests":
            config, requests, files = _held_requests(rng, spec, members, when)
            held_files.update(files)
        elif spec.name in builders:
            config, requests = builders[spec.name](rng, spec, members, when)
        else:
            config, requests = _language_list(rng, spec, members, when)
        _write_list(var_dir, spec.name, config, requests)
        names.append(spec.name)
    for number in range(1, lists - len(SPECIAL_LISTS) + 1):
        name = f"team-{number:02d}"
        config, requests = _filler(rng, name, members, EPOCH + (len(names) + number) * 86400 * 17)
        _write_list(var_dir, name, config, requests)
        names.append(name)
    data_dir = var_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    for filename, text in held_files.items():
        (data_dir / filename).write_bytes(text)
    return names


def _write_list(var_dir: Path, name: str, config: dict[str, Any], requests: dict[Any, Any]) -> None:
    list_dir = var_dir / "lists" / name
    list_dir.mkdir(parents=True, exist_ok=True)
    (list_dir / "config.pck").write_bytes(py2_pickle(config))
    (list_dir / "request.pck").write_bytes(py2_pickle(requests))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m migrate.lab.mailman2_seed",
        description="Write a realistic Mailman 2.1 var dir: lists/*/config.pck, request.pck, data/heldmsg-*.",
    )
    parser.add_argument("var_dir", type=Path, help="the var dir to write into (created if missing)")
    parser.add_argument("--lists", type=int, default=12,
                        help="total number of lists (the special lists are always written)")
    parser.add_argument("--members", type=int, default=40, help="members per list")
    parser.add_argument("--seed", type=int, default=1,
                        help="random seed; the same seed writes the same bytes")
    args = parser.parse_args(argv)
    names = generate_tree(args.var_dir, lists=args.lists, members=args.members, seed=args.seed)
    for name in names:
        spec = SPECIAL_LISTS.get(name)
        print(f"{name}: {'; '.join(spec.covers) if spec else 'filler'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
