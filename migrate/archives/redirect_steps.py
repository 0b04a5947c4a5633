"""The redirects from Mailman 2's URLs, installed on the web host, and the static copy they fall back on.

One step, `archives.redirects`, builds one map for the lists it is given and installs it:

Facts (read-only, gathered in a dry run too):
- the legacy pipermail tree, read by ONE command on the legacy host that prints every article file
  and the `In-Reply-To=` value of its first link, which is the page's own Message-ID (Mailman
  2.1.10 and later); 100,000 pages are not fetched one by one;
- each list's mbox, for pages that lack the id: the n-th message is article n as long as the
  archive was never rebuilt (`bin/arch --wipe` renumbers). A list where a page and the mbox
  message at its position carry different ids is taken as rebuilt and gets no fallback; every such
  disagreement is reported;
- Mailman 3's lists (which domain each list moved to, its archive policy) and HyperKitty's
  messages, by `mailman-web shell` on the lists host (`hyperkitty.read_state` for the latter).
  Only messages HyperKitty holds get a redirect, so no redirect ends on a 404; a Message-ID on two
  pages of a list is reported and neither page is mapped (`redirects.build_map`).

Installed on the web host (every file with WriteFile: temporary name, rename, pre-state journaled):
- nginx: the `map` at http level and the server snippet that returns 301 from it;
- Apache: the RewriteMap as text, as DBM too when `httxt2dbm` is there, and the snippet using it;
- the static copy of each PUBLIC list's pipermail tree, streamed as a tar from the legacy host
  through the controller, so old URLs without a redirect still answer. It is sent only when its
  content digest differs from the installed copy's, unpacked beside it and swapped in with a
  symlink rename; the tar and the replaced copy are kept with the run's journal for rollback. A
  list private on either side is never copied, and a copy left from an earlier run is removed.

The syntax check runs after the files are in place and before the reload: nginx and Apache read
their configuration only when told to, so the swapped files are not live yet, and the check sees
the server's real configuration (main file, other includes, ours), which a wrapper around our
files alone could not reproduce. A failing check fails the step and the runner restores the
previous files before anything was reloaded. The first operation checks the running configuration
and carries the reload as its undo, so a rollback reloads after the old files are back.

Running the step again with the same inputs writes byte-identical files: the plan shows each as
unchanged and nothing is reloaded.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import posixpath
import random
import re
import tempfile
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from ..core.errors import MigrateError
from ..core.names import is_list_name
from ..core.ops import Operation, RemoveFile, RunCommand, WriteFile, register
from ..core.step import Check, Step, StepContext, Verification, fail
from . import mbox as mboxlib
from .hyperkitty import mailman_web_command, read_state, reader_runner
from .msgid import normalise
from .pipermail import BODY_ERE, LINK_ERE, ArticleRef, message_id_in, parse_volume_name
from .redirects import (
    RedirectMap, UnmappedArticle, archive_entries, build_map, canonical_path, paused_gc,
    postorius_list_url, render_apache, render_nginx, site_entries,
)

_ARTICLE_FILE = re.compile(r"([0-9]{6,})\.html")
_HEX = re.compile(r"[0-9a-f]{64}")

# File names on the web host; the same name in both nginx folders.
NGINX_FILE = "migrate-redirects.conf"
APACHE_CONF = "migrate-redirects.conf"
# Not *.conf: the map files sit in the folder Apache includes *.conf from.
APACHE_TXT_MAP = "migrate-redirects.map"
APACHE_DBM_MAP = "migrate-redirects.dbm"

RELOAD_WAIT = 20.0  # seconds a reloaded server gets to serve the new map
HTTP_WORKERS = 8
EXAMPLES = 20  # problems listed per kind in checks and reports


def legacy_host(inventory):
    return inventory.one_with_role("mailman2")


def lists_host(inventory):
    return inventory.one_with_role("mailman3")


def web_host(inventory):
    return inventory.one_with_role("web")


# --- the web host's settings ----------------------------------------------------------------------

@dataclass(frozen=True)
class ServerSettings:
    """One web server on the web host: where our files go, how to check and reload it."""

    kind: str  # "nginx" or "apache"
    check: tuple[str, ...]
    reload: tuple[str, ...]
    base_url: str


@dataclass(frozen=True)
class WebSettings:
    host: str
    static_root: str
    nginx: ServerSettings | None
    nginx_http_include_dir: str | None
    nginx_include_dir: str | None
    apache: ServerSettings | None
    apache_include_dir: str | None
    httxt2dbm: str

    @property
    def servers(self) -> list[ServerSettings]:
        return [s for s in (self.nginx, self.apache) if s is not None]


def web_settings(inventory, *, apache: bool = True) -> WebSettings:
    """The web host's settings from the inventory; a MigrateError names what is missing."""
    host = web_host(inventory)

    def argv(name: str) -> tuple[str, ...]:
        value = host.var(name)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise MigrateError(f"{host.name}: {name} must be a command as a list of arguments, "
                               f"e.g. [nginx, -t]; got {value!r}")
        return tuple(value)

    def path(name: str) -> str:
        value = host.var(name)
        if not isinstance(value, str) or not value.startswith("/"):
            raise MigrateError(f"{host.name}: {name} must be an absolute path, got {value!r}")
        return value.rstrip("/") or "/"

    public = str(host.var("public_base_url")).rstrip("/")
    nginx = None
    if host.var("nginx_include_dir", None) is not None:
        nginx = ServerSettings("nginx", argv("nginx_check"), argv("nginx_reload"), public)
    apache_server = None
    if apache and host.var("apache_include_dir", None) is not None:
        base = str(host.var("apache_base_url", public)).rstrip("/")
        apache_server = ServerSettings("apache", argv("apache_check"), argv("apache_reload"), base)
    if nginx is None and apache_server is None:
        raise MigrateError(f"{host.name}: set nginx_include_dir (and the other nginx_* settings) or "
                           "apache_include_dir (and apache_*): there is no web server to install into")
    return WebSettings(
        host=host.name, static_root=path("pipermail_static_root"), nginx=nginx,
        nginx_http_include_dir=path("nginx_http_include_dir") if nginx else None,
        nginx_include_dir=path("nginx_include_dir") if nginx else None,
        apache=apache_server, apache_include_dir=path("apache_include_dir") if apache_server else None,
        httxt2dbm=str(host.var("apache_httxt2dbm", "httxt2dbm")),
    )


