"""web-01 in the lab: Debian's nginx and Apache with their own configs on 127.0.0.13.

The include folders and the pipermail copy are shared with the toolkit and other sessions, so
every file a test adds has a unique name and is removed (and the servers reloaded) afterwards.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from migrate.lab.hyperkitty import HyperKittyWeb
from migrate.lab.web import WebConfigPaths, WebLabError, WebServer, render_nginx_config

pytestmark = [pytest.mark.slow, pytest.mark.lab]


@pytest.fixture(scope="module")
def web():
    """The lab web server, started if needed; never stopped here because the lab is shared."""
    from migrate.lab.seeding import clear_web_redirects

    web = WebServer()
    started = time.monotonic()
    web.up()
    print(f"\nweb up: {time.monotonic() - started:.2f} s")
    # A rehearsal leaves its redirect configuration installed; these tests add their own.
    clear_web_redirects()
    return web


@pytest.fixture
def token() -> str:
    return secrets.token_hex(4)


def _get(url_base: str, path: str) -> tuple[int, dict[str, str], bytes]:
    """GET without following redirects: (status, headers, body)."""
    host, _, port = url_base.removeprefix("http://").partition(":")
    conn = http.client.HTTPConnection(host, int(port or 80), timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def _bases(web: WebServer) -> list[str]:
    return [web.base_url] + ([web.apache_base_url] if web.apache_base_url else [])


@contextlib.contextmanager
def _snippets(web: WebServer, files: dict[Path, str]) -> Iterator[None]:
    """Install config snippets and reload; remove them and reload again afterwards."""
    try:
        for path, text in files.items():
            path.write_text(text)
        web.reload()
        yield
    finally:
        for path in files:
            path.unlink(missing_ok=True)
        web.reload()


def _listening_sockets() -> list[tuple[str, int, set[int]]]:
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    sockets = []
    for line in out.splitlines():
        address, _, port = line.split()[3].rpartition(":")
        sockets.append((address.strip("[]"), int(port),
                        {int(pid) for pid in re.findall(r"pid=(\d+)", line)}))
    return sockets


def test_up_again_leaves_the_running_servers_alone(web):
    pids = web.daemon_pids()

    started = time.monotonic()
    web.up()
    elapsed = time.monotonic() - started

    assert web.daemon_pids() == pids
    assert elapsed < 2.0, f"a second up() took {elapsed:.1f} s"
    print(f"\nweb up while running: {elapsed:.3f} s")


def test_status_reports_both_servers(web):
    statuses = {s.name: s for s in web.status()}

    assert statuses["nginx web-01"].running
    assert statuses["nginx web-01"].address == "127.0.0.13:80"
    assert statuses["nginx web-01"].pid == web.nginx_pid()
    assert statuses["apache web-01"].running
    assert statuses["apache web-01"].address == "127.0.0.13:8080"


def test_listens_on_its_loopback_address_only(web):
    ours = [(address, port) for address, port, pids in _listening_sockets()
            if pids & set(web.daemon_pids())]

    assert sorted(ours) == [("127.0.0.13", 80), ("127.0.0.13", 8080)]


def test_a_static_pipermail_file_is_served(web, token):
    folder = web.config_paths.pipermail_root / f"labtest-{token}"
    folder.mkdir()
    try:
        (folder / "index.html").write_text(f"<html><body>archive {token}</body></html>\n")
        (folder / "000001.html").write_text(f"<html><body>message {token}</body></html>\n")
        for base in _bases(web):
            status, headers, body = _get(base, f"/pipermail/labtest-{token}/000001.html")
            assert status == 200, base
            assert f"message {token}" in body.decode()
            assert headers["Content-Type"].startswith("text/html")
            # The folder URL answers with its index.html, as Mailman 2's web server did.
            status, _, body = _get(base, f"/pipermail/labtest-{token}/")
            assert (status, f"archive {token}" in body.decode()) == (200, True), base
            assert _get(base, f"/pipermail/labtest-{token}/missing.html")[0] == 404
    finally:
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()


def test_a_snippet_in_the_include_folders_works_after_reload(web, token):
    paths = web.config_paths
    files = {
        paths.nginx_include_dir / f"labtest-{token}.conf":
            f"location = /old-{token} {{ return 301 /new-{token}; }}\n",
        paths.apache_include_dir / f"labtest-{token}.conf":
            f"RedirectMatch 301 ^/old-{token}$ /new-{token}\n",
    }
    for base in _bases(web):
        assert _get(base, f"/old-{token}")[0] == 404

    started = time.monotonic()
    with _snippets(web, files):
        print(f"\nweb reload (check + both servers): {time.monotonic() - started:.3f} s")
        for base in _bases(web):
            status, headers, _ = _get(base, f"/old-{token}")
            assert status == 301, base
            assert headers["Location"].endswith(f"/new-{token}")

    for base in _bases(web):
        assert _get(base, f"/old-{token}")[0] == 404


def test_an_http_level_map_feeds_a_server_level_redirect(web, token):
    """The shape the toolkit's pipermail redirects take in nginx: a map plus an `if` return."""
    variable = f"$labtest_{token}"
    files = {
        web.config_paths.nginx_http_include_dir / f"labtest-{token}.conf":
            # Keys longer than the default bucket (64 bytes here) fail the config check:
            # "could not build map_hash, you should increase map_hash_bucket_size".
            "map_hash_bucket_size 256;\n"
            f"map $uri {variable} {{\n    default \"\";\n"
            f"    /pipermail/labtest-{token}/2019-March/000001.html "
            f"/hyperkitty/list/labtest-{token}@example.org/message/ABC/;\n}}\n",
        web.config_paths.nginx_include_dir / f"labtest-{token}.conf":
            f"if ({variable}) {{ return 301 {variable}; }}\n",
    }
    with _snippets(web, files):
        status, headers, _ = _get(web.base_url,
                                  f"/pipermail/labtest-{token}/2019-March/000001.html")
        other, _, _ = _get(web.base_url, f"/pipermail/labtest-{token}/2019-March/000002.html")

    assert status == 301
    assert headers["Location"].endswith(
        f"/hyperkitty/list/labtest-{token}@example.org/message/ABC/")
    assert other == 404


