"""Redirects from Mailman 2's URLs to HyperKitty and Postorius, rendered for nginx or Apache.

The map is data: `RedirectEntry` records (old path → new URL) go into `build_map`, which keeps the
unambiguous ones and reports the rest; `render_nginx` and `render_apache` turn it into files.
Installing them is done elsewhere. Unmapped URLs are meant to fall through to a static copy of the
old pipermail tree, so an entry is only made where the new page shows the same thing.

Targets (HyperKitty 1.3.12 `hyperkitty/urls.py`, Postorius 1.3.13):
- message: `/hyperkitty/list/<list@domain>/message/<hash>/` (`msgid.message_hash`);
- list: `/hyperkitty/list/<list@domain>/`;
- month: `/hyperkitty/list/<list@domain>/<YYYY>/<MM>/` (`hk_archives_with_month`; HyperKitty's own
  pipermail compat view zero-pads the month the same way), day: `.../<YYYY>/<MM>/<DD>/`
  (`hk_archives_with_day`). HyperKitty has no year, quarter or week page, so those volumes get no
  entry and stay on the static copy. (HyperKitty's compat view `arch_month` is no substitute: its
  `month_name_to_num` builds the month table with `range(1, 12)`, so December fails.)
- Postorius list page: `/postorius/lists/<list>.<domain>/` (the list id).

Old paths: pipermail under `/pipermail/<list>/`, private archives under `/mailman/private/<list>/`
or `/cgi-bin/mailman/private/<list>/` (Mailman 2's default URL pattern is `/mailman/`, Debian's is
`/cgi-bin/mailman/`), and the CGI scripts listinfo, admin, admindb, options, subscribe, roster and
private under both prefixes.

Keys are decoded paths, as nginx's `$uri` and Apache's `%{REQUEST_URI}` hold them. nginx compares
map keys ignoring ASCII case, so `build_map` treats paths that differ only in case as one path.
`archive_entries` makes the entries of a whole list from its pipermail walk and the ids HyperKitty
holds.
"""

from __future__ import annotations

import re
import urllib.parse
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import asdict, dataclass, field

from .msgid import message_hash, normalise
from .pipermail import DAILY, MONTHLY, ArticleRef, parse_volume_name

HYPERKITTY = "/hyperkitty"
POSTORIUS = "/postorius"
PIPERMAIL = "/pipermail"
SCRIPT_PREFIXES = ("/mailman", "/cgi-bin/mailman")
WEB_UI_SCRIPTS = ("listinfo", "admin", "admindb", "options", "subscribe", "roster", "private")
VOLUME_PAGES = ("date.html", "thread.html", "subject.html", "author.html", "index.html")

NGINX_VARIABLE = "migrate_redirect"
APACHE_MAP = "migrate"

# A target must be a plain URL path: no whitespace (Apache map values end at the first one), no `$`
# (nginx would read a variable), no quotes or backslashes.
_TARGET = re.compile(r"/[A-Za-z0-9\-._~:/?#\[\]@!&()*+,;=%]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Bytes mod_rewrite's `int:escape` (ap_escape_uri, T_OS_ESCAPE_PATH in httpd's gen_test_char.c)
# leaves alone; everything else becomes %xx with lowercase hex (httpd util.c c2x). Apache 2.4 keeps
# `;`, which 1.3 escaped; the tests ask a running Apache for every printable ASCII character.
_APACHE_KEEP = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789$-_.+!*'(),:;@&=/~")
_APACHE_ESCAPES = tuple(chr(b) if b in _APACHE_KEEP else f"%{b:02x}" for b in range(256))


@dataclass(frozen=True)
class RedirectEntry:
    """One old path and where it now lives.

    `source` names the legacy object the path shows (for an article `<list>/<volume>/<NNNNNN>`), so
    that several URLs of one article are told apart from two articles with the same Message-ID.
    A message entry without one counts as its own article.
    """

    old_path: str
    new_url: str
    kind: str = "message"
    source: str = ""
    message_id: str | None = None


@dataclass(frozen=True)
class Conflict:
    """Old paths (equal once ASCII case is ignored, as nginx compares) with different targets."""

    old_paths: tuple[str, ...]
    targets: tuple[str, ...]


@dataclass(frozen=True)
class DuplicateMessage:
    """Articles that share a Message-ID: HyperKitty kept one message, which one is not known."""

    message_id: str | None
    new_url: str
    sources: tuple[str, ...]
    old_paths: tuple[str, ...]


@dataclass(frozen=True)
class Rejected:
    old_path: str
    new_url: str
    reason: str


@dataclass
class RedirectMap:
    """The redirects to install (sorted by old path) and everything left out, with the reason."""

    redirects: dict[str, str] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)
    duplicates: list[DuplicateMessage] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.redirects)

    def to_json(self) -> dict:
        data = asdict(self)
        data["counts"] = {"redirects": len(self.redirects), "conflicts": len(self.conflicts),
                          "duplicates": len(self.duplicates), "rejected": len(self.rejected)}
        return data