# --- reading the legacy pipermail tree ---------------------------------------------------------

# Runs in the Mailman 2 var dir ($1) for the names after pipermail's two patterns (every list if
# none). Records end with NUL, which no file name holds: a name with a tab or newline cannot pass
# for another record. L: name, list folder, public link, pipermail folder, mbox (1/0). F: an article
# file. After "I", per page "path NUL line NEWLINE": the first line matching either pattern (grep
# reads no further), from which pipermail.message_id_in reads the page's id. C locale: byte-wise grep.
_PIPERMAIL_LISTING = r"""
export LC_ALL=C
cd "$1" || exit 3
link=$2 body=$3
shift 3
if [ $# -eq 0 ]; then
  for d in lists/*/; do
    [ -d "$d" ] || continue
    d=${d#lists/}
    set -- "$@" "${d%/}"
  done
fi
for n in "$@"; do
  c=0; [ -d "lists/$n" ] && c=1
  p=0; [ -e "archives/public/$n" ] && p=1
  a=0; [ -d "archives/private/$n" ] && a=1
  m=0; [ -f "archives/private/$n.mbox/$n.mbox" ] && m=1
  printf 'L\t%s\t%s\t%s\t%s\t%s\0' "$n" "$c" "$p" "$a" "$m"
done
cd archives/private 2>/dev/null || exit 0
article='[0-9][0-9][0-9][0-9][0-9][0-9]*.html'
for n in "$@"; do
  [ -d "$n" ] && find "$n/" -mindepth 2 -maxdepth 2 -type f -name "$article" -printf 'F\t%p\0'
done
printf 'I\0'
for n in "$@"; do
  [ -d "$n" ] && find "$n/" -mindepth 2 -maxdepth 2 -type f -name "$article" \
    -exec grep -i -m 1 -H -Z -E -e "$link" -e "$body" {} +
done
exit 0
"""


