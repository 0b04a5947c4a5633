"""archives.redirects against the lab's real hosts, driven through `invoke` as an operator would.

The legacy tree is generated with its ground truth (`ArchiveFacts`), every list is migrated to
Mailman 3 and its archive imported into HyperKitty; then every old pipermail URL of a message with
a Message-ID is requested through the real nginx (and Apache) on web-01 and followed to the
HyperKitty page of that very message.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from migrate.archives.mbox import prepare
from migrate.archives.redirects import SCRIPT_PREFIXES, WEB_UI_SCRIPTS, postorius_list_url
from migrate.lab.hyperkitty import HyperKittyWeb
from migrate.lab.mailman2_archives import RENUMBERED_LIST, ArchiveFacts, MessageFacts, generate_archives
from migrate.lab.mailman3 import Mailman3Core
from migrate.lab.seeding import mailman2_var_dir, seed
from migrate.lab.web import WebServer

from ..helpers import PROJECT_ROOT, invoke, invoke_env, newest_run_id

pytestmark = [pytest.mark.lab, pytest.mark.slow]

LISTS, MEMBERS, MESSAGES, SEED = 13, 5, 20, 11
# HyperKitty renders a message page in about 0.3 s with two gunicorn workers: a few requests in
# parallel keep the whole archive under a minute.
WORKERS = 4
# Pages whose In-Reply-To link is taken out, as on pages written before Mailman 2.1.10: on a list
# archived live the mbox order still finds the message; on the rebuilt list it must not be tried.
STRIPPED = {"kultur-de": 15, RENUMBERED_LIST: 14}
REDIRECT_FILES = ("etc/nginx/migrate-http.d/migrate-redirects.conf", "etc/nginx/migrate.d/migrate-redirects.conf",
                  "etc/apache2/migrate.d/migrate-redirects.map", "etc/apache2/migrate.d/migrate-redirects.conf")

# Runs the task when the root namespace does not mount archives.redirects (yet): the same task
# object, with the project's invoke.yaml as configuration.
BOOT = """
import sys
import yaml
from invoke import Collection, Program
from migrate.core.paths import PROJECT_ROOT
from migrate.tasks import runs
from migrate.tasks.archives_redirects import redirects
ns = Collection(runs.ns, Collection("archives", redirects))
ns.configure(yaml.safe_load((PROJECT_ROOT / "invoke.yaml").read_text()))
Program(namespace=ns, name="invoke", binary="invoke").run(["invoke", *sys.argv[1:]])
"""


def _mounted(task: str) -> bool:
    try:
        import tasks
    except ImportError:
        return False
    collection, _, name = task.partition(".")
    sub = tasks.ns.collections.get(collection)
    return sub is not None and name in sub.tasks


def run_task(state: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`invoke ARGS` through the project's root namespace, or through BOOT when that does not
    mount archives.redirects or cannot be loaded (other phases' task modules are in the way)."""
    if _mounted("archives.redirects"):
        result = invoke(state, *args, timeout=timeout)
        if not (result.returncode and "tasks.py" in result.stderr and "Traceback" in result.stderr):
            return result
    return subprocess.run([sys.executable, "-c", BOOT, *args], cwd=PROJECT_ROOT, env=invoke_env(state),
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def redirects_task(state: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return run_task(state, "archives.redirects", *args, timeout=timeout)


# --- HTTP, independent of the code under test ---------------------------------------------------

@dataclass
class Landing:
    first_status: int
    first_location: str | None
    status: int
    url: str


def fetch(url: str, cookie: str | None = None) -> tuple[int, str | None, bytes]:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=60)
    try:
        headers = {"Cookie": f"sessionid={cookie}"} if cookie else {}
        conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""), headers=headers)
        response = conn.getresponse()
        return response.status, response.getheader("Location"), response.read()
    finally:
        conn.close()


