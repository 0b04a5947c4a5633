"""HyperKitty and Postorius in the lab: real gunicorn on lists-01, fed by the real Mailman 3 core.

Every test list lives in its own `hktest-<random>.example.org` domain, deleted afterwards; other
domains in core belong to other tests and sessions and are never touched.
"""

from __future__ import annotations

import base64
import hashlib
import json
import mailbox
import secrets
import smtplib
import subprocess
import time
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import pytest

from migrate.lab.hyperkitty import HYPERKITTY_VERSION, HyperKittyWeb, render_settings
from migrate.lab.mailman3 import Mailman3Core

pytestmark = [pytest.mark.slow, pytest.mark.lab]


@pytest.fixture(scope="module")
def core():
    """Mailman 3 core with the HyperKitty archiver; never stopped here (the lab is shared)."""
    core = Mailman3Core()
    core.up()
    return core


@pytest.fixture(scope="module")
def web(core):
    web = HyperKittyWeb()
    started = time.monotonic()
    web.up()
    print(f"\nhyperkitty up: {time.monotonic() - started:.2f} s")
    return web


@pytest.fixture(scope="module")
def archived_lists(web):
    """Addresses of the lists the tests create; their HyperKitty archives go at the end."""
    addresses: list[str] = []
    yield addresses
    web.delete_archives(addresses)


@pytest.fixture
def domain(core, archived_lists):
    """A fresh mail domain in core, deleted with its lists afterwards."""
    client = core.client()
    name = f"hktest-{secrets.token_hex(4)}.example.org"
    created = client.create_domain(name)
    yield created
    archived_lists.extend(mlist.fqdn_listname for mlist in created.lists)
    client.delete_domain(name)


def _message_id_hash(message_id: str) -> str:
    """HyperKitty's message URL key: base32 of the SHA-1 of the Message-ID without <>."""
    return base64.b32encode(hashlib.sha1(message_id.strip("<>").encode()).digest()).decode()


def _write_mbox(path: Path, list_address: str, count: int) -> list[str]:
    """An mbox of `count` messages (a thread: each replies to the first); their Message-IDs."""
    box = mailbox.mbox(str(path))
    ids = []
    start = datetime(2019, 3, 1, 9, 0, tzinfo=timezone.utc)
    for number in range(count):
        msg = EmailMessage()
        msg["From"] = f"Sender {number} <sender{number}@example.net>"
        msg["To"] = list_address
        msg["Subject"] = "Lab import test" if number == 0 else "Re: Lab import test"
        msg["Date"] = format_datetime(start + timedelta(hours=number))
        msg["Message-ID"] = make_msgid(f"hk{number}", domain="lab.example")
        if ids:
            msg["In-Reply-To"] = ids[0]
            msg["References"] = ids[0]
        msg.set_content(f"Message number {number} of the import test.\n")
        box.add(mailbox.mboxMessage(msg))
        ids.append(msg["Message-ID"])
    box.close()
    return ids


def _email_count(web: HyperKittyWeb, list_address: str) -> int:
    """Messages in a public list's archive, through the API anonymous visitors use."""
    # The emails endpoint answers 500 (an uncaught MailingList.DoesNotExist) for a list that
    # HyperKitty does not know yet, while the list endpoint answers 404.
    if web.get(f"/hyperkitty/api/list/{list_address}/")[0] == 404:
        return 0
    status, _, body = web.get(f"/hyperkitty/api/list/{list_address}/emails/?limit=1")
    assert status == 200, body[:500]
    return json.loads(body)["count"]


def _stored_count(web: HyperKittyWeb, list_address: str) -> int:
    """Messages stored for a list, read from the database (works for private lists too)."""
    code = ("from hyperkitty.models import Email; "
            f"print(Email.objects.filter(mailinglist__name={list_address!r}).count())")
    result = subprocess.run(web.manage_command("shell", "-c", code), stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=120, check=True)
    return int(result.stdout.split()[-1])


