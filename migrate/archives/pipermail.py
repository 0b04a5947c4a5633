"""Mailman 2.1's pipermail HTML archive: volume names, article pages, and a walk over a list's folder.

Facts from Mailman 2.1's `Mailman/Archiver/HyperArch.py` and `templates/en/article.html`:
- `HyperArchive.__init__` maps `archive_volume_frequency` 0 → year, 2 → quarter, 3 → week,
  4 → day, anything else (1 is the default) → month, and `dateToVolName` names the folder with
  `time.strftime` on the server's local time: `%Y`, `%Yq<n>`, `%Y-%B` (English month names: Mailman
  never sets a locale), `Week-of-Mon-%Y%m%d` (the Monday that starts the week; `tm_wday` counts
  from Monday) and `%Y%m%d`.
- Articles are `'%06d.html' % sequence` inside the volume folder.
- Since 2.1.10 `Article.as_html` fills `in_reply_to_url` with `url_quote(self._message_id)`, the raw
  Message-ID header (angle brackets, folding and all) quoted by Python 2's `urllib.quote`; the
  template puts it in two `mailto:` links, `<LINK REL="made" ...>` in the head and the author link,
  each in a double-quoted HREF on one line.
- The body sits between `<!--beginarticle-->` and `<!--endarticle-->`.
- A poster's text reaches the page as the subject (in `<TITLE>`, `<H1>` and an attribute) and as
  the body, with `&`, `<`, `>` and `"` escaped (`CGIescape`); a body's `scheme://` URLs become links.
- Pages are written in the charset of the list's language (a `<META http-equiv="Content-Type">`).
"""

from __future__ import annotations

import html
import os
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path, PurePath
from typing import NamedTuple

YEARLY, MONTHLY, QUARTERLY, WEEKLY, DAILY = 0, 1, 2, 3, 4
FREQUENCIES = (YEARLY, MONTHLY, QUARTERLY, WEEKLY, DAILY)

MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
               "October", "November", "December")
_MONTH_NUMBERS = {name.lower(): number for number, name in enumerate(MONTH_NAMES, start=1)}

# [0-9], not \d: \d takes every script's digits and int() reads them, so 2019 in Arabic-Indic
# digits would pass for a volume.
_YEAR = re.compile(r"([0-9]{4})")
_QUARTER = re.compile(r"([0-9]{4})q([1-4])")
_MONTH = re.compile(r"([0-9]{4})-([A-Za-z]+)")
_WEEK = re.compile(r"Week-of-Mon-([0-9]{4})([0-9]{2})([0-9]{2})")
_DAY = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})")
_ARTICLE_FILE = re.compile(r"([0-9]{6,})\.html")
_BEGIN, _END = b"<!--beginarticle-->", b"<!--endarticle-->"

# A page's own Message-ID: the In-Reply-To parameter of the first mailto link in a double-quoted
# HREF before the body. A poster cannot write such an attribute (`"` is escaped in every text
# pipermail writes), and a body may hold links of its own, so neither a subject nor a body can
# lend a page another message's id. Quoted by Python 2's urllib.quote, the URL holds no quote,
# `<`, `>` or whitespace, and the value no `&` either, so one of those ends it; `&amp;` covers
# translated templates that escape the separator.
_IN_REPLY_TO = re.compile(
    rb"""href[ \t]*=[ \t]*"mailto:[^"'<>\s]*?[?&](?:amp;)?In-Reply-To=([^"'&<>\s]*)(?=["'&<>\s])""", re.I)
# The same link and the start of the body for `grep -E -i` in the C locale, which reads a file
# line by line: a link is one line, so grep's first line matching either holds the link the pattern
# above finds first (or the body's start, when no link comes before it), and `message_id_in` then
# reads that line. Tests run both patterns on the same lines.
LINK_ERE = r"""href[[:blank:]]*=[[:blank:]]*"mailto:[^"'<>[:space:]]*[?&](amp;)?In-Reply-To=[^"'&<>[:space:]]*"""
BODY_ERE = _BEGIN.decode()
_BODY_START = re.compile(re.escape(_BEGIN), re.I)
_CHARSET = re.compile(rb"""<meta[^>]+charset=["']?([A-Za-z0-9_.:-]+)""", re.I)
_H1 = re.compile(r"<h1>(.*?)</h1>", re.I | re.S)
_TITLE = re.compile(r"<title>(.*?)</title>", re.I | re.S)
_BOLD = re.compile(r"<b>(.*?)</b>", re.I | re.S)
_ITALIC = re.compile(r"<i>(.*?)</i>", re.I | re.S)
_TAG = re.compile(r"<[^>]*>")
_SPACES = re.compile(r"\s+")