def pipermail_listing_argv(var_dir: str, names: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The read-only command listing the pipermail articles of `names` (every list if empty)."""
    return ["sh", "-c", _PIPERMAIL_LISTING, "sh", var_dir, LINK_ERE, BODY_ERE, *names]


@dataclass
class LegacyList:
    """What the legacy host holds for one list."""

    name: str
    list_folder: bool
    public_link: bool  # archives/public/<name>: Mailman 2 served the archive at /pipermail/<name>/
    pipermail: bool
    mbox: bool
    articles: list[ArticleRef] = field(default_factory=list)


def parse_pipermail_listing(text: str) -> dict[str, LegacyList]:
    """The output of `pipermail_listing_argv` as LegacyList per name, articles in number order.

    Paths that are not `<list>/<volume>/<NNNNNN>.html` with a valid list and volume name are
    skipped: nothing else in the folder is an article.
    """
    with paused_gc():
        return _parse_pipermail_listing(text)


def _parse_pipermail_listing(text: str) -> dict[str, LegacyList]:
    lists: dict[str, LegacyList] = {}
    files: list[str] = []
    # Every record before "I" starts with L or F, so the first NUL, I, NUL is that mark.
    records, _, grep_output = ("\0" + text).partition("\0I\0")
    for record in records.split("\0"):
        if record.startswith("F\t"):
            files.append(record[2:])
        elif record.startswith("L\t"):
            name, *flags = record[2:].rsplit("\t", 4)
            if len(flags) == 4:
                lists[name] = LegacyList(name, *(f == "1" for f in flags))
    # grep's records: each piece after a NUL is the matching line, a newline, then the next path.
    ids: dict[str, str] = {}
    path, *pieces = grep_output.split("\0")
    for piece in pieces:
        matched, _, following = piece.partition("\n")
        ids.setdefault(path, matched)
        path = following
    volumes: dict[str, bool] = {}
    found: dict[str, list[ArticleRef]] = {}
    for path in files:
        parts = path.split("/")
        if len(parts) != 3 or parts[0] not in lists:
            continue
        name, volume, filename = parts
        number = _ARTICLE_FILE.fullmatch(filename)
        if number is None:
            continue
        if volume not in volumes:
            volumes[volume] = _is_volume(volume)
        if not volumes[volume]:
            continue
        matched = ids.get(path)
        message_id = message_id_in(matched.encode()) if matched else None
        found.setdefault(name, []).append(
            ArticleRef(volume, int(number[1]), f"{volume}/{filename}", path, message_id))
    for name, legacy in lists.items():
        if is_list_name(name):
            legacy.articles = sorted(found.get(name, ()), key=lambda a: (a.number, a.volume))
    return lists


def _is_volume(name: str) -> bool:
    try:
        parse_volume_name(name)
    except ValueError:
        return False
    return True


def read_legacy_lists(ctx: StepContext, names: list[str]) -> dict[str, LegacyList]:
    host = legacy_host(ctx.inventory)
    var_dir = host.var("mailman2_var_dir")
    result = ctx.read(host.name, pipermail_listing_argv(var_dir, names))
    if result.exited == 3:
        raise MigrateError(f"{host.name}: Mailman 2 folder {var_dir} does not exist")
    result.check()
    return parse_pipermail_listing(result.stdout)


def read_bytes(ctx: StepContext, host: str, path: str) -> bytes | None:
    """A file's exact bytes. base64 on the host: a text channel would mangle 8-bit mail."""
    result = ctx.read(host, ["sh", "-c", 'test -f "$1" || exit 3; base64 -w 0 -- "$1"', "sh", path])
    if result.exited == 3:
        return None
    result.check()
    return base64.b64decode(result.stdout)


def mbox_message_ids(ctx: StepContext, name: str) -> list[str | None] | None:
    """The normalised Message-ID of each message of a list's mbox, in mbox order (None: no mbox)."""
    host = legacy_host(ctx.inventory)
    path = posixpath.join(host.var("mailman2_var_dir"), "archives", "private", f"{name}.mbox", f"{name}.mbox")
    data = read_bytes(ctx, host.name, path)
    if data is None:
        return None
    with tempfile.TemporaryDirectory(prefix="migrate-mbox-") as folder:
        local = os.path.join(folder, f"{name}.mbox")
        with open(local, "wb") as fh:
            fh.write(data)
        return mboxlib.scan(local).message_ids


# --- Mailman 3 and HyperKitty, read on the lists host ------------------------------------------

# Constant code for `mailman-web shell -c`; the list names come on stdin as JSON (empty: all).
# Mailman core's lists through Postorius's client: which domain each Mailman 2 list moved to, and
# its archive policy. HyperKitty's side is read with `hyperkitty.read_state`.
_CORE_LISTS = '''
import json, sys
from postorius.utils import get_mailman_client
wanted = set(json.loads(sys.stdin.read() or "[]"))
found = [{"address": mlist.fqdn_listname, "name": mlist.list_name,
          "archive_policy": mlist.settings["archive_policy"]}
         for mlist in get_mailman_client().get_lists() if not wanted or mlist.list_name in wanted]
sys.stdout.write("\\nMIGRATE-CORE-LISTS " + json.dumps(found) + "\\n")
'''
_CORE_MARK = "MIGRATE-CORE-LISTS "


@dataclass(frozen=True)
class NewList:
    """A list on Mailman 3, and what HyperKitty archives of it."""

    address: str
    archive_policy: str | None  # core's: public, private or never
    in_hyperkitty: bool
    hyperkitty_policy: str | None
    message_ids: frozenset[str]  # normalised, with angle brackets, as msgid.normalise gives them

    @property
    def public(self) -> bool:
        """Readable by anyone, as far as every side that knows the list says."""
        if self.in_hyperkitty and self.hyperkitty_policy != "public":
            return False
        return self.archive_policy == "public"


def read_new_lists(ctx: StepContext, names: list[str]) -> dict[str, list[NewList]]:
    """Mailman 3's lists by list name (one per domain), with HyperKitty's message ids."""
    host = lists_host(ctx.inventory)
    command = mailman_web_command(host)
    result = ctx.read(host.name, command + ["shell", "-c", _CORE_LISTS], input=json.dumps(sorted(names)))
    line = next((l for l in result.stdout.splitlines() if l.startswith(_CORE_MARK)), None)
    if line is None:
        tail = " | ".join(result.stderr.strip().splitlines()[-3:])
        raise MigrateError(f"{host.name}: reading Mailman 3's lists with mailman-web failed "
                           f"(exit {result.exited}): {tail}")
    core = json.loads(line[len(_CORE_MARK):])
    archived = read_state(reader_runner(ctx, host.name), host.name, command,
                          [entry["address"] for entry in core], ids=True).lists
    found: dict[str, list[NewList]] = {}
    for entry in core:
        held = archived.get(entry["address"])
        if held is None:
            new = NewList(entry["address"], entry.get("archive_policy"), False, None, frozenset())
        else:
            ids = frozenset(filter(None, map(normalise, held.ids or ())))
            new = NewList(entry["address"], entry.get("archive_policy"), True, held.archive_policy, ids)
        found.setdefault(entry["name"], []).append(new)
    return found


# --- building the map -----------------------------------------------------------------------

@dataclass(frozen=True)
class Disagreement:
    """An article page and the mbox message at its position carry different Message-IDs."""

    source: str
    page_message_id: str
    mbox_message_id: str


def reconcile_with_mbox(name: str, articles: list[ArticleRef], mbox_ids: list[str | None] | None
                        ) -> tuple[list[ArticleRef], list[tuple[str, str]], list[Disagreement]]:
    """Give pages without a Message-ID the id of the mbox message at the same position.

    Only while the numbering follows the mbox: no page may disagree with the mbox, and either some
    page agrees or there are as many articles as messages. Returns the articles, the (source, id)
    filled in, and the disagreements (all of them, for the report).
    """
    if mbox_ids is None:
        return articles, [], []
    agreeing = 0
    disagreements = []
    for article in articles:
        page = normalise(article.message_id)
        mbox = mbox_ids[article.number] if article.number < len(mbox_ids) else None
        if page is None or mbox is None:
            continue
        if page == mbox:
            agreeing += 1
        else:
            disagreements.append(Disagreement(_source(name, article), page, mbox))
    if disagreements or not (agreeing or len(articles) == len(mbox_ids)):
        return articles, [], disagreements
    filled: list[tuple[str, str]] = []
    result = []
    for article in articles:
        if normalise(article.message_id) is None and article.number < len(mbox_ids) and mbox_ids[article.number]:
            message_id = mbox_ids[article.number]
            article = article._replace(message_id=message_id)
            filled.append((_source(name, article), message_id))
        result.append(article)
    return result, filled, disagreements


def _source(name: str, article: ArticleRef) -> str:
    return f"{name}/{article.volume}/{article.number:06d}"


@dataclass
class ListArchive:
    """Everything the map needs of one list."""

    name: str
    address: str
    private: bool
    articles: list[ArticleRef]
    imported_ids: frozenset[str]
    mbox_ids: list[str | None] | None = None
    in_hyperkitty: bool = True


@dataclass
class ListOutcome:
    name: str
    address: str
    private: bool
    articles: int
    mapped: int = 0
    unmapped: list[UnmappedArticle] = field(default_factory=list)
    mbox_fallback: list[tuple[str, str]] = field(default_factory=list)
    disagreements: list[Disagreement] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"list": self.name, "address": self.address, "private": self.private,
                "articles": self.articles, "mapped": self.mapped,
                "unmapped_count": len(self.unmapped), "unmapped": [asdict(u) for u in self.unmapped],
                "mbox_fallback_count": len(self.mbox_fallback),
                "mbox_fallback": [{"source": s, "message_id": m} for s, m in self.mbox_fallback],
                "disagreement_count": len(self.disagreements),
                "disagreements": [asdict(d) for d in self.disagreements]}


class MessageRedirect(NamedTuple):
    list_name: str
    private: bool
    old_path: str
    target: str


@dataclass
class BuiltMap:
    redirect_map: RedirectMap
    lists: list[ListOutcome]
    messages: list[MessageRedirect]  # one public pipermail path per mapped article


def build_redirects(archives: list[ListArchive]) -> BuiltMap:
    """The map for these lists plus the site's own pages; what was left out, and why."""
    with paused_gc():
        return _build_redirects(archives)