def land(base: str, path: str, cookie: str | None = None, hops: int = 5) -> Landing:
    url = base + urllib.parse.quote(path)
    status, location, _ = fetch(url, cookie)
    first = (status, location)
    for _ in range(hops):
        if status not in (301, 302, 303, 307, 308) or not location:
            break
        url = urllib.parse.urljoin(url, location)
        status, location, _ = fetch(url, cookie)
    return Landing(first[0], first[1], status, url)


def location_path(location: str | None) -> str | None:
    return urllib.parse.unquote(urllib.parse.urlsplit(location).path) if location else None


def wait_for(predicate, timeout: float = 20.0) -> bool:
    """Reloads are asynchronous: poll until the servers serve what is expected."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


# --- the lab ------------------------------------------------------------------------------------

@dataclass
class Lab:
    facts: dict[str, ArchiveFacts]
    var_dir: Path
    web: WebServer
    hyperkitty: HyperKittyWeb
    state: Path
    first_run: str
    dry_output: str
    dry_log: str
    dry_files: dict[str, bool]
    session: str
    redirect_runs: list[str]

    def expected(self) -> list[tuple[ArchiveFacts, MessageFacts]]:
        """Every message with a Message-ID that must be reachable from its old URL."""
        return [(f, m) for f in self.facts.values() if f.archived for m in f.messages
                if m.hyperkitty_id and "duplicate" not in m.flags
                and not (f.list_name == RENUMBERED_LIST and m.mbox_index == STRIPPED[RENUMBERED_LIST])]

    def files(self) -> dict[str, str | None]:
        root = self.web.host_root
        return {rel: hashlib.sha256((root / rel).read_bytes()).hexdigest() if (root / rel).exists() else None
                for rel in REDIRECT_FILES}

    def report(self, run_id: str) -> dict:
        return json.loads((self.state / "runs" / run_id / "reports" / "redirects.json").read_text())


def strip_message_id(page: Path) -> None:
    """Make an article page look like one written before Mailman 2.1.10 (no In-Reply-To)."""
    text = page.read_bytes()
    stripped = re.sub(rb"(?:&amp;|&|\?)In-Reply-To=[^\"'&<>\s]*", b"", text)
    assert stripped != text and b"In-Reply-To" not in stripped
    page.write_bytes(stripped)


def import_archives(hyperkitty: HyperKittyWeb, facts: dict[str, ArchiveFacts], var_dir: Path,
                    folder: Path) -> None:
    """Each list's mbox, prepared as the toolkit prepares it, into HyperKitty (one Django start)."""
    addresses = {name: f"{name}@{f.host_name}" for name, f in facts.items() if f.archived and f.mbox_path}
    hyperkitty.delete_archives(sorted(addresses.values()))
    jobs = []
    for name, address in sorted(addresses.items()):
        target = folder / f"{name}.mbox"
        prepare(var_dir / facts[name].mbox_path, target, list_name=address)
        jobs.append((address, str(target)))
    code = ("import json, sys\nfrom django.core.management import call_command\n"
            "for address, path in json.load(sys.stdin):\n"
            "    call_command('hyperkitty_import', '-l', address, path)\n")
    result = subprocess.run(hyperkitty.manage_command("shell", "-c", code), input=json.dumps(jobs),
                            capture_output=True, text=True, timeout=600, env=_clean_env())
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]


def admin_session(hyperkitty: HyperKittyWeb) -> str:
    """A logged-in superuser's session id: private archives show their messages only to members."""
    code = ("from django.contrib.auth import get_user_model\nfrom django.test import Client\n"
            "user, _ = get_user_model().objects.get_or_create(username='migrate-redirect-test', "
            "defaults={'email': 'migrate-redirect-test@example.org'})\n"
            "user.is_superuser = user.is_staff = True\nuser.save()\n"
            "client = Client()\nclient.force_login(user)\n"
            "print('SESSION', client.cookies['sessionid'].value)\n")
    result = subprocess.run(hyperkitty.manage_command("shell", "-c", code), capture_output=True, text=True,
                            timeout=120, env=_clean_env(), stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-2000:]
    return re.search(r"^SESSION (\S+)$", result.stdout, re.M)[1]


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "DJANGO_SETTINGS_MODULE", "MAILMAN_WEB_CONFIG")}