# --- targets ------------------------------------------------------------------------------------

def _split_address(list_address: str) -> tuple[str, str]:
    local, at, domain = list_address.rpartition("@")
    if not at or not local or not domain:
        raise ValueError(f"expected the list's posting address (list@domain), got {list_address!r}")
    return local, domain


def hyperkitty_list_url(list_address: str) -> str:
    _split_address(list_address)
    return f"{HYPERKITTY}/list/{urllib.parse.quote(list_address, safe='@')}/"


def hyperkitty_message_url(list_address: str, message_id: str) -> str:
    """The message page for a Message-ID as the header or the pipermail page has it."""
    normalised = normalise(message_id)
    if normalised is None:
        raise ValueError(f"no usable Message-ID in {message_id!r}")
    return f"{hyperkitty_list_url(list_address)}message/{message_hash(normalised)}/"


def hyperkitty_volume_url(list_address: str, volume: str) -> str | None:
    """HyperKitty's page for the same period as a pipermail volume, or None where it has none."""
    frequency, start = parse_volume_name(volume)
    base = hyperkitty_list_url(list_address)
    if frequency == MONTHLY:
        return f"{base}{start.year:04d}/{start.month:02d}/"
    if frequency == DAILY:
        return f"{base}{start.year:04d}/{start.month:02d}/{start.day:02d}/"
    return None


def postorius_list_url(list_address: str) -> str:
    local, domain = _split_address(list_address)
    return f"{POSTORIUS}/lists/{urllib.parse.quote(local, safe='')}.{urllib.parse.quote(domain, safe='')}/"


# --- entries ------------------------------------------------------------------------------------

def _archive_bases(list_name: str) -> list[str]:
    return [f"{PIPERMAIL}/{list_name}"] + [f"{prefix}/private/{list_name}" for prefix in SCRIPT_PREFIXES]


def article_entries(list_name: str, list_address: str, volume: str, number: int,
                    message_id: str | None) -> list[RedirectEntry]:
    """The public and private URLs of one pipermail article → its HyperKitty message page.

    No entries when the page carries no usable Message-ID (pages older than Mailman 2.1.10).
    """
    normalised = normalise(message_id)
    if normalised is None:
        return []
    target = hyperkitty_message_url(list_address, normalised)
    source = f"{list_name}/{volume}/{number:06d}"
    return [RedirectEntry(f"{base}/{volume}/{number:06d}.html", target, "message", source, normalised)
            for base in _archive_bases(list_name)]


def volume_entries(list_name: str, list_address: str, volume: str) -> list[RedirectEntry]:
    """A volume folder and its index pages → HyperKitty's month or day page, where there is one."""
    target = hyperkitty_volume_url(list_address, volume)
    if target is None:
        return []
    source = f"{list_name}/{volume}"
    entries = []
    for base in _archive_bases(list_name):
        folder = f"{base}/{volume}"
        for path in (folder, folder + "/", *(f"{folder}/{page}" for page in VOLUME_PAGES)):
            entries.append(RedirectEntry(path, target, "volume", source))
    return entries


def list_entries(list_name: str, list_address: str) -> list[RedirectEntry]:
    """A list's archive index and its web UI pages → HyperKitty's and Postorius's list pages."""
    archive, settings = hyperkitty_list_url(list_address), postorius_list_url(list_address)
    entries = []
    for base in _archive_bases(list_name):
        for path in (base, base + "/", base + "/index.html"):
            entries.append(RedirectEntry(path, archive, "list", list_name))
    for prefix in SCRIPT_PREFIXES:
        for script in WEB_UI_SCRIPTS:
            target = archive if script == "private" else settings
            for path in (f"{prefix}/{script}/{list_name}", f"{prefix}/{script}/{list_name}/"):
                if not any(e.old_path == path for e in entries):
                    entries.append(RedirectEntry(path, target, "web_ui", list_name))
    return entries


@dataclass(frozen=True)
class UnmappedArticle:
    """An article left to the static copy, and why."""

    source: str
    message_id: str | None
    reason: str