def _build_redirects(archives: list[ListArchive]) -> BuiltMap:
    entries = site_entries()
    outcomes = []
    candidates = []
    for archive in archives:
        articles, filled, disagreements = reconcile_with_mbox(archive.name, archive.articles, archive.mbox_ids)
        found, unmapped = archive_entries(archive.name, archive.address, articles,
                                          imported_ids=archive.imported_ids)
        if not archive.in_hyperkitty:
            # HyperKitty has no page for a list it does not archive (archiving off): the list's
            # archive URLs go to its Postorius page instead of ending on a 404.
            found = [e._replace(new_url=postorius_list_url(archive.address))
                     for e in found if e.kind in ("list", "web_ui")]
        entries.extend(found)
        outcomes.append(ListOutcome(archive.name, archive.address, archive.private, len(articles),
                                    unmapped=unmapped, mbox_fallback=filled, disagreements=disagreements))
        public_base = f"/pipermail/{archive.name}/"
        candidates.extend(MessageRedirect(archive.name, archive.private, e.old_path, e.new_url)
                          for e in found if e.kind == "message" and e.old_path.startswith(public_base))
    redirect_map = build_map(entries)
    messages = [m for m in candidates if redirect_map.redirects.get(m.old_path) == m.target]
    mapped: dict[str, int] = {}
    for message in messages:
        mapped[message.list_name] = mapped.get(message.list_name, 0) + 1
    for outcome in outcomes:
        outcome.mapped = mapped.get(outcome.name, 0)
    return BuiltMap(redirect_map, outcomes, messages)


def render_files(redirect_map: RedirectMap, settings: WebSettings, *, dbm: bool) -> dict[str, bytes]:
    """Path on the web host → content, in the order they are written (maps before their users)."""
    files: dict[str, bytes] = {}
    if settings.nginx is not None:
        http_conf, server = render_nginx(redirect_map)
        files[posixpath.join(settings.nginx_http_include_dir, NGINX_FILE)] = http_conf.encode()
        files[posixpath.join(settings.nginx_include_dir, NGINX_FILE)] = server.encode()
    if settings.apache is not None:
        txt_path, dbm_path = apache_map_paths(settings)
        txt, conf = render_apache(redirect_map, map_path=dbm_path if dbm else txt_path, dbm=dbm)
        files[txt_path] = txt.encode()
        files[posixpath.join(settings.apache_include_dir, APACHE_CONF)] = conf.encode()
    return files


def apache_map_paths(settings: WebSettings) -> tuple[str, str]:
    return (posixpath.join(settings.apache_include_dir, APACHE_TXT_MAP),
            posixpath.join(settings.apache_include_dir, APACHE_DBM_MAP))


# --- the static copy -------------------------------------------------------------------------

# A content digest both hosts compute the same way: relative path and sha256 of every file
# (symlinks read through), in byte order. Mailman 2's own state (database/, pipermail.pck) is left
# out of the copy and of the digest.
_TREE_DIGEST = r'''
tree_digest() {
  find . \( -path ./database -o -path ./pipermail.pck \) -prune -o \( -type f -o -type l \) -print0 \
    | LC_ALL=C sort -z | xargs -0 -r sha256sum -- | sha256sum | cut -d ' ' -f 1
}
'''
# Same content, same bytes: names sorted, owners and modes fixed; mtimes stay (HTTP caches use them).
_TAR_CREATE = (r"tar -c -f - --sort=name --numeric-owner --owner=0 --group=0 --mode=u=rwX,go=rX "
               r"--exclude=./database --exclude=./pipermail.pck .")

# On the legacy host: $1 archives/private, $2 list name, $3 "tar" to send the tree after its digest.
_READ_LEGACY_TREE = _TREE_DIGEST + r'''
cd "$1/$2/" || exit 3
tree_digest
[ "$3" = tar ] || exit 0
''' + _TAR_CREATE + " | base64 -w 0\n"

# On the web host: $1 static root, $2 list name, $3 the digest about to be installed. Prints
# "absent", or "present DIGEST" and then (when it differs from $3) the tree as base64 tar.
_CAPTURE_WEB_TREE = _TREE_DIGEST + r'''
cd "$1" 2>/dev/null || { echo absent; exit 0; }
[ -e "$2" ] || { echo absent; exit 0; }
cd "$2/" || exit 3
d=$(tree_digest)
echo "present $d"
[ "$d" = "$3" ] && exit 0
''' + _TAR_CREATE + " | base64 -w 0\n"

# On the web host, the tar on stdin: unpack beside the list's folder as .<list>.migrate-<digest>,
# then swap the symlink <list> onto it with a rename, which is atomic: a reader sees the old tree
# or the new one, never a missing one. The previous version is removed only if this toolkit
# made it (a folder found in place is first moved aside under our name).
_INSTALL_WEB_TREE = _TREE_DIGEST + r'''
set -e
cd "$1"
version=".$2.migrate-$3"
if [ -L "$2" ] && [ "$(readlink -- "$2")" = "$version" ] && [ -d "$version" ]; then
  cat >/dev/null
  exit 0
fi
rm -rf -- "$version.new"
mkdir -- "$version.new"
tar -x -f - -C "$version.new" --no-same-owner
chmod 755 -- "$version.new"
if [ "$(cd "$version.new" && tree_digest)" != "$3" ]; then
  rm -rf -- "$version.new"
  echo "the unpacked copy of $2 does not have the content it was sent as ($3)" >&2
  exit 5
fi
rm -rf -- "$version"
mv -T -- "$version.new" "$version"
previous=""
if [ -L "$2" ]; then
  previous=$(readlink -- "$2")
elif [ -e "$2" ]; then
  mv -T -- "$2" ".$2.migrate-replaced"
  previous=".$2.migrate-replaced"
fi
ln -sfn -- "$version" ".$2.migrate-link"
mv -T -- ".$2.migrate-link" "$2"
case "$previous" in
  "$version") ;;
  ".$2.migrate-"*) rm -rf -- "$previous" ;;
esac
'''