def roll_back(state: Path, run_ids: list[str]) -> list[subprocess.CompletedProcess]:
    """Roll back these runs, newest first (a rolled-back run says so and changes nothing)."""
    return [run_task(state, "runs.rollback", run_id, "--yes", timeout=600) for run_id in reversed(run_ids)]


@pytest.fixture(scope="module")
def lab(lab_hosts, tmp_path_factory):
    started = time.monotonic()
    core, hyperkitty, web = Mailman3Core(), HyperKittyWeb(), WebServer()
    for component in (core, hyperkitty, web):
        component.up()
    seed(lists=LISTS, members=MEMBERS, seed=SEED)
    var_dir = mailman2_var_dir()
    facts = generate_archives(var_dir, messages=MESSAGES, seed=SEED)
    for name, index in STRIPPED.items():
        strip_message_id(var_dir / facts[name].html_dir / facts[name].messages[index].article_url)

    print(f"\nseeded and archived: {time.monotonic() - started:.1f} s")
    state = tmp_path_factory.mktemp("redirects-state")
    runs: list[str] = []
    addresses: list[str] = []
    try:
        migrated = invoke(state, "mailman.migrate", "--all", "--allow-pending", "--yes", timeout=600)
        assert migrated.returncode == 0, migrated.stdout[-3000:] + migrated.stderr[-3000:]
        print(f"migrated: {time.monotonic() - started:.1f} s")
        addresses = [f"{n}@{f.host_name}" for n, f in facts.items() if f.archived]
        imported = None
        if _mounted("archives.import"):
            imported = invoke(state, "archives.import", "--all", "--prestage", "--yes", timeout=600)
        if imported is None or imported.returncode != 0:
            # The import task is another phase's; these tests need HyperKitty to hold the
            # archives, so without it they import the prepared mboxes themselves.
            if imported is not None:
                print(f"\narchives.import failed ({imported.returncode}), importing directly:\n"
                      f"{imported.stdout[-1500:]}")
            import_archives(hyperkitty, facts, var_dir, tmp_path_factory.mktemp("mbox"))

        print(f"imported: {time.monotonic() - started:.1f} s")
        dry = redirects_task(state, "--dry-run")
        assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-3000:]
        dry_files = {rel: (web.host_root / rel).exists() for rel in REDIRECT_FILES}
        dry_run_id = newest_run_id(state)
        dry_log = (state / "runs" / dry_run_id / "run.log").read_text()
        first = redirects_task(state, "--yes", "--sample", "10")
        if newest_run_id(state) != dry_run_id:
            runs.append(newest_run_id(state))
        print(f"redirects dry run and run: {time.monotonic() - started:.1f} s")
        assert first.returncode == 0, first.stdout[-5000:] + first.stderr[-3000:]
        yield Lab(facts, var_dir, web, hyperkitty, state, newest_run_id(state), dry.stdout, dry_log, dry_files,
                  admin_session(hyperkitty), runs)
    finally:
        # Other sessions share web-01: nothing of ours may stay in its include folders.
        roll_back(state, runs)
        hyperkitty.delete_archives(addresses)
        subprocess.run(hyperkitty.manage_command(
            "shell", "-c", "from django.contrib.auth import get_user_model; "
                           "get_user_model().objects.filter(username='migrate-redirect-test').delete()"),
            capture_output=True, timeout=120, env=_clean_env(), stdin=subprocess.DEVNULL)


# --- the tests ----------------------------------------------------------------------------------