def test_up_again_leaves_the_running_instance_alone(web):
    pid, daemons = web.gunicorn_pid(), web.daemon_pids()

    started = time.monotonic()
    web.up()
    elapsed = time.monotonic() - started

    assert web.gunicorn_pid() == pid
    assert web.daemon_pids() == daemons
    assert elapsed < 3.0, f"a second up() took {elapsed:.1f} s"
    print(f"\nhyperkitty up while running: {elapsed:.2f} s")


def test_status_reports_running(web):
    [status] = web.status()

    assert status.component == "hyperkitty"
    assert status.running
    assert status.pid == web.gunicorn_pid()
    assert status.address == "127.0.0.12:8000"
    assert HYPERKITTY_VERSION in status.detail


def test_pages_answer_anonymously(web):
    assert web.base_url == "http://127.0.0.12:8000"
    assert web.get("/hyperkitty/")[0] == 200
    # Postorius shows the public lists without a login in 1.3.13.
    assert web.get("/postorius/lists/")[0] == 200
    # Static files come from gunicorn too, so a proxy in front needs no copy of them.
    assert web.get("/static/hyperkitty/img/logo.png")[0] == 200


def test_settings_and_secrets_are_private(web):
    assert web.settings_file.stat().st_mode & 0o777 == 0o600
    assert web.archiver_key_file.stat().st_mode & 0o777 == 0o600
    assert web.secret_key_file.stat().st_mode & 0o777 == 0o600


def test_archiver_key_is_shared_with_core(web, core):
    key = web.archiver_key_file.read_text().strip()

    assert f"api_key: {key}\n" in core.archiver_config_file.read_text()
    assert f"MAILMAN_ARCHIVER_KEY = {key!r}\n" in web.settings_file.read_text()
    assert "class: mailman_hyperkitty.Archiver" in core.config_file.read_text()


def test_manage_command_sets_the_settings_file(web):
    argv = web.manage_command("hyperkitty_import", "-l", "x@y.example", "x.mbox")

    assert argv[0] == "env"
    assert f"MAILMAN_WEB_CONFIG={web.settings_file}" in argv
    assert argv[-4:] == ["hyperkitty_import", "-l", "x@y.example", "x.mbox"]
    assert str(web.mailman_web_bin) in argv


def test_a_list_created_in_core_appears_after_sync(web, domain):
    mlist = domain.create_list("fresh")

    assert web.get(f"/hyperkitty/list/{mlist.fqdn_listname}/")[0] == 404

    # Only this list: syncing all of them would pull in the lists of other tests and sessions.
    web.sync_lists([mlist.fqdn_listname])

    assert web.get(f"/hyperkitty/list/{mlist.fqdn_listname}/")[0] == 200


