"""Redirect map: entries, conflicts, duplicates, and the nginx and Apache renderings.

The renderings are checked by the real servers when they are installed: `nginx -t` and
`apache2 -t` on a minimal wrapper configuration, then a short-lived server on a loopback port that
is asked for every awkward path.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from migrate.archives.mbox import prepare
from migrate.archives.msgid import message_hash
from migrate.archives.pipermail import ArticleRef, walk_archive
from migrate.archives.redirects import (
    RedirectEntry,
    apache_escape,
    archive_entries,
    article_entries,
    canonical_path,
    build_map,
    httxt2dbm_argv,
    hyperkitty_message_url,
    list_entries,
    postorius_list_url,
    render_apache,
    render_nginx,
    site_entries,
    volume_entries,
)

ADDRESS = "team@lists.example.org"
HK_LIST = "/hyperkitty/list/team@lists.example.org/"

# Paths a config file must quote or escape: spaces, quotes, `;`, braces, `$`, `#`, backslash, `%`,
# `?`, `+`, non-ASCII.
AWKWARD = {
    "/pipermail/a b/c d.html": "/t/space/",
    '/pipermail/q"uote': "/t/dquote/",
    "/pipermail/apo'strophe": "/t/squote/",
    "/pipermail/semi;colon": "/t/semicolon/",
    "/pipermail/br{ace}": "/t/brace/",
    "/pipermail/dol$lar": "/t/dollar/",
    "/pipermail/$uri": "/t/variable/",
    "/pipermail/ha#sh": "/t/hash/",
    "/pipermail/back\\slash": "/t/backslash/",
    "/pipermail/back\\": "/t/trailing-backslash/",
    "/pipermail/per%cent%41": "/t/percent/",
    "/pipermail/q?mark": "/t/question/",
    "/pipermail/plus+sign": "/t/plus/",
    "/pipermail/caf\u00e9": "/t/cafe/",
    "/pipermail/\u2028sep": "/t/separator/",
    "/pipermail/smile\U0001f600": "/t/emoji/",
    "/pipermail/team/2019-February/000001.html": "/hyperkitty/list/team@lists.example.org/message/ABC/",
}
ASCII_PROBES = {f"/probe/{chr(b)}x": f"/t/{b}/" for b in range(0x20, 0x7F) if not chr(b).isalpha() and chr(b) != "/"}


def awkward_map():
    entries = [RedirectEntry(path, url, "list", path) for path, url in {**AWKWARD, **ASCII_PROBES}.items()]
    redirect_map = build_map(entries)
    assert not redirect_map.conflicts and not redirect_map.rejected
    return redirect_map


# --- targets and entries ------------------------------------------------------------------------

def test_message_url_uses_the_normalised_id():
    url = hyperkitty_message_url(ADDRESS, "<abc@example.org> (added by postmaster)")
    assert url == f"{HK_LIST}message/{message_hash('<abc@example.org>')}/"
    assert hyperkitty_message_url(ADDRESS, "abc@example.org") == url


def test_article_entries_cover_public_and_private_urls():
    entries = article_entries("team", ADDRESS, "2019-February", 123, "<abc@example.org>")
    assert [e.old_path for e in entries] == ["/pipermail/team/2019-February/000123.html"]
    assert {e.new_url for e in entries} == {hyperkitty_message_url(ADDRESS, "<abc@example.org>")}
    assert {e.source for e in entries} == {"team/2019-February/000123"}
    # The private URLs of the same page are looked up under the public key.
    for private in ("/mailman/private/team/2019-February/000123.html",
                    "/cgi-bin/mailman/private/team/2019-February/000123.html",
                    "/CGI-BIN/Mailman/PRIVATE/team/2019-February/000123.html"):
        assert canonical_path(private) == entries[0].old_path
    assert article_entries("team", ADDRESS, "2019-February", 124, None) == []
    assert article_entries("team", ADDRESS, "2019-February", 125, "<>") == []


@pytest.mark.parametrize("path", ["/mailman/private", "/mailman/private/", "/cgi-bin/mailman/private/",
                                  "/pipermail/team/", "/mailman/listinfo/team", "/x/mailman/private/team/",
                                  "/mailman/privatex/team/"])
def test_canonical_path_leaves_other_paths_alone(path):
    assert canonical_path(path) == path


def test_private_paths_given_as_entries_become_one_key():
    redirect_map = build_map([
        RedirectEntry("/pipermail/team/2019-February/000001.html", "/a/", "message", "team/2019-February/000001"),
        RedirectEntry("/mailman/private/team/2019-February/000001.html", "/a/", "message", "team/2019-February/000001"),
        RedirectEntry("/cgi-bin/mailman/private/team/x", "/b/", "list", "team"),
    ])
    assert redirect_map.redirects == {"/pipermail/team/2019-February/000001.html": "/a/", "/pipermail/team/x": "/b/"}
    assert not redirect_map.duplicates and not redirect_map.conflicts


@pytest.mark.parametrize(
    ("volume", "target"),
    [
        ("2019-February", f"{HK_LIST}2019/02/"),
        ("2019-December", f"{HK_LIST}2019/12/"),
        ("20160211", f"{HK_LIST}2016/02/11/"),
        ("2019", None),
        ("2019q1", None),
        ("Week-of-Mon-20160208", None),
    ],
)
def test_volume_entries(volume, target):
    entries = volume_entries("team", ADDRESS, volume)
    if target is None:
        assert entries == []
        return
    paths = {e.old_path for e in entries}
    assert {e.new_url for e in entries} == {target}
    for base in ("/pipermail/team", "/mailman/private/team", "/cgi-bin/mailman/private/team"):
        assert {canonical_path(p) for p in (f"{base}/{volume}", f"{base}/{volume}/", f"{base}/{volume}/date.html",
                f"{base}/{volume}/thread.html", f"{base}/{volume}/subject.html",
                f"{base}/{volume}/author.html")} <= paths
    assert all(p.startswith("/pipermail/team/") for p in paths)


def test_list_and_site_entries():
    mapping = {e.old_path: e.new_url for e in list_entries("team", ADDRESS) + site_entries()}
    postorius = "/postorius/lists/team.lists.example.org/"
    assert postorius_list_url(ADDRESS) == postorius
    assert mapping["/pipermail/team/"] == HK_LIST
    assert mapping["/pipermail/team"] == HK_LIST
    assert mapping["/mailman/listinfo/team"] == postorius
    assert mapping["/cgi-bin/mailman/listinfo/team/"] == postorius
    for script in ("admin", "admindb", "options", "subscribe", "roster"):
        assert mapping[f"/mailman/{script}/team"] == postorius
        assert mapping[f"/cgi-bin/mailman/{script}/team"] == postorius
    assert mapping[canonical_path("/mailman/private/team/")] == HK_LIST
    assert mapping[canonical_path("/cgi-bin/mailman/private/team")] == HK_LIST
    assert mapping["/mailman/private/"] == "/postorius/lists/"
    assert mapping["/mailman/listinfo"] == "/postorius/lists/"
    assert mapping["/cgi-bin/mailman/admin/"] == "/postorius/lists/"
    assert mapping["/pipermail/"] == "/hyperkitty/"
    redirect_map = build_map(list_entries("team", ADDRESS) + site_entries())
    assert not redirect_map.conflicts and not redirect_map.duplicates


def test_archive_entries_map_only_imported_messages():
    refs = [
        ArticleRef("2019-February", 0, "2019-February/000000.html", Path("x"), "<a@x>"),
        ArticleRef("2019-February", 1, "2019-February/000001.html", Path("x"), None),
        ArticleRef("2019-March", 2, "2019-March/000002.html", Path("x"), "<mailman.1.2.3.team@x>"),
    ]
    entries, unmapped = archive_entries("team", ADDRESS, refs, imported_ids={"<a@x>"})
    paths = {e.old_path for e in entries}
    assert "/pipermail/team/2019-February/000000.html" in paths
    assert "/pipermail/team/2019-February/000001.html" not in paths
    assert "/pipermail/team/2019-March/000002.html" not in paths
    assert "/pipermail/team/2019-March/thread.html" in paths and "/mailman/listinfo/team" in paths
    assert [(u.source, u.reason) for u in unmapped] == [
        ("team/2019-February/000001", "the page carries no usable Message-ID"),
        ("team/2019-March/000002", "HyperKitty holds no message with this Message-ID"),
    ]


def test_archive_entries_agree_with_generated_archives(tmp_path):
    """Every article of the lab generator's trees goes where its ground truth says, or nowhere."""
    from migrate.lab.mailman2_archives import MIN_MESSAGES, generate_archives
    from migrate.lab.mailman2_seed import generate_tree

    generate_tree(tmp_path, members=3)
    facts = generate_archives(tmp_path, messages=MIN_MESSAGES)
    mapped = 0
    for name, fact in facts.items():
        if not fact.archived or not fact.mbox_path:
            continue
        address = f"{name}@{fact.host_name}"
        imported = prepare(tmp_path / fact.mbox_path, tmp_path / "prepared.mbox", list_name=address).message_ids
        entries, unmapped = archive_entries(name, address, walk_archive(tmp_path / fact.html_dir),
                                            imported_ids=set(imported))
        redirect_map = build_map(entries)
        assert not redirect_map.conflicts and not redirect_map.rejected
        shared = {m.mbox_index for m in fact.messages if m.hyperkitty_duplicate_of is not None}
        shared |= {m.hyperkitty_duplicate_of for m in fact.messages if m.hyperkitty_duplicate_of is not None}
        for message in fact.messages:
            target = redirect_map.redirects.get(f"/pipermail/{name}/{message.article_url}")
            if message.hyperkitty_id is None or message.mbox_index in shared:
                assert target is None
            else:
                assert target == f"/hyperkitty/list/{address}/message/{message.hyperkitty_hash}/"
                mapped += 1
        for extra in fact.extra_articles:
            assert f"/pipermail/{name}/{extra.article_url}" not in redirect_map.redirects
        assert redirect_map.redirects[f"/pipermail/{name}/"] == f"/hyperkitty/list/{address}/"
    assert mapped > 100