_REMOVE_WEB_TREE = r'''
cd "$1" 2>/dev/null || exit 0
if [ -L "$2" ]; then
  t=$(readlink -- "$2")
  case "$t" in
    ".$2.migrate-"*) rm -f -- "$2"; rm -rf -- "$t" ;;
    *) echo "$1/$2 links to $t, not to a copy this toolkit installed" >&2; exit 4 ;;
  esac
elif [ -e "$2" ]; then
  echo "$1/$2 is not a copy this toolkit installed" >&2
  exit 4
fi
'''


def read_legacy_tree(ctx: StepContext, name: str, *, with_content: bool) -> tuple[str, bytes | None]:
    """The content digest of a list's pipermail folder on the legacy host, and its tar if asked."""
    host = legacy_host(ctx.inventory)
    private = posixpath.join(host.var("mailman2_var_dir"), "archives", "private")
    result = ctx.read(host.name, ["sh", "-c", _READ_LEGACY_TREE, "sh", private, name,
                                  "tar" if with_content else "digest"])
    if result.exited == 3:
        raise MigrateError(f"{host.name}: no pipermail folder {private}/{name}")
    result.check()
    digest, _, encoded = result.stdout.partition("\n")
    if not _HEX.fullmatch(digest):
        raise MigrateError(f"{host.name}: unexpected digest output for {name}: {digest[:80]!r}")
    return digest, base64.b64decode(encoded) if with_content else None


def _capture_tree(reader, host: str, root: str, name: str, digest: str) -> dict:
    result = reader.read(host, ["sh", "-c", _CAPTURE_WEB_TREE, "sh", root, name, digest])
    result.check()
    head, _, encoded = result.stdout.partition("\n")
    if head == "absent":
        return {"exists": False}
    current = head.removeprefix("present ")
    if current == digest:
        return {"exists": True, "digest": current}
    return {"exists": True, "digest": current, "content": base64.b64decode(encoded)}


@register
@dataclass
class InstallStaticTree(Operation):
    """Put a list's pipermail folder (as a tar) under the static root; rollback restores the
    previous copy or removes it."""

    root: str = ""
    name: str = ""
    digest: str = ""
    content: bytes = b""

    def describe(self) -> str:
        size = self.content.get("size", "?") if isinstance(self.content, dict) else len(self.content)
        where = f"{self.name}'s pipermail archive at {self.root}/{self.name}"
        if not size:
            return f"keep the static copy of {where} (content {self.digest[:12]})"
        return f"install the static copy of {where} ({size} bytes of tar, content {self.digest[:12]})"

    def state_key(self) -> tuple:
        return ("static-tree", self.host, self.root, self.name)

    def capture(self, reader):
        return _capture_tree(reader, self.host, self.root, self.name, self.digest)

    def perform(self, effects):
        return effects.run(self.host, ["sh", "-c", _INSTALL_WEB_TREE, "sh", self.root, self.name, self.digest],
                           input=self.content).check()

    def inverse(self, pre_state):
        if not pre_state or not pre_state.get("exists"):
            return RemoveStaticTree(self.host, self.root, self.name)
        if pre_state.get("digest") == self.digest:
            return None
        return InstallStaticTree(self.host, self.root, self.name, pre_state["digest"], pre_state["content"])

    def diff(self, pre_state):
        if not pre_state or not pre_state.get("exists"):
            return "new tree"
        if pre_state.get("digest") == self.digest:
            return "unchanged"
        return f"replaces content {pre_state.get('digest', '')[:12]}"


@register
@dataclass
class RemoveStaticTree(Operation):
    """Remove a static copy this toolkit installed; rollback puts the captured one back."""

    root: str = ""
    name: str = ""

    def describe(self) -> str:
        return f"remove the static copy {self.root}/{self.name}"

    def state_key(self) -> tuple:
        return ("static-tree", self.host, self.root, self.name)

    def capture(self, reader):
        return _capture_tree(reader, self.host, self.root, self.name, "")

    def perform(self, effects):
        return effects.run(self.host, ["sh", "-c", _REMOVE_WEB_TREE, "sh", self.root, self.name]).check()

    def inverse(self, pre_state):
        if not pre_state or not pre_state.get("exists"):
            return None
        return InstallStaticTree(self.host, self.root, self.name, pre_state["digest"], pre_state["content"])


# Builds beside the target and renames over it: Apache opens the DBM at lookup time.
_BUILD_DBM = r'''
set -e
rm -f -- "$3.migrate-new"
"$1" -i "$2" -o "$3.migrate-new"
chmod 644 -- "$3.migrate-new"
mv -f -- "$3.migrate-new" "$3"
'''


@register
@dataclass
class BuildDbmMap(Operation):
    """Build Apache's DBM RewriteMap from the text map on the host (httxt2dbm); rollback puts
    back the previous DBM file or removes it."""

    path: str = ""
    source: str = ""
    program: str = "httxt2dbm"

    def describe(self) -> str:
        return f"build {self.path} from {self.source} with {self.program}"

    def state_key(self) -> tuple:
        return ("file", self.host, self.path)

    def capture(self, reader):
        # base64 on the host: the DBM is binary, and a text channel (sudo's cat) would mangle it.
        result = reader.read(self.host, ["sh", "-c",
                                         'test -f "$1" || exit 3; stat -c %a -- "$1"; base64 -w 0 -- "$1"',
                                         "sh", self.path])
        if result.exited == 3:
            return {"exists": False}
        result.check()
        mode, _, encoded = result.stdout.partition("\n")
        return {"exists": True, "content": base64.b64decode(encoded), "mode": int(mode, 8)}

    def perform(self, effects):
        return effects.run(self.host, ["sh", "-c", _BUILD_DBM, "sh", self.program, self.source, self.path]).check()

    def inverse(self, pre_state):
        if pre_state and pre_state.get("exists"):
            return WriteFile(self.host, self.path, pre_state["content"], pre_state.get("mode") or 0o644)
        return RemoveFile(self.host, self.path)


# --- HTTP, for verification -------------------------------------------------------------------

@dataclass(frozen=True)
class Hop:
    url: str
    status: int  # 0: no answer (the detail says why)
    location: str | None = None
    detail: str = ""


_REDIRECTS = (301, 302, 303, 307, 308)