def archive_entries(list_name: str, list_address: str, articles: Iterable[ArticleRef], *,
                    imported_ids: Collection[str]) -> tuple[list[RedirectEntry], list[UnmappedArticle]]:
    """Entries for a list's whole pipermail archive: articles, volumes, the list's own pages.

    An article is mapped only if HyperKitty holds its Message-ID (`imported_ids`, normalised, as
    `mbox.prepare` lists them): pages can carry ids that are in no mbox message (Mailman 2's
    Scrubber gave posts without a Message-ID one on the page only, and an unescaped `From ` line
    made a page of a message's tail), and a redirect there would end on a 404.
    """
    entries: list[RedirectEntry] = []
    unmapped: list[UnmappedArticle] = []
    volumes: set[str] = set()
    for article in articles:
        volumes.add(article.volume)
        normalised = normalise(article.message_id)
        source = f"{list_name}/{article.volume}/{article.number:06d}"
        if normalised is None:
            unmapped.append(UnmappedArticle(source, article.message_id, "the page carries no usable Message-ID"))
        elif normalised not in imported_ids:
            unmapped.append(UnmappedArticle(source, normalised, "HyperKitty holds no message with this Message-ID"))
        else:
            entries.extend(article_entries(list_name, list_address, article.volume, article.number, normalised))
    for volume in sorted(volumes):
        entries.extend(volume_entries(list_name, list_address, volume))
    entries.extend(list_entries(list_name, list_address))
    return entries, unmapped


def site_entries() -> list[RedirectEntry]:
    """Pages of the whole Mailman 2 site: the CGI scripts without a list, the pipermail root."""
    entries = [RedirectEntry(path, f"{HYPERKITTY}/", "site", "site") for path in (PIPERMAIL, PIPERMAIL + "/")]
    for prefix in SCRIPT_PREFIXES:
        for script in WEB_UI_SCRIPTS:
            for path in (f"{prefix}/{script}", f"{prefix}/{script}/"):
                entries.append(RedirectEntry(path, f"{POSTORIUS}/lists/", "site", "site"))
    return entries


# --- the map ------------------------------------------------------------------------------------

def _ascii_lower(text: str) -> str:
    # nginx lowercases map keys and looked-up values byte-wise, ASCII letters only (ngx_hash_strlow).
    return text.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def build_map(entries: Iterable[RedirectEntry]) -> RedirectMap:
    """Keep the entries whose old path has one target and whose message is one article.

    - An old path given twice with different targets is a conflict: reported, not mapped. Paths
      equal but for ASCII case count as one path, since nginx matches map keys that way.
    - Two articles (different `source`) pointing at one message page share a Message-ID: HyperKitty
      imported only one of them and which one is not known here, so neither is mapped (both stay on
      the static copy) and the pair is reported.
    - Entries that cannot be written safely into a server configuration are rejected.
    """
    result = RedirectMap()
    targets: dict[str, set[str]] = defaultdict(set)
    spellings: dict[str, set[str]] = defaultdict(set)
    message_sources: dict[str, set[str]] = defaultdict(set)
    message_ids: dict[str, str | None] = {}
    paths_by_target: dict[str, set[str]] = defaultdict(set)
    for entry in entries:
        if not entry.old_path.startswith("/") or _CONTROL.search(entry.old_path):
            result.rejected.append(Rejected(entry.old_path, entry.new_url, "old path is not a clean absolute path"))
            continue
        if not _TARGET.fullmatch(entry.new_url):
            result.rejected.append(Rejected(entry.old_path, entry.new_url, "target is not a plain URL path"))
            continue
        folded = _ascii_lower(entry.old_path)
        targets[folded].add(entry.new_url)
        spellings[folded].add(entry.old_path)
        if entry.kind == "message":
            message_sources[entry.new_url].add(entry.source or entry.old_path)
            message_ids.setdefault(entry.new_url, entry.message_id)
            paths_by_target[entry.new_url].add(entry.old_path)

    duplicated = {url for url, sources in message_sources.items() if len(sources) > 1}
    for url in sorted(duplicated):
        result.duplicates.append(DuplicateMessage(message_ids[url], url, tuple(sorted(message_sources[url])),
                                                  tuple(sorted(paths_by_target[url]))))
    redirects = {}
    for folded, urls in targets.items():
        if len(urls) > 1:
            result.conflicts.append(Conflict(tuple(sorted(spellings[folded])), tuple(sorted(urls))))
            continue
        (url,) = urls
        if url in duplicated:
            continue
        for path in spellings[folded]:
            redirects[path] = url
    result.conflicts.sort(key=lambda conflict: conflict.old_paths)
    result.rejected.sort(key=lambda rejected: (rejected.old_path, rejected.new_url))
    result.redirects = dict(sorted(redirects.items()))
    return result


# --- nginx --------------------------------------------------------------------------------------

def _nginx_string(text: str) -> str:
    # Inside double quotes nginx's parser (ngx_conf_read_token) only treats `\"`, `\'`, `\\`, `\t`,
    # `\r`, `\n` specially; `;`, `{`, `}`, `#` and spaces are plain characters there. Map keys are
    # never variables, so `$` needs nothing.
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _power_of_two_at_least(value: int) -> int:
    size = 1
    while size < value:
        size *= 2
    return size