def test_dry_run_names_every_file_and_command_and_writes_nothing(lab):
    assert not any(lab.dry_files.values()), lab.dry_files
    assert "DRY RUN" in lab.dry_output and "install the static copy" in lab.dry_output
    # The run log has one line per operation: every file and command, as it would run on web-01.
    log = lab.dry_log
    for rel in REDIRECT_FILES:
        assert f"write {lab.web.host_root / rel} (" in log
    for server in ("nginx", "apache"):
        assert " ".join(lab.web.check_command(server)) in log
        assert " ".join(lab.web.reload_command(server)) in log


def test_every_old_article_url_lands_on_its_hyperkitty_message(lab):
    expected = lab.expected()
    volumes = {f.volume_frequency for f, _ in expected}
    assert volumes == {0, 1, 2, 3, 4}, "every volume frequency is covered"
    assert any(f.list_name == RENUMBERED_LIST for f, _ in expected)

    def check(item):
        facts, message = item
        landing = land(lab.web.base_url, f"/pipermail/{facts.list_name}/{message.article_url}", lab.session)
        ok = (landing.first_status == 301 and landing.status == 200
              and f"/message/{message.hyperkitty_hash}/" in landing.url
              and f"/list/{facts.list_name}@{facts.host_name}/" in landing.url)
        return None if ok else f"{facts.list_name}/{message.article_url}: {landing}"

    with ThreadPoolExecutor(WORKERS) as pool:
        problems = [p for p in pool.map(check, expected) if p]
    assert not problems, f"{len(problems)} of {len(expected)}: {problems[:10]}"
    print(f"\n{len(expected)} messages followed to HyperKitty through nginx")


def test_private_and_cgi_prefixes_redirect_too_and_apache_agrees(lab):
    base = lab.web.apache_base_url
    assert base is not None
    expected = lab.expected()

    def first_hops(item):
        facts, message = item
        want = f"/hyperkitty/list/{facts.list_name}@{facts.host_name}/message/{message.hyperkitty_hash}/"
        paths = [f"/pipermail/{facts.list_name}/{message.article_url}"] + [
            f"{prefix}/private/{facts.list_name}/{message.article_url}" for prefix in SCRIPT_PREFIXES]
        bad = []
        for server in (lab.web.base_url, base):
            for path in paths:
                status, location, _ = fetch(server + urllib.parse.quote(path))
                if status != 301 or location_path(location) != want:
                    bad.append(f"{server}{path}: {status} {location}")
        return bad

    with ThreadPoolExecutor(WORKERS) as pool:
        problems = [p for found in pool.map(first_hops, expected) for p in found]
    assert not problems, problems[:10]
    # Apache followed to the end as well, for one message of each list.
    seen = set()
    for facts, message in expected:
        if facts.list_name in seen:
            continue
        seen.add(facts.list_name)
        landing = land(base, f"/pipermail/{facts.list_name}/{message.article_url}", lab.session)
        assert landing.status == 200 and message.hyperkitty_hash in landing.url, landing


def test_reports_duplicates_mbox_fallback_and_the_renumbered_list(lab):
    report = lab.report(lab.first_run)
    by_list = {r["list"]: r for r in report["lists"]}
    duplicated = [(f, m) for f in lab.facts.values() for m in f.messages if "duplicate" in m.flags]
    assert duplicated
    reported = {s for d in report["duplicates"] for s in d["sources"]}
    for facts, message in duplicated:
        source = f"{facts.list_name}/{message.volume}/{message.article:06d}"
        assert source in reported
        # Not guessed: neither page redirects (a private list: no static copy either).
        status, _, _ = fetch(lab.web.base_url + f"/pipermail/{facts.list_name}/{message.article_url}")
        assert status == 404
    assert by_list["kultur-de"]["mbox_fallback_count"] == 1
    assert by_list[RENUMBERED_LIST]["disagreement_count"] > 0
    assert by_list[RENUMBERED_LIST]["mbox_fallback_count"] == 0
    assert sum(r["disagreement_count"] for r in report["lists"]) == by_list[RENUMBERED_LIST]["disagreement_count"]