def follow(url: str, *, max_hops: int = 5, timeout: float = 30.0) -> list[Hop]:
    """GET `url` and the redirects it answers with, as a list of hops (read-only: GET only)."""
    hops: list[Hop] = []
    for _ in range(max_hops + 1):
        parts = urllib.parse.urlsplit(url)
        connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        connection = connection_class(parts.hostname, parts.port, timeout=timeout)
        try:
            connection.request("GET", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
                               headers={"User-Agent": "migrate-redirect-check"})
            response = connection.getresponse()
            response.read()
            hop = Hop(url, response.status, response.getheader("Location"))
        except (OSError, http.client.HTTPException) as exc:
            hops.append(Hop(url, 0, None, str(exc)))
            break
        finally:
            connection.close()
        hops.append(hop)
        if hop.status not in _REDIRECTS or not hop.location:
            break
        url = urllib.parse.urljoin(url, hop.location)
    return hops


def request_path(old_path: str) -> str:
    """A decoded map key as it goes on the request line."""
    return urllib.parse.quote(old_path, safe="/:@!$&'()*+,;=-._~")


def first_hop_target(base_url: str, old_path: str) -> str | None:
    """Where the server sends `old_path` (the Location's path), or None if it does not redirect."""
    hops = follow(base_url + request_path(old_path), max_hops=0)
    hop = hops[0]
    if hop.status not in _REDIRECTS or not hop.location:
        return None
    return urllib.parse.unquote(urllib.parse.urlsplit(hop.location).path)


def redirect_problem(base_url: str, old_path: str, target: str, *, allowed: tuple[int, ...] = (200,)
                     ) -> str | None:
    """None if `old_path` redirects to `target` and that answers with an allowed status."""
    hops = follow(base_url + request_path(old_path))
    first = hops[0]
    if first.status not in _REDIRECTS:
        return f"{old_path}: {first.status or first.detail} instead of a redirect"
    landed = urllib.parse.unquote(urllib.parse.urlsplit(hops[1].url).path) if len(hops) > 1 else None
    if landed != target:
        return f"{old_path}: redirected to {first.location}, expected {target}"
    final = hops[-1]
    if len(hops) > 2 or final.status not in allowed:
        return f"{old_path}: {target} answered {final.status or final.detail}" + (
            f" then went on to {final.url}" if len(hops) > 2 else "")
    return None


# --- the step -------------------------------------------------------------------------------

class RedirectParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lists: list[str] = Field(default_factory=list,
                             description="Mailman 2 list names the map covers; empty: every list")
    exclude: list[str] = Field(default_factory=list, description="lists left out of the map")
    apache: bool = Field(True, description="install for Apache too when the web host has apache_* settings")
    sample: int | None = Field(None, ge=1, description="verify this many message redirects, picked at "
                                                       "random (reproducibly); default: every one")


@dataclass
class _Facts:
    settings: WebSettings
    legacy: dict[str, LegacyList]
    selected: list[str]
    new_lists: dict[str, list[NewList]]
    skipped: dict[str, str]