def test_a_broken_snippet_fails_the_check_and_the_old_config_keeps_serving(web, token):
    broken = web.config_paths.nginx_include_dir / f"labtest-{token}.conf"
    pid = web.nginx_pid()
    try:
        broken.write_text("location = /broken { return 301\n")
        with pytest.raises(WebLabError, match="nginx config check failed"):
            web.check_config()
        with pytest.raises(WebLabError):
            web.reload()
        assert web.nginx_pid() == pid
        assert _get(web.base_url, "/hyperkitty/api/mailman/archive")[0] == 403
    finally:
        broken.unlink(missing_ok=True)
    web.check_config()


def test_the_archiving_api_is_not_proxied(web):
    for base in _bases(web):
        assert _get(base, "/hyperkitty/api/mailman/archive")[0] == 403, base


def test_proxies_hyperkitty_and_postorius(web):
    hyperkitty = HyperKittyWeb()
    if not hyperkitty.status()[0].running:
        pytest.skip("the hyperkitty lab component is not running")

    for base in _bases(web):
        for path in ("/hyperkitty/", "/postorius/lists/", "/static/hyperkitty/img/logo.png"):
            status, _, body = _get(base, path)
            assert status == 200, (base, path, body[:300])
        status, _, body = _get(base, "/hyperkitty/")
        assert b"HyperKitty" in body or b"hyperkitty" in body


def test_commands_for_the_toolkit_name_our_config(web):
    assert web.check_command("nginx") == [
        "/usr/sbin/nginx", "-c", str(web.nginx_conf), "-p", f"{web.nginx_home}/", "-t"]
    assert web.reload_command("nginx")[-2:] == ["-s", "reload"]
    assert web.check_command("apache") == [
        "/usr/sbin/apache2", "-f", str(web.apache_conf), "-d", str(web.apache_home), "-t"]
    assert web.reload_command("apache")[-2:] == ["-k", "graceful"]
    root = web.host_root
    assert web.config_paths.nginx_include_dir == root / "etc/nginx/migrate.d"
    assert web.config_paths.nginx_http_include_dir == root / "etc/nginx/migrate-http.d"
    assert web.config_paths.apache_include_dir == root / "etc/apache2/migrate.d"
    assert web.config_paths.pipermail_root == root / "srv/pipermail"


def test_render_nginx_config_includes_the_toolkit_folders_and_listens_on_one_address():
    paths = WebConfigPaths(nginx_http_include_dir=Path("/r/etc/nginx/migrate-http.d"),
                           nginx_include_dir=Path("/r/etc/nginx/migrate.d"),
                           apache_include_dir=Path("/r/etc/apache2/migrate.d"),
                           pipermail_root=Path("/r/srv/pipermail"),
                           document_root=Path("/r/srv/www"))
    text = render_nginx_config(address="127.0.0.13", port=80, home=Path("/h"),
                               server_name="web-01", paths=paths,
                               upstream="http://127.0.0.12:8000")

    assert "include /r/etc/nginx/migrate-http.d/*.conf;" in text
    assert "include /r/etc/nginx/migrate.d/*.conf;" in text
    assert re.findall(r"listen ([^;]+);", text) == ["127.0.0.13:80 default_server"]
    assert "location /pipermail/ {\n            root /r/srv;" in text
    # The map include sits at http level, before the server block that uses its variables.
    assert text.index("migrate-http.d") < text.index("server {")