# An article page's mailto links come within its first kilobyte or two; read this much first.
_HEAD_BYTES = 4096


def volume_name(day: date, frequency: int) -> str:
    """The pipermail folder Mailman 2.1 files a message of local date `day` under."""
    if frequency == YEARLY:
        return f"{day.year:04d}"
    if frequency == MONTHLY:
        return f"{day.year:04d}-{MONTH_NAMES[day.month - 1]}"
    if frequency == QUARTERLY:
        return f"{day.year:04d}q{(day.month - 1) // 3 + 1}"
    if frequency == WEEKLY:
        monday = day - timedelta(days=day.weekday())
        return f"Week-of-Mon-{monday.year:04d}{monday.month:02d}{monday.day:02d}"
    if frequency == DAILY:
        return f"{day.year:04d}{day.month:02d}{day.day:02d}"
    raise ValueError(f"archive_volume_frequency must be 0..4, got {frequency!r} "
                     "(Mailman 2.1 treats any other value as monthly)")


def parse_volume_name(name: str) -> tuple[int, date]:
    """The frequency and first day of a pipermail volume folder name; ValueError if it is none."""
    try:
        if match := _YEAR.fullmatch(name):
            return YEARLY, date(int(match[1]), 1, 1)
        if match := _QUARTER.fullmatch(name):
            return QUARTERLY, date(int(match[1]), 3 * int(match[2]) - 2, 1)
        if match := _MONTH.fullmatch(name):
            return MONTHLY, date(int(match[1]), _MONTH_NUMBERS[match[2].lower()], 1)
        if match := _WEEK.fullmatch(name):
            # Not checked to be a Monday: dateToVolName subtracts whole days of seconds from local
            # time, which lands on the Sunday when a DST change falls inside the week.
            return WEEKLY, date(int(match[1]), int(match[2]), int(match[3]))
        if match := _DAY.fullmatch(name):
            return DAILY, date(int(match[1]), int(match[2]), int(match[3]))
    except (KeyError, ValueError):
        pass
    raise ValueError(f"not a pipermail volume name: {name!r}")


@dataclass(frozen=True)
class Article:
    """What an article page says about its message. `message_id` is the raw header value."""

    message_id: str | None
    subject: str | None
    author: str | None
    date: str | None
    has_body: bool
    charset: str


def message_id_in(page: bytes) -> str | None:
    """The Message-ID carried by the `In-Reply-To=` parameter of a page's mailto links, or None.

    `page` is a whole page, or its first line that `LINK_ERE` or `BODY_ERE` matches. URL-unquoted;
    angle brackets, folding and decorations kept as the header had them. Bytes that are not UTF-8
    become U+FFFD, which Message-ID normalisation drops like any non-ASCII.
    """
    body = _BODY_START.search(page)
    # The end of the text (or of the head) ends a value as a newline would.
    match = _IN_REPLY_TO.search(page[:body.start()] + b"\n" if body else page + b"\n")
    return None if match is None else _unquote_id(match[1])


def _unquote_id(quoted: bytes) -> str | None:
    if not quoted:
        return None
    return urllib.parse.unquote_to_bytes(quoted).decode("utf-8", "replace")


def _decode(page: bytes) -> tuple[str, str]:
    """Page text and the charset used: the declared one, else UTF-8, else latin-1 (never fails)."""
    declared = _CHARSET.search(page[:_HEAD_BYTES])
    candidates = [declared[1].decode("ascii").lower()] if declared else []
    for charset in candidates + ["utf-8"]:
        try:
            return page.decode(charset), charset
        except (LookupError, UnicodeDecodeError):
            continue
    return page.decode("latin-1"), "latin-1"


