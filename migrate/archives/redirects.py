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
private under both prefixes. The private script shows the same pages as pipermail, so the map holds
an archive page once, under `/pipermail/`: both renderings first turn `<prefix>/private/<rest>`
into `/pipermail/<rest>` (`canonical_path`) and look that up. One key per page instead of three
keeps the map, the files and the server's memory a third of the size.

Keys are decoded paths, as nginx's `$uri` and Apache's `%{REQUEST_URI}` hold them. nginx compares
map keys ignoring ASCII case, so `build_map` treats paths that differ only in case as one path.
`archive_entries` makes the entries of a whole list from its pipermail walk and the ids HyperKitty
holds.
"""

from __future__ import annotations

import contextlib
import gc
import re
import urllib.parse
from collections.abc import Collection, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

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
_APACHE_NEEDS_ESCAPE = re.compile(r"[^A-Za-z0-9$\-_.+!*'(),:;@&=/~]")

# `<prefix>/private/<rest>` is the same page as `/pipermail/<rest>` (the private CGI serves the
# archive folder). Both servers apply this rewrite before the lookup, ASCII case ignored like
# nginx's map keys; `/mailman/private` and `/mailman/private/` themselves (no list) stay apart.
PRIVATE_ALIAS = r"^/(?:cgi-bin/)?mailman/private/(.+)$"
_PRIVATE_ALIAS = re.compile(PRIVATE_ALIAS, re.ASCII | re.IGNORECASE)


class RedirectEntry(NamedTuple):
    """One old path and where it now lives.

    `source` names the legacy object the path shows (for an article `<list>/<volume>/<NNNNNN>`), so
    that several URLs of one article are told apart from two articles with the same Message-ID.
    A message entry without one counts as its own article. (A named tuple: a large archive makes
    hundreds of thousands of them.)
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


@contextlib.contextmanager
def paused_gc():
    """No cyclic garbage collection inside: building a large map allocates hundreds of thousands
    of tuples (none in a cycle), and every collection would walk all of them again, doubling the
    build time. The previous state is restored, so nesting is harmless."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


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

def canonical_path(path: str) -> str:
    """The key a request path is looked up under: `<prefix>/private/<rest>` → `/pipermail/<rest>`."""
    match = _PRIVATE_ALIAS.match(path)
    return f"{PIPERMAIL}/{match[1]}" if match else path


def _archive_base(list_name: str) -> str:
    """Where a list's archive pages are keyed (the private URLs reach them by `canonical_path`)."""
    return f"{PIPERMAIL}/{list_name}"


def article_entries(list_name: str, list_address: str, volume: str, number: int,
                    message_id: str | None) -> list[RedirectEntry]:
    """The URL of one pipermail article (public and, through `canonical_path`, private) → its
    HyperKitty message page.

    No entries when the page carries no usable Message-ID (pages older than Mailman 2.1.10).
    """
    normalised = normalise(message_id)
    if normalised is None:
        return []
    return [_article_entry(list_name, hyperkitty_list_url(list_address), volume, number, normalised)]


def _article_entry(list_name: str, list_url: str, volume: str, number: int, normalised: str) -> RedirectEntry:
    page = f"{volume}/{number:06d}"
    return RedirectEntry(f"{PIPERMAIL}/{list_name}/{page}.html", f"{list_url}message/{message_hash(normalised)}/",
                         "message", f"{list_name}/{page}", normalised)


def volume_entries(list_name: str, list_address: str, volume: str) -> list[RedirectEntry]:
    """A volume folder and its index pages → HyperKitty's month or day page, where there is one."""
    target = hyperkitty_volume_url(list_address, volume)
    if target is None:
        return []
    source = f"{list_name}/{volume}"
    folder = f"{_archive_base(list_name)}/{volume}"
    return [RedirectEntry(path, target, "volume", source)
            for path in (folder, folder + "/", *(f"{folder}/{page}" for page in VOLUME_PAGES))]