class InstallRedirects(Step):
    """Build the old → new URL map for the chosen lists, install it for nginx (and Apache) on the
    web host with the static copy of public archives, check, reload. Rollback restores every
    file and tree as it was and reloads."""

    id = "archives.redirects"
    title = "Redirect Mailman 2 URLs"
    Params = RedirectParams
    example = {"lists": ["announce"], "sample": 20}

    def __init__(self, params=None):
        super().__init__(params)
        self._facts: _Facts | None = None
        self._built: BuiltMap | None = None
        self._dbm: bool | None = None
        self._trees: dict[str, tuple[str, bytes | None]] = {}
        self._reloads = False
        self.report: dict = {}

    def describe(self) -> str:
        which = ", ".join(self.params.lists) if self.params.lists else "every list"
        return f"{self.title}: {which}" + (f" except {', '.join(self.params.exclude)}" if self.params.exclude else "")

    # -- facts ---------------------------------------------------------------------------------
    def facts(self, ctx: StepContext) -> _Facts:
        if self._facts is not None:
            return self._facts
        settings = web_settings(ctx.inventory, apache=self.params.apache)
        valid = [n for n in self.params.lists if is_list_name(n)]
        # Only valid names reach the host; named lists that are all invalid read nothing.
        legacy = read_legacy_lists(ctx, valid) if valid or not self.params.lists else {}
        excluded = set(self.params.exclude)
        names = [n for n in (self.params.lists or sorted(legacy)) if n not in excluded]
        skipped: dict[str, str] = {}
        selected = []
        for name in names:
            found = legacy.get(name)
            if not is_list_name(name):
                skipped[name] = "not a valid Mailman 2 list name"
            elif found is None or not found.list_folder:
                skipped[name] = "no such list on the Mailman 2 host"
            else:
                selected.append(name)
        new_lists = read_new_lists(ctx, selected) if selected else {}
        for name in list(selected):
            if not new_lists.get(name):
                skipped[name] = "not on Mailman 3 (migrate it first)"
                selected.remove(name)
            elif len(new_lists[name]) > 1:
                skipped[name] = ("on Mailman 3 under several domains: "
                                 + ", ".join(sorted(n.address for n in new_lists[name])))
                selected.remove(name)
        self._facts = _Facts(settings, legacy, selected, new_lists, skipped)
        return self._facts

    def new_list(self, ctx: StepContext, name: str) -> NewList:
        return self.facts(ctx).new_lists[name][0]

    def publishes_statically(self, ctx: StepContext, name: str) -> bool:
        """Public on Mailman 2 (its /pipermail/ link) and on Mailman 3: only then is a copy served."""
        legacy = self.facts(ctx).legacy[name]
        return legacy.pipermail and legacy.public_link and self.new_list(ctx, name).public

    def built(self, ctx: StepContext) -> BuiltMap:
        if self._built is None:
            facts = self.facts(ctx)
            archives = []
            for name in facts.selected:
                legacy, new = facts.legacy[name], self.new_list(ctx, name)
                # The mbox (the whole archive) is read only where a page lacks its id.
                needs_mbox = legacy.mbox and any(a.message_id is None for a in legacy.articles)
                archives.append(ListArchive(
                    name, new.address, not new.public, legacy.articles, new.message_ids,
                    mbox_message_ids(ctx, name) if needs_mbox else None, new.in_hyperkitty))
            self._built = build_redirects(archives)
            self.report = self._report(ctx)
        return self._built

    def dbm(self, ctx: StepContext) -> bool:
        """Whether the Apache map is also built as DBM: when httxt2dbm is on the web host."""
        if self._dbm is None:
            settings = self.facts(ctx).settings
            self._dbm = settings.apache is not None and ctx.read(
                settings.host, ["sh", "-c", 'command -v -- "$1"', "sh", settings.httxt2dbm]).ok
        return self._dbm

    def rendered(self, ctx: StepContext) -> dict[str, bytes]:
        return render_files(self.built(ctx).redirect_map, self.facts(ctx).settings, dbm=self.dbm(ctx))

    def tree(self, ctx: StepContext, name: str, *, with_content: bool) -> tuple[str, bytes | None]:
        known = self._trees.get(name)
        if known is None or (with_content and known[1] is None):
            known = read_legacy_tree(ctx, name, with_content=with_content)
            self._trees[name] = known
        return known

    # -- preflight -----------------------------------------------------------------------------
    def fail_for_incomplete_web_settings(self, ctx: StepContext) -> None:
        try:
            web_settings(ctx.inventory, apache=self.params.apache)
        except MigrateError as exc:
            fail(str(exc))

    def fail_for_missing_web_folders(self, ctx: StepContext) -> None:
        settings = self.facts(ctx).settings
        folders = [settings.static_root, settings.nginx_http_include_dir, settings.nginx_include_dir,
                   settings.apache_include_dir]
        missing = [f for f in folders if f and not ctx.read(settings.host, ["test", "-d", f]).ok]
        if missing:
            fail(f"{settings.host}: missing folder(s) {', '.join(missing)}: create them and include "
                 "them in the web server's configuration first")

    def fail_for_lists_that_cannot_be_redirected(self, ctx: StepContext) -> None:
        facts = self.facts(ctx)
        named = [n for n in self.params.lists if n in facts.skipped]
        if named:
            fail("; ".join(f"list {n}: {facts.skipped[n]}" for n in named))
        if not facts.selected:
            fail("no list to redirect: " + ("; ".join(f"{n}: {r}" for n, r in facts.skipped.items())
                                             or "the Mailman 2 host has no lists"))

    def fail_for_failing_web_server_check(self, ctx: StepContext) -> None:
        settings = self.facts(ctx).settings
        for server in settings.servers:
            result = ctx.read(settings.host, list(server.check))
            if not result.ok:
                tail = " | ".join((result.stderr + result.stdout).strip().splitlines()[-3:])
                fail(f"{settings.host}: the {server.kind} configuration fails its check before any "
                     f"change ({' '.join(server.check)}): {tail}")

    # -- plan ----------------------------------------------------------------------------------
    def plan(self, ctx: StepContext) -> list[Operation]:
        facts = self.facts(ctx)
        settings = facts.settings
        host = settings.host
        trees: list[Operation] = []
        for name in facts.selected:
            if self.publishes_statically(ctx, name):
                digest, _ = self.tree(ctx, name, with_content=False)
                installed = _capture_tree(ctx.executor, host, settings.static_root, name, digest)
                # An unchanged copy is not sent again: the operation then carries no tar, and
                # installing finds the copy in place (or fails on the empty input, if it changed).
                content = b"" if installed.get("digest") == digest else self.tree(ctx, name, with_content=True)[1]
                trees.append(InstallStaticTree(host, settings.static_root, name, digest, content or b""))
            elif ctx.read(host, ["test", "-e", posixpath.join(settings.static_root, name)]).ok:
                # Not public (any more) on one side: a copy served from an earlier run must go.
                trees.append(RemoveStaticTree(host, settings.static_root, name))
        files = self.rendered(ctx)
        writes: list[Operation] = []
        changed = False
        for path, content in files.items():
            writes.append(WriteFile(host, path, content, 0o644))
            differs = ctx.read_file(host, path) != content
            if settings.apache is not None and path == apache_map_paths(settings)[0] and self.dbm(ctx):
                dbm_path = apache_map_paths(settings)[1]
                # httxt2dbm writes different bytes for the same map, so the DBM is rebuilt only
                # when its text changed or it is missing.
                if differs or not ctx.read(host, ["test", "-f", dbm_path]).ok:
                    writes.append(BuildDbmMap(host, dbm_path, path, settings.httxt2dbm))
                    differs = True
            changed = changed or differs
        if not changed:
            # Byte-identical files: shown as unchanged, and nothing to check or reload.
            return trees + writes
        self._reloads = True
        before = [RunCommand(host, list(s.check), f"check the running {s.kind} configuration before changing it: "
                             f"{' '.join(s.check)}", undo_argv=list(s.reload),
                             undo_description=f"reload {s.kind} with the restored files: {' '.join(s.reload)}")
                  for s in settings.servers]
        checks = [RunCommand(host, list(s.check), f"check the {s.kind} configuration with the new files: "
                             f"{' '.join(s.check)}", undo_argv=["true"], undo_description="nothing to undo")
                  for s in settings.servers]
        reloads = [RunCommand(host, list(s.reload), f"reload {s.kind}: {' '.join(s.reload)}",
                              undo_argv=list(s.reload), undo_description=f"reload {s.kind} again: {' '.join(s.reload)}")
                   for s in settings.servers]
        return before + trees + writes + checks + reloads

    # -- verify --------------------------------------------------------------------------------
    def verify(self, ctx: StepContext) -> Verification:
        result = Verification(self.id)
        facts = self.facts(ctx)
        settings = facts.settings
        built = self.built(ctx)
        for path, content in self.rendered(ctx).items():
            now = ctx.read_file(settings.host, path)
            result.add(f"{path} holds the map built now", _sha(content), _sha(now) if now is not None else "absent")
        if self.dbm(ctx):
            dbm_path = apache_map_paths(settings)[1]
            result.add(f"{dbm_path} exists", True, ctx.read(settings.host, ["test", "-f", dbm_path]).ok)
        for name in facts.selected:
            target = posixpath.join(settings.static_root, name)
            if self.publishes_statically(ctx, name):
                digest, _ = self.tree(ctx, name, with_content=False)
                installed = _capture_tree(ctx.executor, settings.host, settings.static_root, name, digest)
                result.add(f"static copy {target} matches the legacy archive", digest,
                           installed.get("digest", "absent"))
            elif facts.legacy[name].pipermail:
                exists = ctx.read(settings.host, ["test", "-e", target]).ok
                result.add(f"no static copy of the private archive of {name}", False, exists)
        for server in settings.servers:
            result.checks.extend(self._http_checks(ctx, server, built))
        result.checks.extend(self._reported(built))
        return result

    def _sampled(self, built: BuiltMap) -> list[MessageRedirect]:
        messages = sorted(built.messages, key=lambda m: m.old_path)
        if self.params.sample is None or self.params.sample >= len(messages):
            return messages
        return sorted(random.Random(0).sample(messages, self.params.sample), key=lambda m: m.old_path)

    def _http_checks(self, ctx: StepContext, server: ServerSettings, built: BuiltMap) -> list[Check]:
        base = server.base_url
        messages = self._sampled(built)
        probes = [(m.old_path, m.target) for m in messages[:3]] or [("/mailman/listinfo", "/postorius/lists/")]
        # A reload only signals the master: after one, wait until its new workers serve the map.
        deadline = time.monotonic() + (RELOAD_WAIT if self._reloads else 0)
        while any(first_hop_target(base, old) != new for old, new in probes) and time.monotonic() < deadline:
            time.sleep(0.2)
        checks = []
        with ThreadPoolExecutor(HTTP_WORKERS) as pool:
            # A private archive's page asks for a login (HyperKitty answers 403 to anonymous
            # readers): the redirect still has to land on that message's own page.
            problems = [p for p in pool.map(
                lambda m: redirect_problem(base, m.old_path, m.target, allowed=(403,) if m.private else (200,)),
                messages) if p]
            checks.append(_listed(f"{server.kind}: old article URLs land on their HyperKitty message",
                                  len(messages), len(messages) - len(problems), problems))
            web_ui = []
            for outcome in built.lists:
                probes = []
                for old in (f"/mailman/listinfo/{outcome.name}", f"/cgi-bin/mailman/admin/{outcome.name}",
                            f"/cgi-bin/mailman/private/{outcome.name}/"):
                    target = built.redirect_map.redirects.get(canonical_path(old))
                    if target is not None:
                        probes.append((old, target, (200, 403) if outcome.private else (200,)))
                web_ui.append(probes)
            # One list's pages one after the other: Mailman core (3.3) creates a list's archiver
            # rows on the first read of its /archivers, which Postorius's list page makes; two
            # first reads at once insert them twice, and the page answers 500 from then on.
            problems = [p for found in pool.map(
                lambda probes: [redirect_problem(base, old, new, allowed=allowed) for old, new, allowed in probes],
                web_ui) for p in found if p]
            total = sum(len(probes) for probes in web_ui)
            checks.append(_listed(f"{server.kind}: old web UI URLs land on Postorius and HyperKitty",
                                  total, total - len(problems), problems))
        falls, leaks = [], []
        for outcome in built.lists:
            if not outcome.unmapped:
                continue
            volume, number = outcome.unmapped[0].source.split("/")[1:]
            path = f"/pipermail/{outcome.name}/{volume}/{number}.html"
            status = follow(base + request_path(path), max_hops=0)[0].status
            if self.publishes_statically(ctx, outcome.name):
                falls.append(None if status == 200 else f"{path}: {status}, expected the static copy (200)")
            else:
                leaks.append(None if status in (403, 404) else f"{path}: {status}, expected 404 (private)")
        if falls:
            problems = [p for p in falls if p]
            checks.append(_listed(f"{server.kind}: unmapped article URLs of public lists fall through to "
                                  "the static copy", len(falls), len(falls) - len(problems), problems))
        if leaks:
            problems = [p for p in leaks if p]
            checks.append(_listed(f"{server.kind}: unmapped article URLs of private lists are not served",
                                  len(leaks), len(leaks) - len(problems), problems))
        return checks

    def _reported(self, built: BuiltMap) -> list[Check]:
        """What is left out on purpose: shown with the verification, never a failure."""
        checks = []
        duplicates = built.redirect_map.duplicates
        if duplicates:
            checks.append(Check("Message-IDs on several pages (reported, not mapped)", True, None, len(duplicates),
                                "; ".join(f"{d.message_id}: {', '.join(d.sources)}" for d in duplicates[:EXAMPLES])))
        for outcome in built.lists:
            if outcome.disagreements:
                checks.append(Check(f"{outcome.name}: pages and mbox order disagree (no mbox fallback)", True,
                                    None, len(outcome.disagreements),
                                    "; ".join(d.source for d in outcome.disagreements[:EXAMPLES])))
            if outcome.unmapped:
                checks.append(Check(f"{outcome.name}: articles without a redirect (static copy if public)", True, None,
                                    len(outcome.unmapped),
                                    "; ".join(f"{u.source} ({u.reason})" for u in outcome.unmapped[:5])))
        for conflict in built.redirect_map.conflicts[:EXAMPLES]:
            checks.append(Check(f"conflicting targets for {conflict.old_paths[0]} (not mapped)", True, None,
                                len(conflict.targets), ", ".join(conflict.targets)))
        return checks

    # -- report --------------------------------------------------------------------------------
    def _report(self, ctx: StepContext) -> dict:
        facts = self.facts(ctx)
        built = self._built
        assert built is not None
        redirect_map = built.redirect_map
        lists = []
        for outcome in built.lists:
            data = outcome.to_dict()
            data["archive_policy"] = self.new_list(ctx, outcome.name).archive_policy
            data["static_copy"] = self.publishes_statically(ctx, outcome.name)
            lists.append(data)
        return {
            "redirects": len(redirect_map), "messages": len(built.messages), "lists": lists,
            "skipped": [{"list": n, "reason": r} for n, r in sorted(facts.skipped.items())],
            "duplicates": [asdict(d) for d in redirect_map.duplicates],
            "conflicts": [asdict(c) for c in redirect_map.conflicts],
            "rejected": [asdict(r) for r in redirect_map.rejected],
        }


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _listed(name: str, expected: int, actual: int, problems: list[str]) -> Check:
    detail = "; ".join(problems[:EXAMPLES]) + (f"; and {len(problems) - EXAMPLES} more" if len(problems) > EXAMPLES else "")
    return Check(name, not problems and expected == actual, expected, actual, detail)