def test_import_an_mbox_and_open_a_message(web, domain, tmp_path):
    mlist = domain.create_list("imported")
    address = mlist.fqdn_listname
    ids = _write_mbox(tmp_path / "archive.mbox", address, 5)

    started = time.monotonic()
    result = subprocess.run(
        web.manage_command("hyperkitty_import", "-l", address, "--since", "1970-01-01",
                           str(tmp_path / "archive.mbox")),
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    print(f"\nhyperkitty_import of 5 messages: {elapsed:.2f} s ({5 / elapsed:.1f} msg/s, "
          f"including Django start-up)")

    assert _email_count(web, address) == 5
    for message_id in (ids[0], ids[-1]):
        status, _, body = web.get(
            f"/hyperkitty/list/{address}/message/{_message_id_hash(message_id)}/")
        assert status == 200, body[:500]
    assert web.get(f"/hyperkitty/list/{address}/message/{'A' * 32}/")[0] == 404


def test_a_private_archive_is_hidden_from_anonymous_visitors(web, domain, tmp_path):
    mlist = domain.create_list("secret")
    mlist.settings["archive_policy"] = "private"
    mlist.settings.save()
    address = mlist.fqdn_listname
    [message_id] = _write_mbox(tmp_path / "private.mbox", address, 1)
    # The import syncs the archive policy from core before it stores anything.
    result = subprocess.run(
        web.manage_command("hyperkitty_import", "-l", address, "--since", "1970-01-01",
                           str(tmp_path / "private.mbox")),
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr

    overview, headers, _ = web.get(f"/hyperkitty/list/{address}/")
    message, _, _ = web.get(f"/hyperkitty/list/{address}/message/{_message_id_hash(message_id)}/")

    api, _, _ = web.get(f"/hyperkitty/api/list/{address}/emails/")

    # HyperKitty 1.3.12 answers 403 to an anonymous visitor of a private archive (no redirect
    # to the login page), for its pages and its API alike.
    assert overview == 403, (overview, headers.get("Location"))
    assert message == 403
    assert api == 403
    assert _stored_count(web, address) == 1


def test_a_post_through_core_is_archived_live(web, core, domain):
    mlist = domain.create_list("live")
    # Non-members' posts are held by default; this test is about archiving, not moderation.
    mlist.settings["default_nonmember_action"] = "accept"
    mlist.settings.save()
    address = mlist.fqdn_listname
    msg = EmailMessage()
    msg["From"] = "poster@example.net"
    msg["To"] = address
    msg["Subject"] = "Live archiving"
    msg["Message-ID"] = make_msgid("live", domain="lab.example")
    msg["Date"] = format_datetime(datetime.now(timezone.utc))
    msg.set_content("Posted over LMTP, archived by core's HyperKitty archiver.\n")

    started = time.monotonic()
    with smtplib.LMTP(core.address, core.lmtp_port) as lmtp:
        lmtp.send_message(msg)
    deadline = started + 30
    while time.monotonic() < deadline and _email_count(web, address) == 0:
        time.sleep(0.25)
    elapsed = time.monotonic() - started

    assert _email_count(web, address) == 1, f"not archived within {elapsed:.0f} s"
    assert web.get(f"/hyperkitty/list/{address}/message/"
                   f"{_message_id_hash(msg['Message-ID'])}/")[0] == 200
    print(f"\nLMTP post to archived in HyperKitty: {elapsed:.2f} s")


def test_render_settings_quotes_values_as_python():
    text = render_settings(
        secret_key="k'ey", allowed_hosts=["127.0.0.12"], trusted_origins=["http://127.0.0.12"],
        database={"ENGINE": "django.db.backends.postgresql", "NAME": "db", "PASSWORD": "p'w"}, rest_url="http://127.0.0.12:8001", rest_user="restadmin",
        rest_password="pw\"x", archiver_key="ak", archiver_from=["127.0.0.12", "127.0.0.1"],
        index_dir=Path("/lab/index"), static_root=Path("/lab/static"),
        log_file=Path("/lab/logs/web.log"), pysassc=Path("/venv/bin/pysassc"),
        site_url="http://127.0.0.12:8000")
    namespace = {"Q_CLUSTER": {"workers": 2},
                 "LOGGING": {"handlers": {"file": {"filename": "/opt/x"}}}}

    exec(text.split("\n", 3)[3], namespace)  # the lines after the star imports

    assert namespace["SECRET_KEY"] == "k'ey"
    assert namespace["MAILMAN_REST_API_PASS"] == 'pw"x'
    assert namespace["DATABASES"]["default"]["PASSWORD"] == "p'w"
    assert namespace["MAILMAN_ARCHIVER_FROM"] == ("127.0.0.12", "127.0.0.1")
    assert namespace["Q_CLUSTER"] == {"workers": 2, "sync": True}
    assert namespace["LOGGING"]["handlers"]["file"]["filename"] == "/lab/logs/web.log"
    assert namespace["COMPRESS_PRECOMPILERS"][0] == (
        "text/x-scss", "/venv/bin/pysassc -t compressed {infile} {outfile}")
    assert text.startswith("# Written by")
    assert "from mailman_web.settings.base import *" in text