def list_entries(list_name: str, list_address: str) -> list[RedirectEntry]:
    """A list's archive index and its web UI pages → HyperKitty's and Postorius's list pages.

    The private script's URLs with the list name are the archive's (`canonical_path`)."""
    archive, settings = hyperkitty_list_url(list_address), postorius_list_url(list_address)
    base = _archive_base(list_name)
    entries = [RedirectEntry(path, archive, "list", list_name) for path in (base, base + "/", base + "/index.html")]
    for prefix in SCRIPT_PREFIXES:
        for script in WEB_UI_SCRIPTS:
            if script != "private":
                for path in (f"{prefix}/{script}/{list_name}", f"{prefix}/{script}/{list_name}/"):
                    entries.append(RedirectEntry(path, settings, "web_ui", list_name))
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
    list_url = hyperkitty_list_url(list_address)
    for article in articles:
        volumes.add(article.volume)
        normalised = normalise(article.message_id)
        if normalised is None:
            unmapped.append(UnmappedArticle(f"{list_name}/{article.volume}/{article.number:06d}",
                                            article.message_id, "the page carries no usable Message-ID"))
        elif normalised not in imported_ids:
            unmapped.append(UnmappedArticle(f"{list_name}/{article.volume}/{article.number:06d}",
                                            normalised, "HyperKitty holds no message with this Message-ID"))
        else:
            entries.append(_article_entry(list_name, list_url, article.volume, article.number, normalised))
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
    with paused_gc():
        return _build_map(entries)


def _build_map(entries: Iterable[RedirectEntry]) -> RedirectMap:
    result = RedirectMap()
    # Per ASCII-folded key: its first target, or a set once a second one turns up (rare).
    targets: dict[str, str | set[str]] = {}
    spellings: dict[str, str | set[str]] = {}
    # Per message page: the first article's source and its entries; a page reached from several
    # articles moves to `shared`, which collects every source and entry to report them.
    first_message: dict[str, tuple[str, list[RedirectEntry]]] = {}
    shared: dict[str, tuple[set[str], list[RedirectEntry]]] = {}
    clean_targets: set[str] = set()
    lower = _ASCII_LOWER
    control, target_ok, alias = _CONTROL.search, _TARGET.fullmatch, _PRIVATE_ALIAS.match
    for entry in entries:
        old_path, url = entry.old_path, entry.new_url
        if old_path[:1] != "/" or control(old_path):
            result.rejected.append(Rejected(old_path, url, "old path is not a clean absolute path"))
            continue
        if url not in clean_targets:
            if not target_ok(url):
                result.rejected.append(Rejected(old_path, url, "target is not a plain URL path"))
                continue
            clean_targets.add(url)
        if old_path[1:2] in "cCmM" and (match := alias(old_path)):
            old_path = f"{PIPERMAIL}/{match[1]}"
        folded = old_path.translate(lower)
        # The common case inline (a key seen once); _collect for the rest.
        if folded not in targets:
            targets[folded] = url
            spellings[folded] = old_path
        else:
            _collect(targets, folded, url)
            _collect(spellings, folded, old_path)
        if entry.kind == "message":
            source = entry.source or old_path
            first = first_message.get(url)
            if first is None:
                first_message[url] = (source, [entry])
            elif url in shared:
                shared[url][0].add(source)
                shared[url][1].append(entry)
            elif first[0] == source:
                first[1].append(entry)
            else:
                shared[url] = ({first[0], source}, [*first[1], entry])

    duplicated = set(shared)
    for url in sorted(duplicated):
        sources, found = shared[url]
        result.duplicates.append(DuplicateMessage(found[0].message_id, url, tuple(sorted(sources)),
                                                  tuple(sorted({canonical_path(e.old_path) for e in found}))))
    redirects = {}
    for folded, url in targets.items():
        if isinstance(url, set):
            names = spellings[folded]
            result.conflicts.append(Conflict(tuple(sorted(names if isinstance(names, set) else {names})),
                                             tuple(sorted(url))))
            continue
        if url in duplicated:
            continue
        names = spellings[folded]
        if isinstance(names, set):
            for path in names:
                redirects[path] = url
        else:
            redirects[names] = url
    result.conflicts.sort(key=lambda conflict: conflict.old_paths)
    result.rejected.sort(key=lambda rejected: (rejected.old_path, rejected.new_url))
    result.redirects = dict(sorted(redirects.items()))
    return result


