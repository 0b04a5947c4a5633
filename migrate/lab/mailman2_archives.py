"""Generate the archives a Mailman 2.1 host holds: each list's mbox and its pipermail HTML tree.

Run after `mailman2_seed.generate_tree`: every list under `VAR_DIR/lists/` gets what Mailman 2.1
would have left on disk (Archiver.InitVars, MailList.CheckHTMLArchiveDir, HyperArch, Scrubber):

    archives/private/<name>.mbox/<name>.mbox          every archived post, in archiving order
    archives/private/<name>/index.html                the table of volumes, newest first
    archives/private/<name>/<volume>/NNNNNN.html      one page per article, '%06d' % sequence
    archives/private/<name>/<volume>/{date,thread,subject,author}.html
    archives/private/<name>/<volume>/index.html       a symlink to thread.html (open_new_archive)
    archives/private/<name>/<volume>.txt, .txt.gz     the volume as text (gzip'd by cron/nightly_gzip)
    archives/private/<name>/attachments/YYYYMMDD/<8 hex>/attachment.<ext>   scrubbed parts
    archives/public/<name> -> ../private/<name>       only when the archive is public

A list with `archive` off keeps the skeleton InitVars made when the list was created: an empty
`<name>.mbox/` folder and an `index.html` saying the archive is empty.

What the tree reproduces (read in Mailman 2.1 sources):
- Article numbers are one per-list sequence from 0 in archiving order; each page's
  `<LINK REL="made">` and author link are `mailto:LIST%40HOST?Subject=Re%3A%20...&In-Reply-To=...`
  (ARCHIVER_OBSCURES_EMAILADDRS points them at the list) where In-Reply-To is urllib.quote of the
  raw Message-ID header value, exactly as Python 2's email package returned it: a folded header
  keeps its line break, a decorated one its comment.
- A post without Message-ID reaches the mbox without one (ArchRunner writes the mbox first), but
  the archiver's Scrubber (calculate_attachments_dir) then gives it
  `<mailman.SERIAL.TIME.PID.LIST@HOST>`: the page carries an id that exists nowhere in the mbox.
- ArchRunner (ARCHIVER_CLOBBER_DATE_POLICY 2) replaces an unparseable Date with the receive time,
  keeps the original as X-Original-Date and always adds X-List-Received-Date; pipermail files an
  article under its Date, then X-List-Received-Date, Received, the From_ line date, and finally
  "the last article time + 1", which is the start time of the archiving process.
- Live archiving writes the mbox with "From " body lines escaped (">From "). `bin/arch` reads an
  mbox as a PortableUnixMailbox, which cuts at every line starting with "From ": an unescaped one
  splits a message in two articles, the second a headerless fragment.
- Two messages sharing a Message-ID in one volume: both pages are written, but the volume
  database keys articles by Message-ID, so date/subject/author indexes list the later one twice
  and the earlier page is linked from no index.
- prev/next links follow the thread index; subject prefixes are not added to raw 8-bit subjects
  (CookHeaders gives up on them); pages are written in the charset of the list's language, with
  characters outside it as `&#NNN;`.

Assumed rather than read: the host ran in UTC (pipermail used localtime for volume names and
dates); day and month names are the English ones, not the list language's; threads whose parent
lies in another volume start a new thread (pipermail's subject fallback is not modelled);
`pipermail.pck` and the `database/` folder are not written; the public link is relative (Mailman
wrote an absolute one) so the tree can be copied elsewhere.

One list, RENUMBERED_LIST, had its archive rebuilt with `bin/arch --wipe` after moderators purged
spam from the mbox and put an older list history (imported from another system, unescaped,
without Mailman's headers) in front of it: its article numbers no longer follow mbox positions,
and the numbers published before the rebuild are recorded as `url_before_rebuild`.

`generate_archives` returns ArchiveFacts per list: the ground truth for tests and redirect maps.
`generate_article_tree` writes a large, lean pipermail tree for benchmarks.
The same arguments always give the same bytes.
"""

from __future__ import annotations

import argparse
import base64
import calendar
import gzip
import hashlib
import json
import quopri
import random
import re
import shutil
import string
import time
from dataclasses import asdict, dataclass, field
from email import message_from_bytes
from email.errors import HeaderParseError
from email.header import Header, decode_header, make_header
from email.utils import formataddr, parseaddr, parsedate, parsedate_tz
from pathlib import Path
from typing import Any, Iterator, Sequence
from urllib.parse import quote

from ..mailman.mm2 import charset_for, decode_text, load_config

RENUMBERED_LIST = "moderation-rules"
MIN_MESSAGES = 12  # the fixed cases sit at positions below this

# Every flag a message can carry in its facts.
FLAGS = (
    "no_msgid",  # no Message-ID in the mbox; the page carries the id the archiver generated
    "duplicate",  # another message of the list has the same (normalised) Message-ID
    "from_in_body",  # an unescaped "From " line in the body: mbox readers split the message there
    "escaped_from",  # a ">From " line, escaped by Mailman when it wrote the mbox
    "decorated",  # a folded Message-ID with a trailing comment ("(added by postmaster@...)")
    "bad_date",  # the Date header in the mbox is unparseable
    "clobbered_date",  # the sender's Date was unparseable; Mailman replaced it (X-Original-Date)
    "tz_boundary",  # the Date's local day is in another volume than its UTC instant
    "encoded_headers",  # RFC 2047 encoded words in From, To, Cc or Subject
    "eight_bit_headers",  # raw 8-bit bytes in From, To, Cc or Subject
    "multipart",  # a MIME multipart message; the page shows the scrubbed text
    "renumbered",  # its article number differs from its mbox position (after the rebuild)
)

_SPAM_POSITIONS = (2, 5)  # live posts of RENUMBERED_LIST purged as spam before the rebuild
SPAM_REMOVED = len(_SPAM_POSITIONS)
IMPORTED_HISTORY = 6  # older messages put in front of RENUMBERED_LIST's mbox before the rebuild

# Defaults.py values the archive depends on.
ARCHIVER_ALLOWABLE_SANE_DATE_SKEW = 15 * 86400
THREADLEVELS = 3  # HyperArchive.THREADLEVELS: deeper replies are indented no further
PIPERMAIL_VERSION = "0.09 (Mailman edition)"

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")
_DAY_ABBR = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_QUARTERS = ("First", "Second", "Third", "Fourth")
_NEXT_PART = "-------------- next part --------------\n"
# The Mailman release that wrote a post, by year (X-Mailman-Version).
_MAILMAN_VERSIONS = {2012: "2.1.15", 2013: "2.1.16", 2014: "2.1.18", 2015: "2.1.20", 2016: "2.1.22",
                     2017: "2.1.23", 2018: "2.1.27", 2019: "2.1.29", 2020: "2.1.34"}


# ---------------------------------------------------------------------------------------------
# Facts


@dataclass
class MessageFacts:
    """One message of a list's mbox and the article pipermail made of it."""

    mbox_index: int  # position in the mbox, counting real messages (not what a naive reader sees)
    mbox_offset: int  # byte offset of its From_ line
    message_id: str | None  # the raw header value as written after "Message-ID:", folding kept
    hyperkitty_id: str | None  # what hyperkitty_import stores; None: it generates a random one
    hyperkitty_hash: str | None  # base32(sha1(hyperkitty_id)), the message URL component
    hyperkitty_duplicate_of: int | None  # mbox index of the earlier message HyperKitty keeps
    article_message_id: str  # the In-Reply-To value on the article page, URL-unquoted
    volume: str
    article: int
    article_url: str  # "<volume>/<NNNNNN>.html", relative to the list's archive folder
    date: str  # ISO 8601 UTC instant pipermail filed the article under
    subject: str  # as the article page shows it
    flags: list[str] = field(default_factory=list)
    header_charsets: list[str] = field(default_factory=list)  # RFC 2047 charsets in From/To/Cc/Subject
    url_before_rebuild: str | None = None  # the article URL before `bin/arch --wipe`
    attachments: list[str] = field(default_factory=list)  # scrubbed parts, relative to the folder


@dataclass
class ExtraArticle:
    """An article with no message of its own: the tail of a message split at a "From " line."""

    article: int
    volume: str
    article_url: str
    article_message_id: str  # generated by the archiver's Scrubber
    cut_from: int  # mbox index of the message it was cut from
    date: str


@dataclass
class RemovedMessage:
    """A message purged from the mbox before the rebuild; its old article URL is gone."""

    message_id: str
    url_before_rebuild: str


@dataclass
class ArchiveFacts:
    """Ground truth for one list's archive (paths relative to the var dir)."""

    list_name: str
    host_name: str
    archived: bool
    private: bool
    volume_frequency: int  # 0 yearly, 1 monthly, 2 quarterly, 3 weekly, 4 daily
    html_dir: str
    mbox_path: str | None
    public_link: str | None
    message_count: int
    mbox_reader_count: int  # messages a plain mbox reader (mailbox.mbox) finds
    volumes: list[str] = field(default_factory=list)  # in the order the table of contents lists them
    messages: list[MessageFacts] = field(default_factory=list)
    extra_articles: list[ExtraArticle] = field(default_factory=list)
    rebuilt_at: str | None = None
    removed_before_rebuild: list[RemovedMessage] = field(default_factory=list)

    def with_flag(self, flag: str) -> list[MessageFacts]:
        return [m for m in self.messages if flag in m.flags]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArchiveFacts:
        data = dict(data)
        data["messages"] = [MessageFacts(**m) for m in data.get("messages", [])]
        data["extra_articles"] = [ExtraArticle(**a) for a in data.get("extra_articles", [])]
        data["removed_before_rebuild"] = [RemovedMessage(**r) for r in data.get("removed_before_rebuild", [])]
        return cls(**data)


def facts_to_json(facts: dict[str, ArchiveFacts]) -> str:
    return json.dumps({name: f.to_dict() for name, f in facts.items()}, indent=1, ensure_ascii=False)


def facts_from_json(text: str) -> dict[str, ArchiveFacts]:
    return {name: ArchiveFacts.from_dict(d) for name, d in json.loads(text).items()}


# ---------------------------------------------------------------------------------------------
# Small conversions with Mailman 2 / Python 2 semantics


def url_quote(value: bytes | str) -> str:
    """Python 2's urllib.quote: only letters, digits, '_.-' and '/' stay as they are."""
    return quote(value, safe="/").replace("~", "%7E")