def test_old_web_ui_urls_land_on_postorius_and_hyperkitty(lab):
    def one_list(facts: ArchiveFacts) -> list[str]:
        # One list's pages in sequence (see redirect_steps: Mailman core's archiver rows race).
        problems = []
        address = f"{facts.list_name}@{facts.host_name}"
        for base in (lab.web.base_url, lab.web.apache_base_url):
            for prefix in SCRIPT_PREFIXES:
                for script in WEB_UI_SCRIPTS:
                    private = facts.private and script == "private"
                    # A list without an archive has no HyperKitty page: its Postorius page then.
                    want = (f"/hyperkitty/list/{address}/" if script == "private" and facts.archived
                            else postorius_list_url(address))
                    for path in (f"{prefix}/{script}/{facts.list_name}", f"{prefix}/{script}/{facts.list_name}/"):
                        landing = land(base, path)
                        arrived = urllib.parse.unquote(urllib.parse.urlsplit(landing.url).path)
                        ok = (landing.first_status == 301 and location_path(landing.first_location) == want
                              and (landing.status == 200 or (private and landing.status == 403)
                                   or arrived.startswith("/accounts/login/")))
                        if not ok:
                            problems.append(f"{base}{path}: {landing}")
        return problems

    with ThreadPoolExecutor(WORKERS) as pool:
        problems = [p for found in pool.map(one_list, lab.facts.values()) for p in found]
    for base in (lab.web.base_url, lab.web.apache_base_url):
        for prefix in SCRIPT_PREFIXES:
            for script in WEB_UI_SCRIPTS:
                for path in (f"{prefix}/{script}", f"{prefix}/{script}/"):
                    landing = land(base, path)
                    if (landing.first_status, location_path(landing.first_location), landing.status) != (
                            301, "/postorius/lists/", 200):
                        problems.append(f"{base}{path}: {landing}")
    assert not problems, problems[:10]


def test_unmapped_urls_fall_through_to_the_static_copy_of_public_lists_only(lab):
    static = lab.web.config_paths.pipermail_root
    for name, facts in lab.facts.items():
        if facts.archived:
            assert (static / name).exists() == (not facts.private), name
    # A quarterly volume has no HyperKitty page: its index stays on the copy, byte for byte.
    quarterly = next(f for f in lab.facts.values() if f.volume_frequency == 2 and not f.private)
    volume = quarterly.volumes[0]
    legacy = (lab.var_dir / quarterly.html_dir / volume / "thread.html").read_bytes()
    for base in (lab.web.base_url, lab.web.apache_base_url):
        status, _, body = fetch(f"{base}/pipermail/{quarterly.list_name}/{volume}/thread.html")
        assert (status, body) == (200, legacy)
    # The page of the rebuilt list without its id: not guessed from the mbox, served from the copy.
    renumbered = lab.facts[RENUMBERED_LIST]
    page = renumbered.messages[STRIPPED[RENUMBERED_LIST]].article_url
    status, _, body = fetch(f"{lab.web.base_url}/pipermail/{RENUMBERED_LIST}/{page}")
    assert (status, body) == (200, (lab.var_dir / renumbered.html_dir / page).read_bytes())
    # Files no redirect covers (a volume's gzip'd text): served from the copy for public lists,
    # 404 for private ones, whose archives are never copied.
    for facts in lab.facts.values():
        if not facts.archived:
            continue
        legacy = (lab.var_dir / facts.html_dir / f"{facts.volumes[0]}.txt.gz").read_bytes()
        for base in (lab.web.base_url, lab.web.apache_base_url):
            status, _, body = fetch(f"{base}/pipermail/{facts.list_name}/{facts.volumes[0]}.txt.gz")
            if facts.private:
                assert status == 404, (base, facts.list_name, status)
            else:
                assert (status, body) == (200, legacy), (base, facts.list_name, status)