def _collect(found: dict, key: str, value: str) -> None:
    """found[key] = value; a second, different value turns it into the set of both."""
    have = found.get(key)
    if have is None:
        found[key] = value
    elif isinstance(have, set):
        have.add(value)
    elif have != value:
        found[key] = {have, value}


# --- nginx --------------------------------------------------------------------------------------

def _nginx_string(text: str) -> str:
    # Inside double quotes nginx's parser (ngx_conf_read_token) only treats `\"`, `\'`, `\\`, `\t`,
    # `\r`, `\n` specially; `;`, `{`, `}`, `#` and spaces are plain characters there. Map keys are
    # never variables, so `$` needs nothing.
    if "\\" in text or '"' in text:
        text = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def _power_of_two_at_least(value: int) -> int:
    size = 1
    while size < value:
        size *= 2
    return size


def render_nginx(redirect_map: RedirectMap, *, variable: str = NGINX_VARIABLE) -> tuple[str, str]:
    """The http-level file (two maps: `$uri` to its `canonical_path`, that to the target) and the
    server-level snippet using it.

    Paths that differ only in ASCII case are one key to nginx; the first in sorted order is written.
    The file sets `map_hash_max_size` and `map_hash_bucket_size` for the map's size and key lengths;
    an http block may set each only once, so no other included file should set them.
    """
    with paused_gc():
        return _render_nginx(redirect_map, variable)


def _render_nginx(redirect_map: RedirectMap, variable: str) -> tuple[str, str]:
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
        "# <prefix>/private/<rest> shows the same page as /pipermail/<rest>.",
        f"map $uri ${variable}_key {{",
        f"    {_nginx_string('~*' + PRIVATE_ALIAS.replace('(.+)', f'(?<{variable}_rest>.+)'))} "
        f"{PIPERMAIL}/${variable}_rest;",
        "    default $uri;",
        "}",
        f"map ${variable}_key ${variable} {{",
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
    if not _APACHE_NEEDS_ESCAPE.search(path):
        return path
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
    with paused_gc():
        lines.extend(f"{apache_escape(path)} {url}" for path, url in redirect_map.redirects.items())
    kind = "dbm" if dbm else "txt"

    def lookup(path: str) -> str:
        return f"${{{map_name}:${{{map_name}_escape:{path}}}}}"

    snippet = "\n".join([
        "# Redirects of Mailman 2 URLs (generated). Put in the <VirtualHost> that served them:",
        "# RewriteMap is not allowed in .htaccess or <Directory>. Unmapped paths are left alone.",
        "RewriteEngine On",
        f"RewriteMap {map_name} {_apache_argument(f'{kind}:{map_path}')}",
        f"RewriteMap {map_name}_escape int:escape",
        "# <prefix>/private/<rest> shows the same page as /pipermail/<rest>, which the map holds.",
        f'RewriteCond "%{{REQUEST_URI}}" "{PRIVATE_ALIAS}" [NC]',
        f'RewriteCond "{lookup(PIPERMAIL + "/%1")}" "^(/.+)$"',
        'RewriteRule "^" "%1" [R=301,L,NE]',
        f'RewriteCond "{lookup("%{REQUEST_URI}")}" "^(/.+)$"',
        'RewriteRule "^" "%1" [R=301,L,NE]',
    ]) + "\n"
    return "\n".join(lines) + "\n", snippet


def httxt2dbm_argv(txt_path: str, dbm_path: str, *, program: str = "httxt2dbm") -> Sequence[str]:
    """The command that builds the DBM map for `render_apache(..., dbm=True)` from the txt map."""
    return [program, "-i", txt_path, "-o", dbm_path]