def _clean(fragment: str | None) -> str | None:
    if fragment is None:
        return None
    text = _SPACES.sub(" ", html.unescape(_TAG.sub("", fragment))).strip()
    return text or None


def read_article(page: bytes) -> Article:
    """Parse an article page (`NNNNNN.html`) of any age and charset; missing parts are None."""
    text, charset = _decode(page)
    heading = _H1.search(text) or _TITLE.search(text)
    subject = heading[1] if heading else None
    after = heading.end() if heading else 0
    author = _BOLD.search(text, after)
    when = _ITALIC.search(text, author.end() if author else after)
    return Article(
        message_id=message_id_in(page),
        subject=_clean(subject),
        author=_clean(author[1]) if author else None,
        date=_clean(when[1]) if when else None,
        has_body=_BEGIN in page and page.find(_END) > page.find(_BEGIN),
        charset=charset,
    )


class ArticleRef(NamedTuple):
    """One article file of a list's pipermail folder and the Message-ID its page carries.

    `path` is the file (a local Path from `walk_archive`; from a remote listing, the path relative
    to the archive folder). A named tuple: a large site has hundreds of thousands of them.
    """

    volume: str
    number: int
    relative_url: str
    path: PurePath | str
    message_id: str | None


def _head_message_id(path: Path) -> str | None:
    """The page's Message-ID, reading only as much of the file as it takes to find it."""
    with path.open("rb") as page:
        data = page.read(_HEAD_BYTES)
        while True:
            if _BODY_START.search(data):
                return message_id_in(data)
            # A value cut by the end of `data` does not match: the pattern wants its terminator.
            match = _IN_REPLY_TO.search(data)
            if match is not None:
                return _unquote_id(match[1])
            more = page.read(len(data))
            if not more:
                return message_id_in(data)
            data += more


def _not_followed(entry: os.DirEntry, list_dir: Path, skipped: list[str] | None) -> bool:
    """Whether `entry` is a symbolic link, noted in `skipped` with where it points."""
    if not entry.is_symlink():
        return False
    if skipped is not None:
        relative = Path(entry.path).relative_to(list_dir)
        skipped.append(f"{relative}: a symbolic link to {os.readlink(entry.path)}, not followed")
    return True


def volumes(list_dir: Path, skipped: list[str] | None = None) -> list[tuple[str, int, date]]:
    """The volume folders of a list's pipermail folder, oldest first: (name, frequency, start)."""
    found = []
    with os.scandir(list_dir) as entries:
        for entry in entries:
            if entry.is_dir() and not _not_followed(entry, list_dir, skipped):
                try:
                    frequency, start = parse_volume_name(entry.name)
                except ValueError:
                    continue
                found.append((entry.name, frequency, start))
    return sorted(found, key=lambda item: (item[2], item[0]))


def walk_archive(list_dir: str | os.PathLike[str], skipped: list[str] | None = None) -> Iterator[ArticleRef]:
    """Every `<volume>/<NNNNNN>.html` under a list's pipermail folder, in volume then number order.

    `relative_url` is the path below the list's archive URL (`2019-February/000123.html`). Folders
    that are not volumes (`attachments/`, `database/`) are skipped. Streams: one volume's file
    names are held at a time, and each page is read only up to its Message-ID.

    A volume or article that is a symbolic link is not followed (the legacy host's listing does
    not follow one either): it may point at another list's pages or at any file. Each one is
    reported in `skipped` when given.
    """
    list_dir = Path(list_dir)
    for name, _, _ in volumes(list_dir, skipped):
        folder = list_dir / name
        with os.scandir(folder) as entries:
            articles = sorted(
                (int(match[1]), entry.name)
                for entry in entries
                if (match := _ARTICLE_FILE.fullmatch(entry.name)) and entry.is_file()
                and not _not_followed(entry, list_dir, skipped)
            )
        for number, filename in articles:
            path = folder / filename
            yield ArticleRef(name, number, f"{name}/{filename}", path, _head_message_id(path))