# --- build_map ----------------------------------------------------------------------------------

def test_conflicting_paths_are_reported_not_guessed():
    redirect_map = build_map([
        RedirectEntry("/pipermail/x/", "/a/", "list", "x"),
        RedirectEntry("/pipermail/x/", "/b/", "list", "x"),
        RedirectEntry("/pipermail/y/", "/c/", "list", "y"),
        RedirectEntry("/pipermail/y/", "/c/", "list", "y"),
    ])
    assert redirect_map.redirects == {"/pipermail/y/": "/c/"}
    (conflict,) = redirect_map.conflicts
    assert conflict.old_paths == ("/pipermail/x/",) and conflict.targets == ("/a/", "/b/")


def test_paths_differing_in_case_are_one_path():
    redirect_map = build_map([
        RedirectEntry("/pipermail/Team/", "/a/", "list", "Team"),
        RedirectEntry("/pipermail/team/", "/b/", "list", "team"),
        RedirectEntry("/pipermail/Same/", "/s/", "list", "Same"),
        RedirectEntry("/pipermail/same/", "/s/", "list", "same"),
    ])
    assert redirect_map.redirects == {"/pipermail/Same/": "/s/", "/pipermail/same/": "/s/"}
    assert redirect_map.conflicts[0].old_paths == ("/pipermail/Team/", "/pipermail/team/")
    http_conf, _ = render_nginx(redirect_map)
    assert http_conf.lower().count('"/pipermail/same/"') == 1
    txt, _ = render_apache(redirect_map, map_path="/etc/apache2/m.txt")
    assert txt.count("/pipermail/") == 2