def html_quote(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def hyperkitty_message_id(raw: str | None) -> str | None:
    """The Message-ID hyperkitty_import stores for a raw header value; None when it makes one up.

    hyperkitty_import removes whitespace, drops what follows the first '>' of an id starting with
    '<', adds missing angle brackets, drops non-ASCII, then stores the id without its brackets,
    cut to 254 characters.
    """
    if raw is None or raw.strip() in ("", "<>"):
        return None
    mid = re.sub(r"\s", "", raw)
    if mid.startswith("<"):
        mid = re.sub(">.*", ">", mid)
    else:
        mid = "<" + mid
    if not mid.endswith(">"):
        mid += ">"
    mid = mid.encode("ascii", "ignore").decode("ascii")[1:-1]
    return mid[:254]


def hyperkitty_hash(message_id: str) -> str:
    return base64.b32encode(hashlib.sha1(message_id.encode("utf-8")).digest()).decode("ascii")


def volume_name(when: int, frequency: int) -> str:
    """HyperArchive.dateToVolName for a UTC host."""
    t = time.gmtime(when)
    if frequency == 0:
        return f"{t.tm_year}"
    if frequency == 2:
        return f"{t.tm_year}q{(t.tm_mon - 1) // 3 + 1}"
    if frequency == 3:
        monday = time.gmtime(when - t.tm_wday * 86400)
        return f"Week-of-Mon-{monday.tm_year:04d}{monday.tm_mon:02d}{monday.tm_mday:02d}"
    if frequency == 4:
        return f"{t.tm_year:04d}{t.tm_mon:02d}{t.tm_mday:02d}"
    return f"{t.tm_year}-{_MONTHS[t.tm_mon - 1]}"


_VOLUME_PATTERNS = {
    0: re.compile(r"^(?P<year>\d{4})$"),
    1: re.compile(r"^(?P<year>\d{4})-(?P<month>[A-Za-z]+)$"),
    2: re.compile(r"^(?P<year>\d{4})q(?P<quarter>[1-4])$"),
    3: re.compile(r"^Week-of-Mon-(?P<year>\d{4})(?P<month>[01]\d)(?P<day>[0-3]\d)$"),
    4: re.compile(r"^(?P<year>\d{4})(?P<month>[01]\d)(?P<day>[0-3]\d)$"),
}


def volume_bounds(name: str, frequency: int) -> tuple[int, int]:
    """The UTC interval [start, end) a volume name of the given frequency covers."""
    match = _VOLUME_PATTERNS[frequency].match(name)
    if not match:
        raise ValueError(f"{name!r} is not a volume name for frequency {frequency}")
    year = int(match["year"])
    if frequency == 0:
        return calendar.timegm((year, 1, 1, 0, 0, 0)), calendar.timegm((year + 1, 1, 1, 0, 0, 0))
    if frequency in (1, 2):
        first = _MONTHS.index(match["month"]) + 1 if frequency == 1 else 3 * int(match["quarter"]) - 2
        months = 1 if frequency == 1 else 3
        after = first + months
        end = (year + 1, after - 12) if after > 12 else (year, after)
        return calendar.timegm((year, first, 1, 0, 0, 0)), calendar.timegm((*end, 1, 0, 0, 0))
    start = calendar.timegm((year, int(match["month"]), int(match["day"]), 0, 0, 0))
    return start, start + (7 if frequency == 3 else 1) * 86400


def _volume_description(name: str, frequency: int) -> str:
    """HyperArchive.volNameToDesc (English)."""
    match = _VOLUME_PATTERNS[frequency].match(name)
    assert match
    if frequency == 0:
        return match["year"]
    if frequency == 1:
        return f"{match['month']} {match['year']}"
    if frequency == 2:
        return f"{_QUARTERS[int(match['quarter']) - 1]} quarter {match['year']}"
    month = _MONTHS[int(match["month"]) - 1]
    if frequency == 3:
        return f"The Week Of Monday {int(match['day'])} {month} {match['year']}"
    return f"{int(match['day'])} {month} {match['year']}"


def _asctime(when: int) -> str:
    return time.asctime(time.gmtime(when))


def _i18n_ctime(when: int) -> str:
    """Mailman's i18n.ctime: asctime with the zone name before the year."""
    t = time.gmtime(when)
    return (f"{_DAY_ABBR[t.tm_wday]} {_MONTHS[t.tm_mon - 1][:3]} {t.tm_mday:2d} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} UTC {t.tm_year:04d}")


def _rfc2822(when: int, offset_minutes: int = 0) -> str:
    local = time.gmtime(when + offset_minutes * 60)
    sign = "+" if offset_minutes >= 0 else "-"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return (f"{_DAY_ABBR[local.tm_wday]}, {local.tm_mday} {_MONTHS[local.tm_mon - 1][:3]} {local.tm_year} "
            f"{local.tm_hour:02d}:{local.tm_min:02d}:{local.tm_sec:02d} {sign}{hours:02d}{minutes:02d}")


def _formatdate(when: int) -> str:
    """email.Utils.formatdate(when) of Python 2: UTC written as -0000, day zero-padded."""
    t = time.gmtime(when)
    return (f"{_DAY_ABBR[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1][:3]} {t.tm_year:04d} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} -0000")


def _iso(when: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def _page_charset(charset: str) -> str:
    # Utils.uncanonstr writes a us-ascii list's pages in iso-8859-1.
    return "iso-8859-1" if charset == "us-ascii" else charset


def _uncanon(text: str, charset: str) -> str:
    """Utils.uncanonstr: text that does not fit the page charset becomes character references."""
    try:
        text.encode(_page_charset(charset))
        return text
    except UnicodeEncodeError:
        return "".join(c if ord(c) < 128 else "&#%3d;" % ord(c) for c in text)


# ---------------------------------------------------------------------------------------------
# Reading a message the way Python 2's email package (feedparser) did


_HEADER_LINE = re.compile(rb"^(From |[\041-\071\073-\176]+:|[\t ])")


@dataclass
class _Parsed:
    unixfrom: bytes | None
    headers: list[tuple[bytes, bytes]]
    raw: bytes  # the message without its From_ line

    def get(self, name: str) -> bytes | None:
        key = name.lower().encode("ascii")
        for header, value in self.headers:
            if header.lower() == key:
                return value
        return None


def _parse_py2(data: bytes) -> _Parsed:
    """Headers as Python 2's feedparser gave them: the first line's value left-stripped, folded
    lines kept with their line breaks, the last line break dropped."""
    lines = data.splitlines(keepends=True)
    unixfrom = None
    index = 0
    if lines and lines[0].startswith(b"From "):
        unixfrom = lines[0].rstrip(b"\r\n")
        index = 1
    raw_start = sum(len(line) for line in lines[:index])
    headers: list[tuple[bytes, bytes]] = []
    name: bytes | None = None
    value: list[bytes] = []

    def flush() -> None:
        if name is not None:
            headers.append((name, b"".join(value)[:-1].rstrip(b"\r\n")))

    while index < len(lines):
        line = lines[index]
        if line[:1] in (b" ", b"\t") and name is not None:
            value.append(line)
        elif line.strip(b"\r\n") == b"" or not _HEADER_LINE.match(line) or b":" not in line:
            # A blank line ends the headers; so does a line that is no header (it starts the body).
            break
        else:
            flush()
            colon = line.index(b":")
            name, value = line[:colon], [line[colon + 1:].lstrip()]
        index += 1
    flush()
    return _Parsed(unixfrom, headers, data[raw_start:])


def _strip_separators(value: str) -> str:
    if value and value[0] in "\"<([" and value[-1] in "\">)]":
        return value[1:-1]
    return value


def _decode_charset(raw: bytes, list_charset: str) -> str:
    """HyperArch Article.decode_charset: RFC 2047 decoding, else the list's charset."""
    fallback = "iso-8859-1" if list_charset == "us-ascii" else list_charset
    try:
        text = str(make_header(decode_header(raw.decode("ascii"))))
    except (LookupError, UnicodeError, ValueError, HeaderParseError):
        text = raw.decode(fallback, "replace")
    return "".join(text.splitlines())


def _floatdate(value: bytes | None, now: int) -> int | None:
    if not value:
        return None
    parsed = parsedate_tz(value.decode("latin-1"))
    if parsed is None:
        return None
    try:
        # A date without zone is local time to mktime_tz, which is UTC on this host.
        when = calendar.timegm(parsed[:6]) - (parsed[9] or 0)
    except (TypeError, ValueError, OverflowError):
        return None
    if when < 0 or when - now > ARCHIVER_ALLOWABLE_SANE_DATE_SKEW:
        return None
    return when


# ---------------------------------------------------------------------------------------------
# The list being archived


@dataclass
class _List:
    name: str
    host: str
    real_name: str
    language: str
    charset: str
    frequency: int
    private: bool
    archive: bool
    prefix: str
    web_page_url: str
    description: str

    @property
    def address(self) -> str:
        return f"{self.name}@{self.host}"

    @property
    def listinfo_url(self) -> str:
        return f"{self.web_page_url}listinfo/{self.name}"

    @property
    def archive_url(self) -> str:
        """MailList.GetBaseArchiveURL with Defaults.py's PUBLIC_ARCHIVE_URL."""
        if self.private:
            return f"{self.web_page_url}private/{self.name}/"
        host = re.match(r"[^:]*://([^/]*)/", self.web_page_url)
        return f"http://{host.group(1) if host else self.host}/pipermail/{self.name}/"


def _read_list(var_dir: Path, name: str) -> _List:
    config = load_config((var_dir / "lists" / name / "config.pck").read_bytes(), list_name=name)
    language = str(config.get("preferred_language") or "en")
    charset = charset_for(language) or "us-ascii"

    def text(key: str, default: str = "") -> str:
        value = config.get(key, default)
        if not isinstance(value, str):
            return default
        try:
            return decode_text(value, charset)
        except (UnicodeDecodeError, LookupError):
            return value

    host = text("host_name") or "lists.example.org"
    return _List(
        name=name,
        host=host,
        real_name=text("real_name") or name.capitalize(),
        language=language,
        charset=charset,
        frequency=int(config.get("archive_volume_frequency", 1)),
        private=bool(config.get("archive_private", 0)),
        archive=bool(config.get("archive", True)),
        prefix=text("subject_prefix"),
        web_page_url=text("web_page_url") or f"http://{host}/mailman/",
        description=text("description"),
    )


# ---------------------------------------------------------------------------------------------
# Message text: people, subjects and bodies per language


_PEOPLE: dict[str, tuple[tuple[str, str], ...]] = {
    "de": (("Jürgen Weiß", "juergen.weiss@example.de"), ("Anna Müller", "anna.mueller@example.de"),
           ("Klaus Becker", "k.becker@mail.example.de"), ("Sabine Groß", "sabine@gross.example.net")),
    "fr": (("Hélène Dubois", "helene.dubois@example.fr"), ("François Martin", "fmartin@example.fr"),
           ("Chloé Bernard", "chloe.bernard@example.net"), ("Marc Petit", "marc.petit@example.com")),
    "es": (("José García", "jose.garcia@example.es"), ("María Núñez", "maria.nunez@example.es"),
           ("Lucía Fernández", "lucia@example.com"), ("Pablo Ruiz", "pablo.ruiz@example.org")),
    "pl": (("Łukasz Żółkiewski", "lukasz@example.pl"), ("Agnieszka Wójcik", "a.wojcik@example.pl"),
           ("Paweł Nowak", "pawel.nowak@example.com")),
    "ja": (("山田太郎", "taro.yamada@example.jp"), ("佐藤花子", "hanako.sato@example.jp"),
           ("Kenji Suzuki", "kenji@example.com")),
    "ru": (("Иван Петров", "ivan.petrov@example.ru"), ("Ольга Смирнова", "olga@example.ru"),
           ("Sergei Ivanov", "sergei.ivanov@example.com")),
    "vi": (("Nguyễn Văn An", "an.nguyen@example.vn"), ("Trần Thị Bình", "binh.tran@example.vn"),
           ("Minh Le", "minh.le@example.com")),
    "en": (("Alice Smith", "alice.smith@example.com"), ("Bob Jones", "bob@example.net"),
           ("Carol Garcia", "carol.garcia@uni.example.edu"), ("Dave Mueller", "dave@example.org"),
           ("Erin Rossi", "erin.rossi@example.com")),
}

_SUBJECTS: dict[str, tuple[str, ...]] = {
    "de": ("Treffen am Donnerstag", "Grüße aus Köln", "Änderung der Öffnungszeiten", "Protokoll der Sitzung",
           "Straßenfest im Sommer", "Frage zum Jahresbeitrag"),
    "fr": ("Recette de la crème brûlée", "Réunion de jeudi", "Pâté en croûte", "Question sur le gâteau",
           "Menu de Noël", "Où acheter des épices ?"),
    "es": ("Reunión del jueves", "¿Qué tal el fin de semana?", "Canción para la fiesta", "Año nuevo",
           "Pregunta sobre la cuota", "Fotos del viaje"),
    "pl": ("Spotkanie w czwartek", "Zażółć gęślą jaźń", "Pytanie o składkę", "Wycieczka do Gdańska",
           "Nowy regulamin"),
    "ja": ("会議のお知らせ", "質問があります", "日本語の件名です", "次回の勉強会", "資料の共有"),
    "ru": ("Встреча в четверг", "Новости недели", "Вопрос по взносам", "Привет всем", "Планы на лето"),
    "vi": ("Họp mặt cuối tuần", "Câu hỏi về phí", "Chào mừng thành viên mới", "Tài liệu tham khảo"),
    "en": ("Meeting on Thursday", "Question about the build", "Release notes draft", "Welcome new members",
           "Server maintenance window", "Call for volunteers", "Minutes of the last call"),
}

_SENTENCES: dict[str, tuple[str, ...]] = {
    "de": ("Vielen Dank für die schnelle Antwort.", "Wir treffen uns um 19 Uhr im großen Saal.",
           "Die Unterlagen liegen im Büro.", "Bitte gebt bis Freitag Bescheid, wer kommt.",
           "Das Straßenfest findet bei jedem Wetter statt."),
    "fr": ("Merci pour la recette, elle est délicieuse.", "On se retrouve jeudi à 19 h.",
           "Il faut préchauffer le four à 180 °C.", "Je n'ai pas encore reçu la réponse.",
           "Bon appétit à tous !"),
    "es": ("Gracias por la información.", "Nos vemos el jueves a las siete.",
           "¿Alguien tiene las fotos del año pasado?", "La reunión será en el salón pequeño.",
           "Un saludo a todos."),
    "pl": ("Dziękuję za szybką odpowiedź.", "Spotykamy się o 19:00 w dużej sali.",
           "Dokumenty są w biurze.", "Proszę o potwierdzenie do piątku."),
    "ja": ("よろしくお願いします。", "資料を添付しました。", "次回は木曜日の午後七時です。",
           "ご質問があればどうぞ。"),
    "ru": ("Спасибо за быстрый ответ.", "Встречаемся в семь часов.", "Документы лежат в офисе.",
           "Пожалуйста, ответьте до пятницы."),
    "vi": ("Cảm ơn bạn đã trả lời nhanh.", "Chúng ta gặp nhau lúc bảy giờ tối.",
           "Tài liệu đã được gửi kèm.", "Xin vui lòng xác nhận trước thứ sáu."),
    "en": ("Thanks for the quick answer.", "We meet at 7 pm in the large room.",
           "The draft is attached to the wiki page at http://wiki.example.org/Drafts.",
           "Please reply by Friday if you can make it.", "I have updated the notes accordingly.",
           "Contact me at secretary@example.org with questions."),
}

_GENERIC_LANGUAGE = "en"
# Where the senders of each language write from: their Date headers' UTC offsets in minutes.
_UTC_OFFSETS: dict[str, tuple[int, ...]] = {
    "de": (60, 120, 60), "fr": (60, 120), "es": (60, 120, -300), "pl": (60, 120), "ja": (540,),
    "ru": (180, 240, 420), "vi": (420,), "en": (0, -300, -480, 60, 330, -420),
}


def _people(language: str) -> tuple[tuple[str, str], ...]:
    return _PEOPLE.get(language, _PEOPLE[_GENERIC_LANGUAGE])


def _subjects(language: str) -> tuple[str, ...]:
    return _SUBJECTS.get(language, _SUBJECTS[_GENERIC_LANGUAGE])


def _sentences(language: str) -> tuple[str, ...]:
    return _SENTENCES.get(language, _SENTENCES[_GENERIC_LANGUAGE])


# The special cases each language list carries, by position in arrival order (all below
# MIN_MESSAGES). Charsets name how the header or body is written.
_CASES: dict[str, dict[int, tuple[str, ...]]] = {
    "kultur-de": {2: ("eight_bit", "iso-8859-1"), 3: ("escaped_from",), 4: ("encoded", "iso-8859-1"),
                  6: ("decorated_comment",), 8: ("attachment",), 9: ("tz_boundary",),
                  10: ("clobbered_date",)},
    "cuisine-fr": {3: ("no_msgid",), 5: ("duplicate_first",), 7: ("encoded", "utf-8"),
                   9: ("duplicate_second",)},
    "charla-es": {3: ("alternative",), 5: ("encoded", "utf-8")},
    "dyskusja-pl": {3: ("encoded", "iso-8859-2"), 6: ("decorated_folded",)},
    "nihongo-ja": {2: ("encoded", "iso-2022-jp"), 4: ("encoded", "iso-2022-jp"), 6: ("eight_bit", "euc-jp")},
    "novosti-ru": {3: ("encoded", "koi8-r"), 5: ("eight_bit", "koi8-r")},
    "tieng-viet": {3: ("eight_bit", "utf-8"), 5: ("encoded", "utf-8")},
    "debian-utf8-de": {3: ("eight_bit", "utf-8")},
}
# Positions within RENUMBERED_LIST's imported history.
_HISTORY_CASES: dict[int, tuple[str, ...]] = {2: ("from_in_body",), 4: ("bad_date",)}


@dataclass
class _Draft:
    """A post as its sender wrote it, plus what happened to it on the way into the archive."""

    name: str
    address: str
    subject: str
    body: str
    sent: int  # the instant of the Date header
    received: int  # when Mailman received it (archiving order)
    offset: int  # the sender's UTC offset in minutes
    message_id: str | None
    parent: int | None = None
    case: tuple[str, ...] = ()
    header_charset: str = "us-ascii"
    body_charset: str = "us-ascii"
    imported: bool = False  # came from an mbox exported by another system
    spam: bool = False  # purged from RENUMBERED_LIST's mbox before the rebuild
    refs: list[str] = field(default_factory=list)


def _message_id(rng: random.Random, address: str, when: int) -> str:
    domain = address.split("@", 1)[1]
    style = rng.randrange(4)
    if style == 0:
        token = base64.urlsafe_b64encode(rng.randbytes(27)).decode("ascii").replace("-", "+")
        return f"<CA{token}@mail.gmail.com>"
    if style == 1:
        return f"<{time.strftime('%Y%m%d%H%M%S', time.gmtime(when))}.GA{rng.randrange(1000, 99999)}@{domain}>"
    if style == 2:
        return f"<{rng.getrandbits(32):08X}.{rng.randrange(1000, 9999999)}@{domain}>"
    return f"<{rng.getrandbits(64):016x}-{rng.randrange(100, 999)}@{domain}>"


def _body_text(rng: random.Random, language: str, name: str, quoted: str | None) -> str:
    lines: list[str] = []
    if quoted:
        lines += [f"> {quoted}", ""]
    sentences = _sentences(language)
    lines += rng.sample(sentences, k=min(len(sentences), rng.randint(2, 4)))
    lines += ["", "-- ", name]
    return "\n".join(lines) + "\n"


def _plan_timeline(rng: random.Random, count: int, start: int, span_days: int
                   ) -> list[tuple[int, int | None]]:
    """(received time, index of the message replied to) for `count` posts over about `span_days`."""
    reply_share, reply_gap = 0.45, 15 * 3600
    span = span_days * 86400
    new_gap = max(3600.0, (span - count * reply_share * reply_gap) / max(1.0, count * (1 - reply_share)))
    timeline: list[tuple[int, int | None]] = []
    now = start
    for index in range(count):
        parent = None
        if index and rng.random() < reply_share:
            parent = rng.randrange(max(0, index - 3), index)
            now += int(rng.uniform(1800, 2 * reply_gap))
        else:
            now += int(rng.expovariate(1 / new_gap)) + 600
        timeline.append((now, parent))
    if timeline and timeline[-1][0] - start > span:
        # A long random walk is squeezed back into the span, keeping the order.
        scale = span / (timeline[-1][0] - start)
        timeline = [(start + int((when - start) * scale) + index, parent)
                    for index, (when, parent) in enumerate(timeline)]
    return timeline


def _drafts(rng: random.Random, ml: _List, count: int, start: int, cases: dict[int, tuple[str, ...]],
            *, span_days: int = 730) -> list[_Draft]:
    language = ml.language
    people = _people(language)
    native_people = [p for p in people if any(ord(c) > 127 for c in p[0])] or list(people)
    subjects = _subjects(language)
    native_subjects = [s for s in subjects if any(ord(c) > 127 for c in s)] or list(subjects)
    offsets = _UTC_OFFSETS.get(language, _UTC_OFFSETS["en"])
    drafts: list[_Draft] = []
    for index, (received, parent) in enumerate(_plan_timeline(rng, count, start, span_days)):
        case = cases.get(index, ())
        kind = case[:1]
        name, address = rng.choice(people)
        offset = rng.choice(offsets)
        sent = received - rng.randrange(20, 900)
        if kind == ("tz_boundary",):
            # Just before midnight UTC at a month's end, written in +0100: the Date header's local
            # day belongs to the next month, the instant (and the volume) to this one.
            t = time.gmtime(received)
            year, month = t.tm_year + (t.tm_mon == 12), t.tm_mon % 12 + 1
            sent = calendar.timegm((year, month, 1, 0, 0, 0)) - 1800
            received, offset = sent + 95, 60
        if drafts and received <= drafts[-1].received:
            received = drafts[-1].received + 60
            sent = min(sent, received - 20)
        if kind in (("eight_bit",), ("encoded",)):
            # A new thread whose subject and author name need the case's charset.
            parent = None
            name, address = rng.choice(native_people)
        quoted = None
        if parent is not None and drafts[parent].message_id is not None:
            base = drafts[parent]
            subject = "Re: " + re.sub(r"^(Re: )+", "", base.subject)
            lines = base.body.splitlines()
            quoted = lines[-4] if len(lines) >= 4 else None
        else:
            parent = None
            subject = rng.choice(native_subjects if kind in (("eight_bit",), ("encoded",)) else subjects)
        message_id: str | None = _message_id(rng, address, sent)
        if kind == ("no_msgid",):
            message_id = None
        elif kind == ("duplicate_second",):
            message_id = next(d for d in drafts if d.case[:1] == ("duplicate_first",)).message_id
        body = _body_text(rng, language, name, quoted)
        draft = _Draft(name=name, address=address, subject=subject, body=body, sent=sent, received=received,
                       offset=offset, message_id=message_id, parent=parent, case=case)
        if parent is not None:
            draft.refs = (drafts[parent].refs + [_clean_id(drafts[parent].message_id)])[-5:]
        _apply_case(ml, draft)
        drafts.append(draft)
    return drafts


def _clean_id(message_id: str | None) -> str:
    assert message_id is not None
    return "<" + hyperkitty_message_id(message_id) + ">"


def _apply_case(ml: _List, draft: _Draft) -> None:
    """Charsets and body changes of a draft's special case."""
    kind = draft.case[:1]
    if kind in (("eight_bit",), ("encoded",)):
        draft.header_charset = draft.body_charset = draft.case[1]
        return
    if kind == ("escaped_from",):
        draft.body = draft.body.replace(
            "\n\n-- ", "\nFrom the board: the hall is booked until 22:00.\n\n-- ", 1)
    elif kind == ("from_in_body",):
        draft.body = draft.body.replace(
            "\n\n-- ",
            "\nFrom the minutes of our last meeting, as promised:\n"
            "the treasurer reported a small surplus and the hall is booked again.\n\n-- ",
            1,
        )
    if any(ord(c) > 127 for c in draft.subject + draft.name + draft.body):
        # Ordinary posts: the MUA writes the list's charset, or UTF-8 when that does not fit.
        native = ml.charset if ml.charset != "us-ascii" else "utf-8"
        draft.header_charset = draft.body_charset = _fitting_charset(native, draft)


def _fitting_charset(preferred: str, draft: _Draft) -> str:
    for charset in (preferred, "utf-8"):
        try:
            (draft.subject + draft.name + draft.body).encode(charset)
            return charset
        except (UnicodeEncodeError, LookupError):
            continue
    return "utf-8"


# ---------------------------------------------------------------------------------------------
# Writing a post as it sits in the mbox


_ENCODED_WORD = re.compile(rb"=\?([^?\s]+)\?[QqBb]\?[^?\s]*\?=")


def _encode_header(text: str, charset: str) -> bytes:
    return Header(text, charset, maxlinelen=998).encode().encode("ascii")


def _address_header(draft: _Draft) -> bytes:
    name, address = draft.name, draft.address
    if "eight_bit" in draft.case:
        return name.encode(draft.header_charset) + b" <" + address.encode() + b">"
    if all(ord(c) < 128 for c in name):
        return f"{name} <{address}>".encode("ascii")
    return _encode_header(name, draft.header_charset) + b" <" + address.encode() + b">"


def _subject_header(ml: _List, draft: _Draft) -> tuple[bytes, bool]:
    """The Subject after CookHeaders and whether CookHeaders moved it (it re-adds prefixed ones)."""
    subject = draft.subject
    if "eight_bit" in draft.case:
        # CookHeaders cannot decode raw 8-bit bytes as ASCII and leaves the subject alone.
        return subject.encode(draft.header_charset), False
    if draft.imported or not ml.prefix:
        if all(ord(c) < 128 for c in subject):
            return subject.encode("ascii"), False
        return _encode_header(subject, draft.header_charset), False
    # Mailman 2.1's default OLD_STYLE_PREFIXING keeps "[Prefix] Re: subject".
    prefix = ml.prefix.strip()
    if all(ord(c) < 128 for c in subject):
        return f"{prefix} {subject}".encode("ascii"), True
    reply = "Re: " if subject.startswith("Re: ") else ""
    rest = subject[len(reply):]
    return f"{prefix} {reply}".encode("ascii") + _encode_header(rest, draft.header_charset), True


def _message_id_header(draft: _Draft) -> bytes | None:
    if draft.message_id is None:
        return None
    if "decorated_comment" in draft.case:
        # Some relays add a Message-ID with a comment and fold it onto the next line.
        domain = draft.address.split("@", 1)[1]
        return f"Message-ID:\n {draft.message_id} (added by postmaster@{domain})\n".encode("ascii")
    if "decorated_folded" in draft.case:
        domain = draft.address.split("@", 1)[1]
        return f"Message-ID: {draft.message_id}\n\t(added by postmaster@{domain})\n".encode("ascii")
    return f"Message-ID: {draft.message_id}\n".encode("ascii")


def _encode_body(text: str, charset: str, rng: random.Random) -> tuple[bytes, str]:
    data = text.encode(charset)
    if charset == "iso-2022-jp" or all(b < 128 for b in data):
        return data, "7bit"
    if rng.random() < 0.25:
        return quopri.encodestring(data), "quoted-printable"
    return data, "8bit"


_PDF = (b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
        b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")


def _content(ml: _List, draft: _Draft, rng: random.Random) -> tuple[list[bytes], bytes]:
    """Content headers and body of a post."""
    body, cte = _encode_body(draft.body, draft.body_charset, rng)
    text_type = f'text/plain; charset="{draft.body_charset}"'.encode("ascii")
    if "attachment" in draft.case:
        boundary = f"------------{rng.getrandbits(64):016X}".encode("ascii")
        pdf = base64.encodebytes(_PDF)
        parts = [
            b"This is a multi-part message in MIME format.\n",
            b"--" + boundary + b"\nContent-Type: " + text_type + b"\nContent-Transfer-Encoding: " +
            cte.encode() + b"\n\n" + body,
            b"--" + boundary + b'\nContent-Type: application/pdf;\n name="Protokoll.pdf"\n'
            b"Content-Transfer-Encoding: base64\nContent-Disposition: attachment;\n"
            b' filename="Protokoll.pdf"\n\n' + pdf,
            b"--" + boundary + b"--\n",
        ]
        return [b"MIME-Version: 1.0", b'Content-Type: multipart/mixed;\n boundary="' + boundary + b'"'], \
            b"\n".join(parts)
    if "alternative" in draft.case:
        boundary = f"=_alt_{rng.getrandbits(48):012x}".encode("ascii")
        html = ("<html><body><p>" + html_quote(draft.body).replace("\n", "<br>\n") + "</p></body></html>\n")
        html_data, html_cte = _encode_body(html, draft.body_charset, rng)
        parts = [
            b"",
            b"--" + boundary + b"\nContent-Type: " + text_type + b"\nContent-Transfer-Encoding: " +
            cte.encode() + b"\n\n" + body,
            b"--" + boundary + b"\nContent-Type: text/html; charset=\"" + draft.body_charset.encode() +
            b"\"\nContent-Transfer-Encoding: " + html_cte.encode() + b"\n\n" + html_data,
            b"--" + boundary + b"--\n",
        ]
        return [b"MIME-Version: 1.0", b'Content-Type: multipart/alternative; boundary="' + boundary + b'"'], \
            b"\n".join(parts)
    content = [b"MIME-Version: 1.0", b"Content-Type: " + text_type,
               b"Content-Transfer-Encoding: " + cte.encode()]
    return content, body


# Date headers no RFC 2822 parser reads: one from the imported history, one a sender's MUA wrote.
_HISTORY_BAD_DATE = "Mittwoch, 05.03.2014 14:03"
_SENDER_BAD_DATE = "08/02/2016 10:00:00"


def _mangle_from(body: bytes) -> bytes:
    # Python 2's email Generator (mangle_from_=True) as Mailman used it to write the mbox.
    return re.sub(rb"(?m)^From ", b">From ", body)


def _compose(ml: _List, draft: _Draft, rng: random.Random) -> tuple[bytes, bytes]:
    """(From_ line, message) of a post as it sits in the mbox."""
    subject, moved = _subject_header(ml, draft)
    head: list[bytes] = [b"From: " + _address_header(draft), f"To: {ml.address}".encode()]
    if not moved:
        head.append(b"Subject: " + subject)
    date_value = _rfc2822(draft.sent, draft.offset)
    clobbered = "clobbered_date" in draft.case
    bad_date = "bad_date" in draft.case
    if bad_date:
        date_value = _HISTORY_BAD_DATE
    elif clobbered:
        date_value = _SENDER_BAD_DATE
    head.append(f"Date: {date_value}".encode("ascii"))
    msgid_header = _message_id_header(draft)
    if msgid_header is not None:
        head.append(msgid_header.rstrip(b"\n"))
    if draft.parent is not None and draft.refs:
        head.append(f"In-Reply-To: {draft.refs[-1]}".encode("ascii"))
        head.append(("References: " + "\n\t".join(draft.refs)).encode("ascii"))
    content_headers, body = _content(ml, draft, rng)
    head += content_headers
    if draft.imported:
        from_line = f"From {draft.address} {_asctime(draft.received)}".encode("ascii")
        return from_line, b"\n".join(head) + b"\n\n" + body
    head.append(b"User-Agent: " + rng.choice((b"Mutt/1.5.23 (2014-03-12)", b"Mozilla/5.0 Thunderbird/38.5.0",
                                               b"Roundcube Webmail/1.1.4")))
    if moved:
        head.append(b"Subject: " + subject)
    version = _MAILMAN_VERSIONS.get(time.gmtime(draft.received).tm_year, "2.1.29")
    list_id = f"<{ml.name}.{ml.host}>"
    if ml.description and all(ord(c) < 128 for c in ml.description):
        list_id = formataddr((ml.description, f"{ml.name}.{ml.host}"))
    elif ml.description:
        charset = ml.charset if ml.charset != "us-ascii" else "iso-8859-1"
        list_id = _encode_header(ml.description, charset).decode("ascii") + " " + list_id
    request = f"{ml.name}-request@{ml.host}"
    head += [
        f"X-BeenThere: {ml.address}".encode(),
        f"X-Mailman-Version: {version}".encode(),
        b"Precedence: list",
        b"List-Id: " + list_id.encode("ascii"),
        (f"List-Unsubscribe: <{ml.web_page_url}options/{ml.name}>,\n"
         f"\t<mailto:{request}?subject=unsubscribe>").encode(),
        f"List-Archive: <{ml.archive_url}>".encode(),
        f"List-Post: <mailto:{ml.address}>".encode(),
        f"List-Help: <mailto:{request}?subject=help>".encode(),
        f"List-Subscribe: <{ml.listinfo_url}>,\n\t<mailto:{request}?subject=subscribe>".encode(),
    ]
    received = _formatdate(draft.received)
    if clobbered:
        # ArchRunner: the unparseable Date goes, the receive time takes its place.
        head = [h for h in head if not h.startswith(b"Date: ")]
        head += [f"Date: {received}".encode(), f"X-Original-Date: {date_value}".encode()]
    head.append(f"X-List-Received-Date: {received}".encode())
    from_line = f"From {draft.address}  {_asctime(draft.received)}".encode("ascii")
    return from_line, b"\n".join(head) + b"\n\n" + _mangle_from(body)


# ---------------------------------------------------------------------------------------------
# Pipermail


@dataclass
class _Article:
    sequence: int
    volume: str
    msgid: str  # the key of the volume database
    message_id: bytes  # the raw Message-ID header value (or the generated one) the page quotes
    subject_raw: bytes
    subject: str  # decoded, as shown
    stripped: str  # subject without prefix and Re:, for the subject index
    author: str
    email: str
    author_key: str
    date: int
    datestr: bytes
    in_reply_to: str
    references: list[str]
    body: list[str]
    text_headers: list[bytes]
    parent: str | None = None
    thread_key: str = ""
    attachments: list[str] = field(default_factory=list)

    @property
    def filename(self) -> str:
        return "%06d.html" % self.sequence

    @property
    def date_key(self) -> str:
        return "%011i" % self.date


@dataclass
class _Volume:
    name: str
    articles: list[_Article] = field(default_factory=list)
    by_msgid: dict[str, _Article] = field(default_factory=dict)
    date_index: dict[tuple[str, str], str] = field(default_factory=dict)
    author_index: dict[tuple[str, str, str], str] = field(default_factory=dict)
    subject_index: dict[tuple[str, str, str], str] = field(default_factory=dict)
    thread_index: dict[tuple[str, str], str] = field(default_factory=dict)
    text: list[bytes] = field(default_factory=list)
    updated: int = 0


_REPAT = re.compile(rb"\s*RE\s*(\[\d+\]\s*)?:\s*", re.IGNORECASE)
_STRIP_RE = re.compile(r"^((RE|AW|SV|VS)(\[\d+\])?:\s*)+", re.IGNORECASE)
_EMAIL = re.compile(r"([-+,.\w]+@[-+.\w]+)", re.ASCII)
_URL = re.compile(r"([a-z]+://.*?)(?:_\s|_$|$|[]})>'\"\s])", re.IGNORECASE)
_QUOTED = re.compile(r"^([>|:]|&gt;)+")
_SMALL_NAME_PARTS = ("van", "von", "der", "de")


def _fix_author(author: str) -> str:
    """pipermail.fixAuthor: "First Last" becomes "Last, First" for the author index."""
    if "," in author:
        return author
    words = author.split()
    i = len(words) - 1
    if i <= 0:
        return author
    if author.upper() == author or author.lower() == author:
        while i > 0 and words[i - 1].lower() in _SMALL_NAME_PARTS:
            i -= 1
    else:
        while i > 0 and (words[i - 1][0] in string.ascii_lowercase
                         or words[i - 1].lower() in _SMALL_NAME_PARTS):
            i -= 1
    return " ".join(words[-1:] + words[i:-1]) + ", " + " ".join(words[:i])


class _Pipermail:
    """The state of one list's pipermail archive while posts are archived into it."""

    def __init__(self, ml: _List, rng: random.Random):
        self.ml = ml
        self.sequence = 0
        self.volumes: dict[str, _Volume] = {}
        self.frozen: dict[tuple[str, int], bytes] = {}
        self.attachments: dict[str, bytes] = {}
        self.serial = rng.randrange(0, 400)
        self.fragments: list[tuple[_Article, int]] = []  # (article, mbox offset of the message cut)

    def reset(self) -> None:
        """bin/arch --wipe: the whole HTML folder goes, the sequence starts again at 0."""
        self.sequence = 0
        self.volumes = {}
        self.frozen = {}
        self.attachments = {}
        self.fragments = []

    # The Scrubber's Message-ID for a post that has none (Utils.unique_message_id).
    def _generated_id(self, when: int, pid: int) -> bytes:
        self.serial += 1
        return f"<mailman.{self.serial}.{when}.{pid}.{self.ml.name}@{self.ml.host}>".encode("ascii")

    def archive(self, data: bytes, *, now: int, pid: int, start_time: int) -> _Article:
        parsed = _parse_py2(data)
        ml = self.ml
        raw_id = parsed.get("message-id")
        if raw_id is None:
            raw_id = self._generated_id(now, pid)
        body_text, attachments = self._scrubbed_body(parsed, raw_id, now)
        subject_raw = parsed.get("subject") or b"No subject"
        while True:
            match = _REPAT.match(subject_raw)
            if not match or not match.end():
                break
            subject_raw = subject_raw[match.end():]
        subject = _decode_charset(subject_raw, ml.charset)
        subject = re.sub(r"([-+,.\w]+)@([-+.\w]+)", r"\1 at \2", subject)
        stripped = subject
        prefix = ml.prefix.strip()
        if prefix:
            stripped = re.sub(re.escape(prefix), "", stripped)
        stripped = _STRIP_RE.sub("", stripped.lstrip())
        name, address = parseaddr((parsed.get("from") or b"").decode("latin-1"))
        author_raw = _strip_separators(name).encode("latin-1")
        email = _strip_separators(address)
        if not author_raw:
            author_raw = email.encode("latin-1")
        if author_raw.decode("latin-1") == email:
            email = email.replace("@", " at ")
            author_raw = email.encode("latin-1")
        else:
            email = email.replace("@", " at ")
        author = _decode_charset(author_raw, ml.charset).replace("@", " at ")
        when = (_floatdate(parsed.get("date"), now) or _floatdate(parsed.get("x-list-received-date"), now)
                or _floatdate(re.sub(rb"^.*;\s*", b"", parsed.get("received") or b"", flags=re.S), now)
                or _floatdate(re.sub(rb"From \s*\S+\s+", b"", parsed.unixfrom or b""), now)
                or start_time + 1)
        datestr = parsed.get("date") or parsed.get("x-list-received-date") or _formatdate(when).encode()
        msgid = _strip_separators(raw_id.decode("latin-1"))
        irt = parsed.get("in-reply-to")
        in_reply_to = ""
        if irt:
            match = re.search(r"(<.*>)", irt.decode("latin-1"))
            in_reply_to = _strip_separators(match.group(1)) if match else ""
        references = [_strip_separators(r) for r in
                      (parsed.get("references") or b"").decode("latin-1").split()]
        text_headers = [h + b": " + v for h, v in (
            (b"In-Reply-To", parsed.get("in-reply-to")), (b"References", parsed.get("references")),
            (b"Message-ID", raw_id)) if v]
        article = _Article(
            sequence=self.sequence, volume=volume_name(when, ml.frequency), msgid=msgid, message_id=raw_id,
            subject_raw=subject_raw, subject=subject, stripped=stripped.lower(), author=author, email=email,
            author_key=_fix_author(author), date=int(when), datestr=datestr, in_reply_to=in_reply_to,
            references=references, body=[line + "\n" for line in body_text.splitlines()],
            text_headers=text_headers, attachments=attachments,
        )
        self.sequence += 1
        self._add(article, now)
        return article

    def _scrubbed_body(self, parsed: _Parsed, raw_id: bytes, now: int) -> tuple[str, list[str]]:
        ml = self.ml
        fallback = "iso-8859-1" if ml.charset == "us-ascii" else ml.charset
        ctype = (parsed.get("content-type") or b"text/plain").decode("latin-1").lower()
        if not ctype.startswith("multipart/"):
            message = message_from_bytes(parsed.raw)
            payload = message.get_payload(decode=True) or b""
            # Without a charset HyperArch assumes the output charset of the list's, which for
            # euc-jp is iso-2022-jp (email.Charset).
            assumed = "iso-2022-jp" if ml.charset == "euc-jp" else ml.charset
            charset = message.get_content_charset() or assumed
            try:
                return payload.decode(charset), []
            except (UnicodeDecodeError, LookupError):
                return payload.decode(fallback, "replace"), []
        message = message_from_bytes(parsed.raw)
        texts: list[str] = []
        saved: list[str] = []
        digest = hashlib.sha1(raw_id).hexdigest()
        date = parsedate((parsed.get("date") or b"").decode("latin-1"))
        day = time.strftime("%Y%m%d", date if date else time.gmtime(now))
        folder = f"attachments/{day}/{digest[:4]}{digest[-4:]}"
        for part in message.walk():
            if part.is_multipart():
                continue
            payload = part.get_payload(decode=True) or b""
            part_type = part.get_content_type()
            if part_type == "text/plain":
                try:
                    text = payload.decode(part.get_content_charset() or fallback)
                except (UnicodeDecodeError, LookupError):
                    text = payload.decode(fallback, "replace")
                texts.append(text if text.endswith("\n") else text + "\n")
                continue
            extension = {"text/html": ".html", "application/pdf": ".pdf"}.get(part_type, ".bin")
            if part_type == "text/html":
                # ARCHIVE_HTML_SANITIZER 1: the HTML is saved escaped, in <tt>, one <br> per line.
                escaped = html_quote(payload.decode("latin-1"))
                lines = [line.expandtabs(8).replace(" ", "&nbsp;") for line in escaped.split("\n")]
                payload = ("<tt>\n" + "<br>\n".join(lines) + "\n</tt>\n").encode("latin-1")
            path = f"{folder}/attachment{extension}"
            counter = 0
            while path in self.attachments:
                counter += 1
                path = f"{folder}/attachment-{counter:04d}{extension}"
            self.attachments[path] = payload
            saved.append(path)
            url = f"<{ml.archive_url}{path}>"
            if part_type == "text/html":
                texts.append(f"An HTML attachment was scrubbed...\nURL: {url}\n")
            else:
                name = part.get_filename() or ""
                desc = part.get("content-description") or "not available"
                texts.append(f"A non-text attachment was scrubbed...\nName: {name}\nType: {part_type}\n"
                             f"Size: {len(payload)} bytes\nDesc: {desc}\nURL: {url}\n")
        return _NEXT_PART.join(texts), saved

    def _add(self, article: _Article, now: int) -> None:
        volume = self.volumes.get(article.volume)
        if volume is None:
            volume = self.volumes[article.volume] = _Volume(article.volume)
        # The parent must already be in this volume's database (pipermail.get_parent_info).
        parent = None
        if article.in_reply_to and article.in_reply_to in volume.by_msgid:
            parent = article.in_reply_to
        if parent is None and article.references:
            known = [volume.by_msgid[r] for r in article.references if r in volume.by_msgid]
            if known:
                parent = max(known, key=lambda a: a.date_key).msgid
        article.parent = parent
        own = article.date_key + "." + str(article.sequence) + "-"
        article.thread_key = (volume.by_msgid[parent].thread_key + own) if parent else own
        superseded = volume.by_msgid.get(article.msgid)
        if superseded is not None:
            # Its page is no longer reachable from the indexes, so it keeps what it last showed.
            self.frozen[(volume.name, superseded.sequence)] = self._render_article(
                superseded, *self._neighbours(volume, superseded))
        volume.articles.append(article)
        volume.by_msgid[article.msgid] = article
        volume.date_index[(article.date_key, article.msgid)] = article.msgid
        volume.author_index[(article.author_key, article.date_key, article.msgid)] = article.msgid
        volume.subject_index[(article.stripped, article.date_key, article.msgid)] = article.msgid
        volume.thread_index[(article.thread_key, article.msgid)] = article.msgid
        volume.text.append(self._as_text(article))
        volume.updated = max(volume.updated, now)

    # -- reading the volume database ------------------------------------------------------------

    def _thread_order(self, volume: _Volume) -> list[_Article]:
        """pipermail.updateThreadedIndex, then the thread index in key order."""
        index: dict[tuple[str, str], str] = {}
        for key in sorted(volume.date_index):
            article = volume.by_msgid[volume.date_index[key]]
            if article.parent and article.parent in volume.by_msgid:
                parent = volume.by_msgid[article.parent]
                article.thread_key = parent.thread_key + article.date_key + "." + str(article.sequence) + "-"
            index[(article.thread_key, article.msgid)] = article.msgid
        volume.thread_index = index
        return [volume.by_msgid[index[key]] for key in sorted(index)]

    def _neighbours(self, volume: _Volume, article: _Article) -> tuple[_Article | None, _Article | None]:
        order = self._thread_order(volume)
        for position, candidate in enumerate(order):
            if candidate is article:
                return (order[position - 1] if position else None,
                        order[position + 1] if position + 1 < len(order) else None)
        return None, None

    # -- rendering ------------------------------------------------------------------------------

    def _q(self, text: str) -> str:
        return _uncanon(html_quote(text), self.ml.charset)

    def _body_html(self, article: _Article) -> str:
        lines = [self._body_line(line) for line in article.body if line]
        if not lines:
            return ""
        lines[0] = "<PRE>" + lines[0]
        lines.append("</PRE>")
        return _uncanon("".join(lines).replace("\0", " "), self.ml.charset)

    def _body_line(self, line: str) -> str:
        prefix = suffix = ""
        quoted = _QUOTED.match(line)
        if quoted:
            prefix = html_quote(line[:quoted.end()]) + "<i>"
            suffix = "</I>"
            line = line[quoted.end():]
        out = ""
        while True:
            email, url = _EMAIL.search(line), _URL.search(line)
            if email is None and url is None:
                break
            if email is not None and (url is None or email.start() < url.start()):
                text, target, position = email.group(1), self.ml.listinfo_url, email.start()
                length = len(text)
                text = text.replace("@", " at ")
            else:
                assert url is not None
                text = target = url.group(1)
                position, length = url.start(), len(text)
            out += f'{html_quote(line[:position])}<A HREF="{html_quote(target)}">{html_quote(text)}</A>'
            line = line[position + length:]
        return prefix + out + html_quote(line) + suffix

    def _render_article(self, article: _Article, prev: _Article | None, next_: _Article | None) -> bytes:
        ml = self.ml
        q = self._q
        made = (f"mailto:{url_quote(ml.address)}?Subject={url_quote(b'Re: ' + article.subject_raw)}"
                f"&In-Reply-To={url_quote(article.message_id)}")
        links, items = [], []
        for rel, label, other in (("Previous", "Previous message:", prev), ("Next", "Next message:", next_)):
            if other is None:
                links.append("")
                items.append("")
            else:
                links.append(f'<LINK REL="{rel}"  HREF="{url_quote(other.filename)}">')
                target = url_quote(other.filename)
                items.append(f'<LI>{label} <A HREF="{target}">{q(other.subject)}\n</A></li>')
        seq = article.sequence
        sorted_by = (
            "         <LI> <B>Messages sorted by:</B> \n"
            f'              <a href="date.html#{seq}">[ date ]</a>\n'
            f'              <a href="thread.html#{seq}">[ thread ]</a>\n'
            f'              <a href="subject.html#{seq}">[ subject ]</a>\n'
            f'              <a href="author.html#{seq}">[ author ]</a>\n'
            "         </LI>\n"
        )
        page = (
            '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN">\n'
            "<HTML>\n <HEAD>\n"
            f"   <TITLE> {q(article.subject)}\n   </TITLE>\n"
            '   <LINK REL="Index" HREF="index.html" >\n'
            f'   <LINK REL="made" HREF="{made}">\n'
            '   <META NAME="robots" CONTENT="index,nofollow">\n'
            '   <style type="text/css">\n'
            "       pre {\n"
            "           white-space: pre-wrap;       /* css-2.1, curent FF, Opera, Safari */\n"
            "           }\n"
            "   </style>\n"
            f'   <META http-equiv="Content-Type" content="text/html; charset={ml.charset}">\n'
            f"   {links[0]}\n   {links[1]}\n"
            " </HEAD>\n"
            ' <BODY BGCOLOR="#ffffff">\n'
            f"   <H1>{q(article.subject)}</H1>\n"
            f"    <B>{q(article.author)}</B> \n"
            f'    <A HREF="{made}"\n'
            f'       TITLE="{q(article.subject)}">{q(article.email)}\n'
            "       </A><BR>\n"
            f"    <I>{_i18n_ctime(article.date)}</I>\n"
            "    <P><UL>\n"
            f"        {items[0]}\n        {items[1]}\n"
            f"{sorted_by}"
            "       </UL>\n"
            "    <HR>  \n"
            "<!--beginarticle-->\n"
            f"{self._body_html(article)}\n"
            "<!--endarticle-->\n"
            "    <HR>\n"
            "    <P><UL>\n"
            "        <!--threads-->\n"
            f"\t{items[0]}\n\t{items[1]}\n"
            f"{sorted_by}"
            "       </UL>\n\n"
            "<hr>\n"
            f'<a href="{ml.listinfo_url}">More information about the {q(ml.real_name)}\n'
            "mailing list</a><br>\n"
            "</body></html>\n"
        )
        return page.encode(_page_charset(ml.charset))

    def _as_text(self, article: _Article) -> bytes:
        """HyperArch Article.as_text: one entry of the volume's .txt file."""
        cs = self.ml.charset
        email = article.email or "bogus@does.not.exist.com"
        body = "".join(article.body)
        body = re.sub(r"([-+,.\w]+)@([-+.\w]+)", r"\1 at \2", body, flags=re.ASCII)
        head = [
            f"From {email}  {_asctime(article.date)}".encode(cs, "replace"),
            f"From: {email} ({article.author})".encode(cs, "replace"),
            b"Date: " + article.datestr,
            b"Subject: " + article.subject_raw,
            *article.text_headers,
        ]
        return b"\n".join(head) + b"\n\n" + body.encode(cs, "replace") + b"\n"

    def _index_page(self, volume: _Volume, kind: str, entries: list[tuple[_Article, int | None]]) -> bytes:
        ml = self.ml
        q = self._q
        refs = {t: ("" if t == kind else f'<a href="{t}.html#start">[ {t} ]</a>') for t in
                ("thread", "subject", "author", "date")}
        dates = sorted(volume.date_index)
        first, last = int(dates[0][0]), int(dates[-1][0])
        description = _volume_description(volume.name, ml.frequency)
        nav = (
            "         <li> <b>Messages sorted by:</b>\n"
            f"\t        {refs['thread']}\n\t\t{refs['subject']}\n\t\t{refs['author']}\n\t\t{refs['date']}\n\n"
            f'\t     <li><b><a href="{ml.listinfo_url}">More info on this list...\n'
            "                    </a></b></li>\n"
        )
        out = [
            '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN">\n<HTML>\n  <HEAD>\n'
            f"     <title>The {q(ml.real_name)} {description} Archive by {kind}</title>\n"
            '     <META NAME="robots" CONTENT="noindex,follow">\n'
            f'     <META http-equiv="Content-Type" content="text/html; charset={ml.charset}">\n'
            "  </HEAD>\n"
            '  <BODY BGCOLOR="#ffffff">\n      <a name="start"></A>\n'
            f"      <h1>{description} Archives by {kind}</h1>\n      <ul>\n{nav}      </ul>\n"
            f"      <p><b>Starting:</b> <i>{_i18n_ctime(first)}</i><br>\n"
            f"         <b>Ending:</b> <i>{_i18n_ctime(last)}</i><br>\n"
            f"         <b>Messages:</b> {len(volume.date_index)}<p>\n     <ul>\n"
        ]
        depth = 0
        for article, level in entries:
            if level is not None:
                level = max(0, min(level, THREADLEVELS))
                out.append("</UL>\n" * (depth - level) if level < depth else "<UL>\n" * (level - depth))
                out.append(f"<!--{level} {article.thread_key} -->\n")
                depth = level
            out.append(
                f'<LI><A HREF="{url_quote(article.filename)}">{q(article.subject)}\n'
                f'</A><A NAME="{article.sequence}">&nbsp;</A>\n<I>{q(article.author)}\n</I>\n\n'
            )
        out.append("</UL>\n" * depth)
        out.append(
            "    </ul>\n    <p>\n"
            '      <a name="end"><b>Last message date:</b></a> \n'
            f"       <i>{_i18n_ctime(last)}</i><br>\n"
            f"    <b>Archived on:</b> <i>{_i18n_ctime(volume.updated)}</i>\n"
            f"    <p>\n   <ul>\n{nav}     </ul>\n     <p>\n     <hr>\n"
            "     <i>This archive was generated by\n"
            f"     Pipermail {PIPERMAIL_VERSION}.</i>\n  </BODY>\n</HTML>\n"
        )
        return "".join(out).encode(_page_charset(ml.charset))

    def sorted_volumes(self) -> list[str]:
        """HyperArchive.sortarchives: newest first."""
        names = list(self.volumes)
        if self.ml.frequency in (0, 1, 2):
            return sorted(names, key=lambda n: volume_bounds(n, self.ml.frequency)[0], reverse=True)
        return sorted(names, reverse=True)

    def write(self, html_dir: Path) -> None:
        for volume in self.volumes.values():
            folder = html_dir / volume.name
            folder.mkdir(parents=True, exist_ok=True)
            order = self._thread_order(volume)
            for position, article in enumerate(order):
                prev = order[position - 1] if position else None
                nxt = order[position + 1] if position + 1 < len(order) else None
                (folder / article.filename).write_bytes(self._render_article(article, prev, nxt))
            for article in volume.articles:
                frozen = self.frozen.get((volume.name, article.sequence))
                if frozen is not None:
                    (folder / article.filename).write_bytes(frozen)
            for kind, index in (("date", volume.date_index), ("author", volume.author_index),
                                ("subject", volume.subject_index)):
                entries = [(volume.by_msgid[index[key]], None) for key in sorted(index)]
                (folder / f"{kind}.html").write_bytes(self._index_page(volume, kind, entries))
            threaded = [(a, a.thread_key.count("-") - 1) for a in order]
            (folder / "thread.html").write_bytes(self._index_page(volume, "thread", threaded))
            link = folder / "index.html"
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to("thread.html")
            text = b"".join(volume.text)
            (html_dir / f"{volume.name}.txt").write_bytes(text)
            (html_dir / f"{volume.name}.txt.gz").write_bytes(gzip.compress(text, mtime=0))
        for path, payload in self.attachments.items():
            target = html_dir / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(payload)
        (html_dir / "index.html").write_bytes(self._toc(html_dir))

    def _toc(self, html_dir: Path) -> bytes:
        ml = self.ml
        q = self._q
        rows = []
        for name in self.sorted_volumes():
            size = (html_dir / f"{name}.txt.gz").stat().st_size
            shown = f" {size} bytes " if size < 1000 else f" {size // 1000} KB "
            rows.append(
                "\n\t    <tr>\n"
                f"            <td>{_volume_description(name, ml.frequency)}:</td>\n"
                "            <td>\n"
                f'              <A href="{name}/thread.html">[ Thread ]</a>\n'
                f'              <A href="{name}/subject.html">[ Subject ]</a>\n'
                f'              <A href="{name}/author.html">[ Author ]</a>\n'
                f'              <A href="{name}/date.html">[ Date ]</a>\n'
                "            </td>\n"
                f"            <td><A href=\"{name}.txt.gz\">[ Gzip'd Text{shown}]</a></td>\n"
                "            </tr>\n"
            )
        listing = ("<table border=3>\n          <tr><td>Archive</td>\n          <td>View by:</td>\n"
                   "          <td>Downloadable version</td></tr>\n" + "".join(rows) + "\n\t</table>\n")
        page = (
            '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN">\n<HTML>\n  <HEAD>\n'
            f"     <title>The {q(ml.real_name)} Archives</title>\n"
            '     <META NAME="robots" CONTENT="noindex,follow">\n'
            f'     <META http-equiv="Content-Type" content="text/html; charset={ml.charset}">\n'
            "  </HEAD>\n"
            '  <BODY BGCOLOR="#ffffff">\n'
            f"     <h1>The {q(ml.real_name)} Archives </h1>\n"
            "     <p>\n"
            f'      You can get <a href="{ml.listinfo_url}">more information about this list</a>.\n'
            "     </p>\n"
            f"     {listing}"
            "     </BODY>\n     </HTML>\n"
        )
        return page.encode(_page_charset(ml.charset))


def _empty_archive_page(ml: _List) -> bytes:
    """The index.html MailList.InitVars writes into a list's new, empty archive."""
    q = _uncanon(html_quote(ml.real_name), ml.charset)
    return (
        "<html>\n  <head>\n"
        f"    <title>Pipermail Archives for {q}</title>\n"
        f'    <META http-equiv="Content-Type" content="text/html; charset={ml.charset}">\n'
        "  </head>\n\n  <body>\n"
        f"    <h1>Pipermail Archives for {q}</h1>\n"
        "    <p>\n      No messages have been posted to this list yet, so the\n"
        "      archives are currently empty.  You can get <a\n"
        f'      href="{ml.listinfo_url}">more information about this\n      list</a>.\n'
        "  </body>\n</html>\n"
    ).encode(_page_charset(ml.charset))


# ---------------------------------------------------------------------------------------------
# One list


@dataclass
class _Entry:
    draft: _Draft
    from_line: bytes
    message: bytes
    offset: int = 0
    article: _Article | None = None
    url_before: str | None = None

    @property
    def mbox_bytes(self) -> bytes:
        # Mailbox.AppendMessage: the message, then one more newline to separate it from the next.
        return self.from_line + b"\n" + self.message + b"\n"


def _list_start(rng: random.Random) -> int:
    return calendar.timegm((2014, 1, 6, 9, 0, 0)) + rng.randrange(0, 120) * 86400


def _archive_list(var_dir: Path, ml: _List, messages: int, seed: int) -> ArchiveFacts:
    rng = random.Random(f"{seed}:{ml.name}")
    private_dir = var_dir / "archives" / "private"
    html_dir = private_dir / ml.name
    mbox_dir = private_dir / f"{ml.name}.mbox"
    for stale in (html_dir, mbox_dir):
        if stale.exists():
            shutil.rmtree(stale)
    public = var_dir / "archives" / "public" / ml.name
    public.parent.mkdir(parents=True, exist_ok=True)
    if public.is_symlink() or public.exists():
        public.unlink()
    html_dir.mkdir(parents=True)
    mbox_dir.mkdir(parents=True)
    if not ml.private:
        # MailList.CheckHTMLArchiveDir links the public name to the private folder.
        public.symlink_to(Path("..") / "private" / ml.name)
    public_link = None if ml.private else f"archives/public/{ml.name}"
    base = ArchiveFacts(
        list_name=ml.name, host_name=ml.host, archived=ml.archive, private=ml.private,
        volume_frequency=ml.frequency, html_dir=f"archives/private/{ml.name}", mbox_path=None,
        public_link=public_link, message_count=0, mbox_reader_count=0,
    )
    if not ml.archive:
        (html_dir / "index.html").write_bytes(_empty_archive_page(ml))
        return base

    start = _list_start(rng)
    archive = _Pipermail(ml, rng)
    runner_pid = rng.randrange(1000, 30000)
    rebuilt_at: int | None = None
    removed: list[RemovedMessage] = []
    if ml.name == RENUMBERED_LIST:
        entries, rebuilt_at, removed = _renumbered_entries(rng, ml, archive, messages, start, runner_pid)
    else:
        drafts = _drafts(rng, ml, messages, start, _CASES.get(ml.name, {}))
        entries = [_Entry(d, *_compose(ml, d, rng)) for d in drafts]
        for entry in entries:
            now = entry.draft.received + rng.randrange(1, 20)
            entry.article = archive.archive(entry.from_line + b"\n" + entry.message, now=now,
                                            pid=runner_pid, start_time=now)
    mbox = bytearray()
    for entry in entries:
        entry.offset = len(mbox)
        mbox += entry.mbox_bytes
    (mbox_dir / f"{ml.name}.mbox").write_bytes(bytes(mbox))
    archive.write(html_dir)
    return _facts(base, ml, archive, entries, bytes(mbox), rebuilt_at, removed)


def _renumbered_entries(rng: random.Random, ml: _List, archive: _Pipermail, messages: int, start: int,
                        pid: int) -> tuple[list[_Entry], int, list[RemovedMessage]]:
    """RENUMBERED_LIST: archived live, then purged of spam, given an older history, rebuilt."""
    history = _drafts(rng, ml, IMPORTED_HISTORY, start - 500 * 86400, _HISTORY_CASES, span_days=400)
    for draft in history:
        draft.imported = True
    live = _drafts(rng, ml, messages - IMPORTED_HISTORY + SPAM_REMOVED, start, {})
    for position in _SPAM_POSITIONS:
        spam = live[position]
        spam.spam = True
        spam.subject, spam.parent, spam.refs = "Cheap watches, best prices", None, []
        spam.body = "Visit http://watches.example.biz/ today for the best prices.\n"
        spam.name, spam.address = "Best Offers", "offers@spam.example"
        for other in live:
            if other.parent is not None and live[other.parent] is spam:
                other.parent, other.refs = None, []
    # The rebuild happened between two live posts, 60% of the way through and after the spam.
    cut = max(int(len(live) * 0.6), _SPAM_POSITIONS[-1] + 1)
    rebuilt_at = (live[cut - 1].received + live[cut].received) // 2
    history_entries = [_Entry(d, *_compose(ml, d, rng)) for d in history]
    live_entries = [_Entry(d, *_compose(ml, d, rng)) for d in live]
    # The archive as it was before the rebuild: live posts in arrival order, spam included.
    removed: list[RemovedMessage] = []
    for entry in live_entries[:cut]:
        now = entry.draft.received + rng.randrange(1, 20)
        article = archive.archive(entry.from_line + b"\n" + entry.message, now=now, pid=pid, start_time=now)
        entry.url_before = f"{article.volume}/{article.filename}"
        if entry.draft.spam:
            removed.append(RemovedMessage(article.message_id.decode("latin-1"), entry.url_before))
    # bin/arch --wipe over the edited mbox: the history first, then the surviving live posts.
    archive.reset()
    kept = history_entries + [e for e in live_entries[:cut] if not e.draft.spam]
    blob = b"".join(e.mbox_bytes for e in kept)
    owners = {}
    position = 0
    for entry in kept:
        owners[position] = entry
        position += len(entry.mbox_bytes)
    arch_pid = rng.randrange(1000, 30000)
    position = 0
    for chunk in _portable_split(blob):
        owner = owners.get(position)
        article = archive.archive(chunk, now=rebuilt_at + archive.sequence // 4, pid=arch_pid,
                                  start_time=rebuilt_at)
        if owner is not None:
            owner.article = article
        else:
            archive.fragments.append((article, max(p for p in owners if p < position)))
        position += len(chunk)
    for entry in live_entries[cut:]:
        now = entry.draft.received + rng.randrange(1, 20)
        entry.article = archive.archive(entry.from_line + b"\n" + entry.message, now=now, pid=pid,
                                        start_time=now)
    return kept + live_entries[cut:], rebuilt_at, removed


def _portable_split(blob: bytes) -> list[bytes]:
    """Python 2's PortableUnixMailbox as bin/arch used it: a message starts at every "From " line."""
    starts = [0] if blob.startswith(b"From ") else []
    starts += [m.start() + 1 for m in re.finditer(rb"\nFrom ", blob)]
    return [blob[a:b] for a, b in zip(starts, starts[1:] + [len(blob)])]


def _message_flags(entry: _Entry, parsed: _Parsed, header_block: bytes, sender_headers: bytes,
                   charsets: list[str]) -> set[str]:
    """The FLAGS a message carries, read from what was written."""
    flags = set()
    if parsed.get("message-id") is None:
        flags.add("no_msgid")
    if {"decorated_comment", "decorated_folded"} & set(entry.draft.case):
        flags.add("decorated")
    if re.search(rb"(?m)^>From ", entry.message):
        flags.add("escaped_from")
    if re.search(rb"(?m)^From ", entry.message[len(header_block):]):
        flags.add("from_in_body")
    date_value = parsed.get("date")
    if date_value is None or parsedate_tz(date_value.decode("latin-1")) is None:
        flags.add("bad_date")
    if parsed.get("x-original-date") is not None:
        flags.add("clobbered_date")
    if "tz_boundary" in entry.draft.case:
        flags.add("tz_boundary")
    if charsets:
        flags.add("encoded_headers")
    if any(b > 127 for b in sender_headers):
        flags.add("eight_bit_headers")
    if (parsed.get("content-type") or b"").lower().startswith(b"multipart/"):
        flags.add("multipart")
    return flags


def _facts(base: ArchiveFacts, ml: _List, archive: _Pipermail, entries: list[_Entry], mbox: bytes,
           rebuilt_at: int | None, removed: list[RemovedMessage]) -> ArchiveFacts:
    first_with_id: dict[str, int] = {}
    messages: list[MessageFacts] = []
    for index, entry in enumerate(entries):
        article = entry.article
        assert article is not None
        parsed = _parse_py2(entry.from_line + b"\n" + entry.message)
        header_block = entry.message.split(b"\n\n", 1)[0]
        # Only what the sender wrote counts for the header cases, not the list's own headers.
        sender_headers = b"".join(m.group(0) for m in re.finditer(
            rb"(?im)^(?:from|to|cc|subject):.*(?:\n[ \t].*)*", header_block))
        charsets = sorted({m.group(1).decode("ascii").lower()
                           for m in _ENCODED_WORD.finditer(sender_headers)})
        flags = _message_flags(entry, parsed, header_block, sender_headers, charsets)
        if rebuilt_at is not None and article.sequence != index:
            flags.add("renumbered")
        raw_id = _raw_header_value(header_block, b"message-id")
        hk_id = hyperkitty_message_id(raw_id)
        messages.append(MessageFacts(
            mbox_index=index,
            mbox_offset=entry.offset,
            message_id=raw_id,
            hyperkitty_id=hk_id,
            hyperkitty_hash=hyperkitty_hash(hk_id) if hk_id else None,
            hyperkitty_duplicate_of=first_with_id.get(hk_id) if hk_id else None,
            article_message_id=article.message_id.decode("latin-1"),
            volume=article.volume,
            article=article.sequence,
            article_url=f"{article.volume}/{article.filename}",
            date=_iso(article.date),
            subject=article.subject,
            flags=[f for f in FLAGS if f in flags],
            header_charsets=charsets,
            url_before_rebuild=entry.url_before,
            attachments=list(article.attachments),
        ))
        if hk_id is not None:
            first_with_id.setdefault(hk_id, index)
    shared = {m.hyperkitty_id for m in messages if m.hyperkitty_duplicate_of is not None}
    for message in messages:
        if message.hyperkitty_id in shared:
            message.flags = [f for f in FLAGS if f in {*message.flags, "duplicate"}]
    index_at = {e.offset: i for i, e in enumerate(entries)}
    base.mbox_path = f"archives/private/{ml.name}.mbox/{ml.name}.mbox"
    base.message_count = len(messages)
    # mailbox.mbox, like most readers, starts a message at every line beginning with "From ".
    base.mbox_reader_count = len(re.findall(rb"(?m)^From ", mbox))
    base.volumes = archive.sorted_volumes()
    base.messages = messages
    base.extra_articles = [
        ExtraArticle(article=a.sequence, volume=a.volume, article_url=f"{a.volume}/{a.filename}",
                     article_message_id=a.message_id.decode("latin-1"), cut_from=index_at[owner_offset],
                     date=_iso(a.date))
        for a, owner_offset in archive.fragments
    ]
    base.rebuilt_at = _iso(rebuilt_at) if rebuilt_at is not None else None
    base.removed_before_rebuild = removed
    return base


def _raw_header_value(header_block: bytes, name: bytes) -> str | None:
    """A header's value exactly as written: after the colon and its space, folding kept."""
    match = re.search(rb"(?im)^" + re.escape(name) + rb":[ \t]?((?:.*)(?:\n[ \t].*)*)", header_block)
    if match is None:
        return None
    return match.group(1).decode("latin-1")


# ---------------------------------------------------------------------------------------------
# Public entry points


def generate_archives(var_dir: Path, *, messages: int = 60, seed: int = 1,
                      lists: list[str] | None = None) -> dict[str, ArchiveFacts]:
    """Write the archives of every list under `var_dir/lists/` (or of `lists`) and return their facts.

    Each archived list gets `messages` messages in its mbox (the special cases need MIN_MESSAGES).
    Re-running replaces the lists' archives; the same arguments give the same bytes.
    """
    if messages < MIN_MESSAGES:
        raise ValueError(f"messages must be at least {MIN_MESSAGES} to hold every special case")
    var_dir = Path(var_dir)
    names = lists if lists is not None else sorted(p.name for p in (var_dir / "lists").iterdir()
                                                     if (p / "config.pck").is_file())
    facts: dict[str, ArchiveFacts] = {}
    for name in names:
        facts[name] = _archive_list(var_dir, _read_list(var_dir, name), messages, seed)
    return facts


@dataclass
class ArticleTreeReport:
    """What generate_article_tree wrote and how fast."""

    root: str
    lists: int
    volumes: int
    articles: int
    bytes: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.articles / self.seconds if self.seconds else float("inf")


_BENCH_PAGE = (
    '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN">\n<HTML>\n <HEAD>\n'
    "   <TITLE> %(subject)s\n   </TITLE>\n"
    '   <LINK REL="Index" HREF="index.html" >\n'
    '   <LINK REL="made" HREF="mailto:%(list)s%%40%(host)s?Subject=Re%%3A%%20%(subject_url)s'
    '&In-Reply-To=%(irt)s">\n'
    '   <META http-equiv="Content-Type" content="text/html; charset=us-ascii">\n'
    "   %(prev)s\n   %(next)s\n </HEAD>\n"
    ' <BODY BGCOLOR="#ffffff">\n   <H1>%(subject)s</H1>\n    <B>%(author)s</B> \n'
    '    <A HREF="mailto:%(list)s%%40%(host)s?Subject=Re%%3A%%20%(subject_url)s&In-Reply-To=%(irt)s"\n'
    '       TITLE="%(subject)s">%(email)s\n       </A><BR>\n    <I>%(date)s</I>\n    <HR>  \n'
    "<!--beginarticle-->\n<PRE>%(body)s</PRE>\n<!--endarticle-->\n    <HR>\n</body></html>\n"
)


def generate_article_tree(root: Path, articles: int, *, seed: int = 1, manifest: Path | None = None
                          ) -> ArticleTreeReport:
    """Write a pipermail tree of `articles` small article pages spread over lists and volumes.

    The layout is a var dir's `archives/private/<list>/<volume>/NNNNNN.html`, with date and thread
    indexes per volume, lists of about 5000 articles over four years and mostly monthly volumes.
    Each page carries its Message-ID in In-Reply-To; `manifest`, when given, receives one line
    "list TAB volume/NNNNNN.html TAB message-id" per article.
    """
    if articles < 0:
        raise ValueError("articles must not be negative")
    began = time.perf_counter()
    rng = random.Random(f"article-tree:{seed}")
    root = Path(root)
    list_count = max(1, min(40, -(-articles // 5000)))
    per_list = [articles // list_count + (1 if i < articles % list_count else 0) for i in range(list_count)]
    people = _PEOPLE["en"]
    subjects = _SUBJECTS["en"]
    bodies = [html_quote(s.replace("@", " at ")) + "\n" for s in _SENTENCES["en"]]
    written = volumes = 0
    lines: list[str] = []
    for number, count in enumerate(per_list):
        name = f"bench-{number:02d}"
        frequency = (1, 1, 1, 0, 2, 1, 3, 1, 1, 4)[number % 10]
        html_dir = root / "archives" / "private" / name
        step = max(60, (4 * 365 * 86400) // max(1, count))
        when = calendar.timegm((2008, 1, 1, 0, 0, 0)) + rng.randrange(0, 365) * 86400
        whens = []
        for _ in range(count):
            when += rng.randrange(step // 2, step + step // 2)
            whens.append(when)
        names = [volume_name(w, frequency) for w in whens]
        rows: list[str] = []
        for sequence, (when, volume) in enumerate(zip(whens, names)):
            folder = html_dir / volume
            if not sequence or names[sequence - 1] != volume:
                folder.mkdir(parents=True, exist_ok=True)
                volumes += 1
                rows = []
            author, address = people[sequence % len(people)]
            subject = f"{subjects[sequence % len(subjects)]} #{sequence}"
            message_id = f"<{rng.getrandbits(48):012x}.{sequence}@{address.split('@')[1]}>"
            filename = "%06d.html" % sequence
            same_before = sequence > 0 and names[sequence - 1] == volume
            same_after = sequence + 1 < count and names[sequence + 1] == volume
            page = _BENCH_PAGE % {
                "subject": subject, "subject_url": url_quote(subject), "list": name,
                "host": "lists.example.org",
                "irt": url_quote(message_id), "author": author, "email": address.replace("@", " at "),
                "date": _i18n_ctime(when),
                "prev": f'<LINK REL="Previous"  HREF="{sequence - 1:06d}.html">' if same_before else "",
                "next": f'<LINK REL="Next"  HREF="{sequence + 1:06d}.html">' if same_after else "",
                "body": bodies[sequence % len(bodies)],
            }
            data = page.encode("ascii")
            (folder / filename).write_bytes(data)
            written += len(data)
            rows.append(f'<LI><A HREF="{filename}">{subject}\n</A><A NAME="{sequence}">&nbsp;</A>\n'
                        f"<I>{author}\n</I>\n")
            if manifest is not None:
                lines.append(f"{name}\t{volume}/{filename}\t{message_id}\n")
            if not same_after:
                written += _bench_indexes(folder, name, rows)
    if manifest is not None:
        Path(manifest).write_text("".join(lines), encoding="ascii")
    return ArticleTreeReport(root=str(root), lists=list_count, volumes=volumes, articles=articles,
                             bytes=written, seconds=time.perf_counter() - began)


def _bench_indexes(folder: Path, name: str, rows: list[str]) -> int:
    page = (f"<HTML><HEAD><title>The {name} Archive</title></HEAD><BODY>\n<ul>\n" + "".join(rows) +
            "</ul>\n</BODY></HTML>\n").encode("ascii")
    (folder / "date.html").write_bytes(page)
    (folder / "thread.html").write_bytes(page)
    link = folder / "index.html"
    if not link.is_symlink():
        link.symlink_to("thread.html")
    return 2 * len(page)


def tree_digest(root: Path) -> str:
    """sha256 over every path, file content and symlink target under `root`, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(Path(root).rglob("*")):
        relative = path.relative_to(root).as_posix().encode()
        if path.is_symlink():
            digest.update(b"L" + relative + b"\0" + str(path.readlink()).encode() + b"\0")
        elif path.is_file():
            digest.update(b"F" + relative + b"\0" + hashlib.sha256(path.read_bytes()).digest())
        else:
            digest.update(b"D" + relative + b"\0")
    return digest.hexdigest()


def _iter_summary(facts: dict[str, ArchiveFacts]) -> Iterator[str]:
    for name, f in facts.items():
        if not f.archived:
            yield f"{name}: archiving off (empty archive)"
            continue
        cases = sorted({flag for m in f.messages for flag in m.flags})
        yield (f"{name}: {f.message_count} messages, {len(f.volumes)} volumes"
               f"{', private' if f.private else ''}; {', '.join(cases) or 'no special cases'}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m migrate.lab.mailman2_archives",
        description="Write Mailman 2.1 archives (mbox and pipermail HTML) for a generated var dir, "
                    "or a large pipermail tree for benchmarks.",
    )
    parser.add_argument("var_dir", type=Path, nargs="?", help="a var dir written by mailman2_seed")
    parser.add_argument("--messages", type=int, default=60, help="messages per archived list")
    parser.add_argument("--seed", type=int, default=1,
                        help="random seed; the same seed writes the same bytes")
    parser.add_argument("--list", "-l", action="append", dest="lists", help="only this list (repeatable)")
    parser.add_argument("--facts", type=Path, help="write the facts as JSON to this file")
    parser.add_argument("--article-tree", type=Path, metavar="ROOT", help="write a benchmark tree under ROOT")
    parser.add_argument("--articles", type=int, default=100_000, help="article pages in the benchmark tree")
    parser.add_argument("--manifest", type=Path, help="benchmark tree: write list/url/message-id lines here")
    args = parser.parse_args(argv)
    if args.article_tree is not None:
        report = generate_article_tree(args.article_tree, args.articles, seed=args.seed,
                                       manifest=args.manifest)
        print(f"{report.articles} articles in {report.lists} lists, {report.volumes} volumes, "
              f"{report.bytes / 1e6:.1f} MB in {report.seconds:.1f} s ({report.rate:.0f} articles/s)")
        return 0
    if args.var_dir is None:
        parser.error("give VAR_DIR or --article-tree ROOT")
    facts = generate_archives(args.var_dir, messages=args.messages, seed=args.seed, lists=args.lists)
    for line in _iter_summary(facts):
        print(line)
    if args.facts is not None:
        args.facts.write_text(facts_to_json(facts), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