def test_running_again_changes_nothing_and_verify_passes(lab):
    before = lab.files()
    nginx = lab.web.nginx_pid(), lab.web.daemon_pids()
    again = redirects_task(lab.state, "--yes", "--sample", "5", "--json")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    run_id = json.loads(again.stdout)["run_id"]
    lab.redirect_runs.append(run_id)
    assert lab.files() == before and all(before.values())
    assert (lab.web.nginx_pid(), lab.web.daemon_pids()) == nginx, "nothing was reloaded"
    shown = json.loads(run_task(lab.state, "runs.show", run_id, "--json").stdout)
    ops = [o["op"] for s in shown["steps"] for o in s["ops"]]
    assert ops and {o["type"] for o in ops} <= {"WriteFile", "InstallStaticTree"}
    plan_rows = [line for line in again.stderr.splitlines() if re.match(r"│\s*\d+\s*│ web-01 ", line)]
    assert plan_rows and not [row for row in plan_rows if "unchanged" not in row], [
        row for row in plan_rows if "unchanged" not in row]
    assert lab.report(run_id)["redirects"] == lab.report(lab.first_run)["redirects"]

    verified = redirects_task(lab.state, "--verify", "--sample", "15")
    assert verified.returncode == 0, verified.stdout[-4000:] + verified.stderr[-2000:]


def test_a_changed_archive_replaces_its_copy_and_rollback_restores_it(lab):
    facts = next(f for f in lab.facts.values() if f.archived and not f.private)
    legacy = lab.var_dir / facts.html_dir / f"{facts.volumes[0]}.txt"
    url = f"{lab.web.base_url}/pipermail/{facts.list_name}/{facts.volumes[0]}.txt"
    original = legacy.read_bytes()
    assert fetch(url)[::2] == (200, original)
    try:
        legacy.write_bytes(original + b"\nA line added after the first copy.\n")
        changed = redirects_task(lab.state, "--yes", "--sample", "3", "--json")
        assert changed.returncode == 0, changed.stdout[-3000:] + changed.stderr[-3000:]
        run_id = json.loads(changed.stdout)["run_id"]
        lab.redirect_runs.append(run_id)
        assert "replaces content" in changed.stderr
        assert fetch(url)[::2] == (200, legacy.read_bytes())
        rolled = run_task(lab.state, "runs.rollback", run_id, "--yes", timeout=600)
        assert rolled.returncode == 0, rolled.stdout[-3000:] + rolled.stderr[-2000:]
        assert fetch(url)[::2] == (200, original)
    finally:
        legacy.write_bytes(original)


def test_verify_fails_when_a_redirect_is_missing(lab):
    server = lab.web.host_root / "etc/nginx/migrate.d/migrate-redirects.conf"
    kept = server.read_bytes()
    try:
        server.write_bytes(b"# emptied by the test\n")
        lab.web.reload()
        failed = redirects_task(lab.state, "--verify", "--sample", "3")
        assert failed.returncode == 10, failed.stdout[-3000:]
        assert "FAIL" in failed.stdout
    finally:
        server.write_bytes(kept)
        lab.web.reload()


def test_rollback_removes_the_configuration_and_the_copies(lab):
    facts, message = next((f, m) for f, m in lab.expected() if not f.private)
    path = f"/pipermail/{facts.list_name}/{message.article_url}"
    for rolled in roll_back(lab.state, lab.redirect_runs):
        assert rolled.returncode == 0, rolled.stdout[-3000:] + rolled.stderr[-2000:]
    assert not any(lab.files().values())
    assert not any((lab.web.config_paths.pipermail_root / name).exists() for name in lab.facts)
    for base in (lab.web.base_url, lab.web.apache_base_url):
        assert wait_for(lambda: fetch(base + path)[0] == 404), base