def test_duplicate_message_ids_are_reported_not_mapped():
    entries = (
        article_entries("team", ADDRESS, "2019-February", 1, "<dup@x>")
        + article_entries("team", ADDRESS, "2019-March", 7, "<dup@x>")
        + article_entries("team", ADDRESS, "2019-March", 8, "<single@x>")
    )
    redirect_map = build_map(entries)
    assert set(redirect_map.redirects) == {e.old_path for e in entries if e.message_id == "<single@x>"}
    (duplicate,) = redirect_map.duplicates
    assert duplicate.message_id == "<dup@x>"
    assert duplicate.sources == ("team/2019-February/000001", "team/2019-March/000007")
    assert duplicate.old_paths == ("/pipermail/team/2019-February/000001.html",
                                   "/pipermail/team/2019-March/000007.html")


def test_unsafe_entries_are_rejected():
    redirect_map = build_map([
        RedirectEntry("/pipermail/new\nline", "/a/"),
        RedirectEntry("relative/path", "/a/"),
        RedirectEntry("/pipermail/ok", "/target with space/"),
        RedirectEntry("/pipermail/ok2", "/$host/"),
        RedirectEntry("/pipermail/ok3", 'http://evil/"'),
    ])
    assert redirect_map.redirects == {}
    assert len(redirect_map.rejected) == 5