def render_nginx(redirect_map: RedirectMap, *, variable: str = NGINX_VARIABLE) -> tuple[str, str]:
    """The http-level file (a `map $uri $<variable>`) and the server-level snippet using it.

    Paths that differ only in ASCII case are one key to nginx; the first in sorted order is written.
    The file sets `map_hash_max_size` and `map_hash_bucket_size` for the map's size and key lengths;
    an http block may set each only once, so no other included file should set them.
    """
    keys: dict[str, tuple[str, str]] = {}
    for path, url in redirect_map.redirects.items():
        keys.setdefault(_ascii_lower(path), (path, url))
    longest = max((len(path.encode("utf-8")) for path, _ in keys.values()), default=0)
    # ngx_hash_init stores a key as a pointer plus the key and 2 bytes, aligned to 8, and ends a
    # bucket with a pointer. Buckets for 8 keys and at least twice as many buckets as keys let the
    # first sizes nginx tries succeed; smaller settings work too but log "could not build optimal
    # map_hash" and make nginx search longer at every start.
    element = 8 + (longest + 2 + 7) // 8 * 8
    bucket = max(64, _power_of_two_at_least(8 * element + 8))
    max_size = max(1024, _power_of_two_at_least(2 * len(keys)))
    lines = [
        "# Redirects of Mailman 2 URLs to Mailman 3 (generated; do not edit).",
        f"# {len(keys)} paths. Include at http level; the server snippet reads ${variable}.",
        f"map_hash_max_size {max_size};",
        f"map_hash_bucket_size {bucket};",
        f"map $uri ${variable} {{",
        '    default "";',
    ]
    lines.extend(f"    {_nginx_string(path)} {_nginx_string(url)};" for path, url in keys.values())
    lines.append("}")
    server = "\n".join([
        "# Redirects of Mailman 2 URLs (generated). Include in the server block that served them;",
        "# paths without a redirect go on to the locations below (the static copy of /pipermail/).",
        f"if (${variable}) {{",
        f"    return 301 ${variable};",
        "}",
    ]) + "\n"
    return "\n".join(lines) + "\n", server


# --- Apache -------------------------------------------------------------------------------------

def apache_escape(path: str) -> str:
    """`path` as mod_rewrite's `int:escape` turns the decoded request path into a map key."""
    return "".join(_APACHE_ESCAPES[b] for b in path.encode("utf-8"))


def _apache_argument(text: str) -> str:
    if '"' in text or _CONTROL.search(text):
        raise ValueError(f"cannot be written into an Apache directive: {text!r}")
    return f'"{text}"'


def render_apache(redirect_map: RedirectMap, *, map_path: str, dbm: bool = False,
                  map_name: str = APACHE_MAP) -> tuple[str, str]:
    """The `RewriteMap` text file and the configuration snippet that uses it.

    `map_path` is where the map will be installed: the text file itself, or with `dbm=True` the
    DBM file built from it by `httxt2dbm_argv` (recommended for large maps: mod_rewrite scans a
    txt map line by line for every key not yet in its cache). Keys are escaped with the same rule
    as the `int:escape` lookup in the snippet, since a txt map key cannot hold a space.
    """
    lines = [
        "# Redirects of Mailman 2 URLs to Mailman 3 (generated; do not edit).",
        "# Keys are request paths escaped like mod_rewrite's int:escape.",
    ]
    lines.extend(f"{apache_escape(path)} {url}" for path, url in redirect_map.redirects.items())
    kind = "dbm" if dbm else "txt"
    lookup = f"${{{map_name}:${{{map_name}_escape:%{{REQUEST_URI}}}}}}"
    snippet = "\n".join([
        "# Redirects of Mailman 2 URLs (generated). Put in the <VirtualHost> that served them:",
        "# RewriteMap is not allowed in .htaccess or <Directory>. Unmapped paths are left alone.",
        "RewriteEngine On",
        f"RewriteMap {map_name} {_apache_argument(f'{kind}:{map_path}')}",
        f"RewriteMap {map_name}_escape int:escape",
        f'RewriteCond "{lookup}" "^(/.+)$"',
        'RewriteRule "^" "%1" [R=301,L,NE]',
    ]) + "\n"
    return "\n".join(lines) + "\n", snippet


def httxt2dbm_argv(txt_path: str, dbm_path: str, *, program: str = "httxt2dbm") -> Sequence[str]:
    """The command that builds the DBM map for `render_apache(..., dbm=True)` from the txt map."""
    return [program, "-i", txt_path, "-o", dbm_path]