def many_entries(count: int, seed: int = 0) -> list[RedirectEntry]:
    rng = random.Random(seed)
    entries = []
    for number in range(count):
        volume = f"{2000 + number % 20}-{['January', 'February', 'March'][number % 3]}"
        entries.extend(article_entries(f"list{number % 50}", f"list{number % 50}@lists.example.org", volume,
                                       number, f"<{rng.getrandbits(64):x}.{number}@example.org>"))
    return entries


def test_rendering_is_deterministic():
    entries = many_entries(300) + [RedirectEntry(p, u, "list", p) for p, u in AWKWARD.items()]
    shuffled = list(entries)
    random.Random(5).shuffle(shuffled)
    first, second = build_map(entries), build_map(shuffled)
    assert render_nginx(first) == render_nginx(second)
    assert render_apache(first, map_path="/m.txt") == render_apache(second, map_path="/m.txt")
    assert list(first.redirects) == sorted(first.redirects)


def test_twenty_thousand_entries():
    redirect_map = build_map(many_entries(20_000))
    assert len(redirect_map) == 20_000
    http_conf, _ = render_nginx(redirect_map)
    txt, _ = render_apache(redirect_map, map_path="/m.txt", dbm=True)
    assert http_conf.count("\n") > 20_000 and txt.count("\n") > 20_000
    assert redirect_map.to_json()["counts"]["redirects"] == 20_000


# --- Apache escaping ----------------------------------------------------------------------------

def test_apache_escape():
    assert apache_escape("/pipermail/team/2019-February/000001.html") == "/pipermail/team/2019-February/000001.html"
    assert apache_escape("/a b") == "/a%20b"
    assert apache_escape("/caf\u00e9") == "/caf%c3%a9"
    assert apache_escape("/100%") == "/100%25"
    assert apache_escape("/a;b$c") == "/a;b$c"
    txt, snippet = render_apache(awkward_map(), map_path="/etc/apache2/migrate-redirects.txt")
    for line in txt.splitlines():
        if not line.startswith("#"):
            assert len(line.split()) == 2, line
    assert 'RewriteMap migrate "txt:/etc/apache2/migrate-redirects.txt"' in snippet
    assert "${migrate:${migrate_escape:%{REQUEST_URI}}}" in snippet
    _, dbm_snippet = render_apache(awkward_map(), map_path="/etc/apache2/migrate.dbm", dbm=True)
    assert 'RewriteMap migrate "dbm:/etc/apache2/migrate.dbm"' in dbm_snippet
    with pytest.raises(ValueError):
        render_apache(awkward_map(), map_path='/etc/"quoted"')


# --- real servers -------------------------------------------------------------------------------

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
APACHE = shutil.which("apache2") or ("/usr/sbin/apache2" if os.path.exists("/usr/sbin/apache2") else None)
HTTXT2DBM = shutil.which("httxt2dbm") or ("/usr/sbin/httxt2dbm" if os.path.exists("/usr/sbin/httxt2dbm") else None)
APACHE_MODULES = Path("/usr/lib/apache2/modules")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serving(argv: list[str], port: int, log: Path) -> Iterator[None]:
    with log.open("wb") as output:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server did not start: {log.read_text(errors='replace')}")
            time.sleep(0.05)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def fetch(port: int, path: str) -> tuple[int, str | None, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", urllib.parse.quote(path, safe="/"))
        response = connection.getresponse()
        location = response.getheader("Location")
        return response.status, urllib.parse.urlsplit(location).path if location else None, response.read()
    finally:
        connection.close()


def check_redirects(port: int) -> None:
    for path, target in {**AWKWARD, **ASCII_PROBES}.items():
        assert fetch(port, path)[:2] == (301, target), path
    status, location, body = fetch(port, "/pipermail/team/2019-February/000002.html")
    assert (status, location, body) == (200, None, b"static copy\n"), "unmapped paths reach the static copy"


def static_tree(root: Path) -> Path:
    page = root / "static" / "pipermail" / "team" / "2019-February" / "000002.html"
    page.parent.mkdir(parents=True)
    page.write_bytes(b"static copy\n")
    return root / "static"


def nginx_wrapper(root: Path, port: int) -> Path:
    http_conf, server_conf = render_nginx(awkward_map())
    (root / "redirects-http.conf").write_text(http_conf)
    (root / "redirects-server.conf").write_text(server_conf)
    static = static_tree(root)
    temp = "".join(f"    {kind}_temp_path {root}/{kind}-temp;\n"
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    wrapper = root / "nginx.conf"
    wrapper.write_text(f"""daemon off;
master_process off;
pid {root}/nginx.pid;
error_log {root}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
{temp}    include {root}/redirects-http.conf;
    server {{
        listen 127.0.0.1:{port};
        include {root}/redirects-server.conf;
        location /pipermail/ {{ root {static}; }}
        location / {{ return 404; }}
    }}
}}
""")
    return wrapper


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed")
def test_nginx_accepts_and_serves_the_map(tmp_path):
    port = free_port()
    wrapper = nginx_wrapper(tmp_path, port)
    check = subprocess.run([NGINX, "-t", "-c", str(wrapper), "-p", str(tmp_path), "-e", "stderr"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    with serving([NGINX, "-c", str(wrapper), "-p", str(tmp_path), "-e", "stderr"], port, tmp_path / "nginx.out"):
        check_redirects(port)


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed")
def test_nginx_accepts_a_large_map_with_long_keys(tmp_path):
    entries = many_entries(5_000) + [RedirectEntry("/pipermail/" + "l" * 300 + "/", "/long/", "list", "long")]
    http_conf, server_conf = render_nginx(build_map(entries))
    (tmp_path / "http.conf").write_text(http_conf)
    (tmp_path / "server.conf").write_text(server_conf)
    wrapper = tmp_path / "nginx.conf"
    wrapper.write_text(f"pid {tmp_path}/nginx.pid;\nevents {{}}\nhttp {{\n include {tmp_path}/http.conf;\n"
                       f" server {{ listen 127.0.0.1:{free_port()}; include {tmp_path}/server.conf; }}\n}}\n")
    check = subprocess.run([NGINX, "-t", "-c", str(wrapper), "-p", str(tmp_path), "-e", "stderr"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


@contextlib.contextmanager
def apache_root() -> Iterator[Path]:
    # Apache's children run as nobody and open the map at lookup time: the files must be readable
    # by it, which pytest's private temporary folders are not.
    root = Path(tempfile.mkdtemp(prefix="migrate-apache-"))
    try:
        root.chmod(0o755)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def apache_wrapper(root: Path, port: int, *, dbm: bool) -> Path:
    redirect_map = awkward_map()
    txt_path, dbm_path = root / "redirects.txt", root / "redirects.dbm"
    txt, snippet = render_apache(redirect_map, map_path=str(dbm_path if dbm else txt_path), dbm=dbm)
    txt_path.write_text(txt)
    if dbm:
        subprocess.run(httxt2dbm_argv(str(txt_path), str(dbm_path), program=HTTXT2DBM), check=True,
                       capture_output=True)
    (root / "redirects.conf").write_text(snippet)
    static = static_tree(root)
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    wrapper = root / "apache.conf"
    wrapper.write_text(f"""ServerRoot {root}
DefaultRuntimeDir {root}
PidFile {root}/httpd.pid
ErrorLog {root}/error.log
LoadModule mpm_event_module {APACHE_MODULES}/mod_mpm_event.so
LoadModule authz_core_module {APACHE_MODULES}/mod_authz_core.so
LoadModule rewrite_module {APACHE_MODULES}/mod_rewrite.so
User nobody
Group nogroup
ServerName localhost
Listen 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
    DocumentRoot {static}
    <Directory {static}>
        Require all granted
    </Directory>
    Include {root}/redirects.conf
</VirtualHost>
""")
    return wrapper


@pytest.mark.skipif(APACHE is None or not APACHE_MODULES.is_dir(), reason="apache2 is not installed")
@pytest.mark.parametrize("dbm", [False, True], ids=["txt", "dbm"])
def test_apache_accepts_and_serves_the_map(dbm):
    if dbm and HTTXT2DBM is None:
        pytest.skip("httxt2dbm is not installed")
    port = free_port()
    with apache_root() as root:
        wrapper = apache_wrapper(root, port, dbm=dbm)
        check = subprocess.run([APACHE, "-t", "-f", str(wrapper)], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        with serving([APACHE, "-f", str(wrapper), "-DFOREGROUND"], port, root / "apache.out"):
            check_redirects(port)


# --- the legacy host's listing reads each page as the local reader does ----------------------------

def remote_listing(var_dir: Path, names: tuple[str, ...] = ()) -> dict:
    """The listing command the redirect step runs on the legacy host, run here on a local tree."""
    from migrate.archives.redirect_steps import parse_pipermail_listing, pipermail_listing_argv
    from migrate.core.transport import LocalTransport

    result = LocalTransport().run(pipermail_listing_argv(str(var_dir), list(names))).check()
    return parse_pipermail_listing(result.stdout)


def test_the_listing_and_the_local_reader_agree_on_every_generated_page(tmp_path):
    from migrate.lab.mailman2_archives import MIN_MESSAGES, generate_archives
    from migrate.lab.mailman2_seed import generate_tree

    generate_tree(tmp_path, members=3)
    facts = generate_archives(tmp_path, messages=MIN_MESSAGES)
    legacy = remote_listing(tmp_path)
    compared = 0
    for name, fact in facts.items():
        if not (tmp_path / fact.html_dir).is_dir():
            continue
        local = {ref.relative_url: ref.message_id for ref in walk_archive(tmp_path / fact.html_dir)}
        remote = {ref.relative_url: ref.message_id for ref in legacy[name].articles}
        assert remote == local, name
        compared += len(local)
    assert compared > 100


def hostile_pages() -> dict[int, tuple[bytes, str | None]]:
    """Article pages (number → page, its own Message-ID) where a poster's text imitates the link.

    Pipermail escapes `&`, `<`, `>` and `"` in a subject (CGIescape) and links only `scheme://`
    URLs in a body, so this is what a poster can put on a page.
    """
    from .test_pipermail import article_page

    return {
        0: (article_page(b"<own0@example.org>", subject="Re: In-Reply-To=%3Cvictim%40example.org%3E"),
            "<own0@example.org>"),
        1: (article_page(b"<own1@example.org>", subject="mailto:x?In-Reply-To=%3Cvictim%40example.org%3E"),
            "<own1@example.org>"),
        2: (article_page(b"<own2@example.org>", subject="x href='mailto:x?In-Reply-To=%3Cvictim%40example.org%3E'"),
            "<own2@example.org>"),
        # A page from before 2.1.10 carries no id of its own; a link in its body is the poster's.
        3: (article_page(None, body='<A HREF="mailto://x?In-Reply-To=%3Cvictim%40example.org%3E">mailto://x</A>'),
            None),
        4: (article_page(b"<victim@example.org>"), "<victim@example.org>"),
    }


def test_a_subject_or_body_imitating_the_link_does_not_give_a_page_another_messages_id(tmp_path):
    from migrate.archives.pipermail import read_article

    pages = hostile_pages()
    (tmp_path / "lists" / "team").mkdir(parents=True)
    volume = tmp_path / "archives" / "private" / "team" / "2019-January"
    volume.mkdir(parents=True)
    for number, (page, _) in pages.items():
        (volume / f"{number:06d}.html").write_bytes(page)
    expected = {number: own for number, (_, own) in pages.items()}

    for names in ((), ("team",)):
        remote = {a.number: a.message_id for a in remote_listing(tmp_path, names)["team"].articles}
        assert remote == expected
    assert {a.number: a.message_id for a in walk_archive(volume.parent)} == expected
    assert {number: read_article(page).message_id for number, (page, _) in pages.items()} == expected
