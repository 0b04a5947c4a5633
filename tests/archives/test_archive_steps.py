"""Mailman 2 archives → HyperKitty against the lab's real services, driven through `invoke` as an
operator would: check, prepare, dry run, prestage (watched by an anonymous visitor), delta after
new posts, verify, and rollbacks that remove exactly what each import added. The pure parts
(progress parsing, watermarks, the import's undo, new posts) are tested first, without the lab."""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import time
from pathlib import Path

import pytest

from migrate.archives import mbox
from migrate.archives.hyperkitty import (
    ImportArchives, ImportProgress, RemoveImportedMessages, mailman_web_command, read_state, reader_runner,
)
from migrate.archives.steps import ImportArchive, find_watermarks, scan_bytes, whole_messages
from migrate.core.executor import ProgressHandle
from migrate.lab.mailman2_posts import append_posts
from migrate.core.executor import Executor
from migrate.core.journal import StateDir
from migrate.core.transport import Connections
from migrate.lab.hyperkitty import HyperKittyWeb
from migrate.lab.mailman3 import Mailman3Core
from migrate.lab.seeding import mailman2_var_dir, seed, seed_with_facts

from ..helpers import invoke, newest_run_id

LISTS, MEMBERS, MESSAGES, SEED = 12, 5, 25, 3
SINCE = "--since 1900-01-01T00:00:00+00:00 --ignore-mtime"


# -- without the lab ---------------------------------------------------------------------------

class _Bar(ProgressHandle):
    def __init__(self):
        self.completed = []

    def update(self, *, completed=None, total=None):
        self.completed.append(completed)


def test_progress_counts_one_spinner_mark_per_message_even_when_split_between_chunks():
    bar = _Bar()
    progress = ImportProgress(bar, 5)
    for chunk in ("Importing from mbox file x to y\n\r", "|\r/", "\r-\r", "\\\r|\rComputing thread structure\n"):
        progress.feed(chunk)
    assert progress.count == 5 and bar.completed[-1] == 5


def test_progress_reads_percentages_too():
    bar = _Bar()
    progress = ImportProgress(bar, 200)
    progress.feed("\r10%\r50%")
    assert bar.completed[-1] == 100


def test_an_incomplete_last_message_waits_for_the_next_import():
    whole = b"From a@x  Mon Jan  1 00:00:00 2024\nMessage-ID: <1@x>\n\nbody\n\n"
    part = b"From b@x  Mon Jan  1 00:01:00 2024\nMessage-ID: <2@x>\n\nhalf a li"
    data = whole + part
    assert whole_messages(data, scan_bytes(data), settled=False) == len(whole)
    assert whole_messages(data, scan_bytes(data), settled=True) == len(data)
    assert whole_messages(whole, scan_bytes(whole), settled=False) == len(whole)


def test_the_undo_of_an_import_deletes_what_it_added_and_the_lists_it_created():
    ids = {"a@x": ["<1@x>", "<2@x>", "<3@x>"], "b@x": ["<4@x>"]}
    op = ImportArchives("lists", ["mailman-web"], [
        {"list": "a", "fqdn": "a@x", "archive_policy": "private", "path": "/i/a", "messages": 3},
        {"list": "b", "fqdn": "b@x", "archive_policy": "public", "path": "/i/b", "messages": 1}],
        json.dumps(ids).encode())
    pre = {"content": json.dumps({"a@x": ["<1@x>", "<9@x>"], "b@x": None}).encode()}
    undo = op.inverse(pre)
    assert isinstance(undo, RemoveImportedMessages)
    assert json.loads(undo.message_ids) == {"a@x": ["<2@x>", "<3@x>"], "b@x": ["<4@x>"]}
    assert undo.forget == ["b@x"]
    assert "--since 1900-01-01T00:00:00+00:00 --ignore-mtime /i/a" in op.describe()
    assert "a@x as private" in op.describe()


def _import_run(state: StateDir, entries: dict[str, dict], status: str = "done") -> str:
    journal = state.new_journal()
    journal.append("run_start", run_id=journal.run_id, dry_run=False,
                   steps=[{"ref": ImportArchive.ref(), "id": ImportArchive.id, "params": {}}])
    lists = [{"list": name, "fqdn": f"{name}@x", "watermark": mark} for name, mark in entries.items()]
    journal.append("step_planned", step=0, ops=[{"type": "ImportArchives", "lists": lists}])
    journal.append("step_end", step=0, status=status)
    journal.append("run_end", status="done", exit_code=0)
    journal.close()
    time.sleep(1.1)  # run ids sort by second
    return journal.run_id


def test_watermarks_come_from_the_newest_completed_import_and_its_chain(tmp_path):
    state = StateDir(tmp_path)
    mark = {"offset": 100, "sha256": "a", "messages": 4, "mode": "prestage", "base_run": None}
    prestage = _import_run(state, {"l1": mark, "l2": mark})
    delta = _import_run(state, {"l1": {**mark, "offset": 150, "mode": "delta", "base_run": prestage}})
    _import_run(state, {"l2": {**mark, "offset": 999}}, status="rolled_back")
    found, problems = find_watermarks(state, ["l1", "l2", "l3"])
    assert (found["l1"].offset, found["l1"].run) == (150, delta)
    assert (found["l2"].offset, found["l2"].run) == (100, prestage)
    assert "l3" not in found and not problems

    # Rolling back the prestage pulls the rug from under the delta built on it.
    (state.runs / prestage / "journal.jsonl").open("a").write(
        json.dumps({"event": "step_end", "step": 0, "status": "rolled_back", "at": "x"}) + "\n")
    found, problems = find_watermarks(state, ["l1", "l2"])
    assert "l1" not in found and prestage in problems["l1"] and delta in problems["l1"]
    assert "l2" not in found and not problems.get("l2")


def test_archives_come_byte_for_byte_also_through_sudo():
    from migrate.archives.steps import read_archive_file
    from migrate.core.transport import Result

    data = b"From a@x  Mon Jan  1 00:00:00 2024\nSubject: caf\xe9 \xff\n\n\x80body\n"

    class Host:
        name, sudo = "legacy", True

    class Inventory:
        def one_with_role(self, role):
            return Host()

    class Reader:
        def read(self, host, argv):
            assert argv[:2] == ["sh", "-c"] and argv[-1] == "/a.mbox"
            found = argv[-1] == "/a.mbox"
            return Result(host, "", 0 if found else 3, base64.b64encode(data).decode() + "\n")

        def read_file(self, host, path):
            raise AssertionError("a sudo host's files are not read as command text")

    assert read_archive_file(Reader(), Inventory(), "/a.mbox") == data


def test_new_posts_are_appended_as_mailman_2_archives_them(tmp_path):
    from migrate.lab.mailman2_seed import generate_tree

    generate_tree(tmp_path, lists=3, members=2, seed=1)
    path = tmp_path / "archives" / "private" / "kultur-de.mbox" / "kultur-de.mbox"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"From a@x  Mon Jan  1 00:00:00 2024\nMessage-ID: <1@x>\n\nno newline at the end")
    ids = append_posts(tmp_path, "kultur-de", 3, seed=4, now=1_700_000_000)
    report = mbox.scan(path)
    assert report.messages == 4 and report.message_ids[1:] == ids
    assert not any(report.counts[k] for k in ("unescaped_from_line", "missing_message_id", "duplicate_message_id"))
    # Mailman 2 only completes the line of a message that lacks its final newline: no blank line.
    assert report.counts["separator_without_blank_line"] == 1
    assert path.read_bytes().startswith(b"From a@x  Mon Jan  1 00:00:00 2024\nMessage-ID: <1@x>\n\n"
                                        b"no newline at the end\nFrom ")
    assert append_posts(tmp_path, "kultur-de", 3, seed=4, now=1_700_000_000) == ids


class Lab:
    def __init__(self, web, names, facts, state: Path, inventory):
        self.web, self.names, self.facts, self.state, self.inventory = web, names, facts, state, inventory

    @property
    def archived(self) -> list[str]:
        return sorted(n for n, f in self.facts.items() if f.archived and f.message_count)

    @property
    def private(self) -> list[str]:
        return sorted(n for n in self.archived if self.facts[n].private)

    def address(self, name: str) -> str:
        return f"{name}@{self.facts[name].host_name}"

    def hyperkitty(self) -> dict[str, tuple[str, frozenset[str]] | None]:
        """What HyperKitty holds per archived list: (archive policy, Message-IDs), or None."""
        host = self.inventory.one_with_role("mailman3")
        with Connections(self.inventory) as connections:
            state = read_state(reader_runner(Executor(connections), host.name), host.name,
                               mailman_web_command(host), [self.address(n) for n in self.archived], ids=True)
        return {name: (found.archive_policy, found.ids) if (found := state.lists[self.address(name)]) else None
                for name in self.archived}

    def indexed(self, name: str) -> int:
        """Messages of a list in HyperKitty's search index, counted the way its search filters."""
        code = ("import sys\nfrom haystack.query import SearchQuerySet\n"
                "print('INDEXED', SearchQuerySet().filter(mailinglist__exact=sys.stdin.read()).count())")
        result = subprocess.run(self.web.manage_command("shell", "-c", code), input=self.address(name),
                                capture_output=True, text=True, check=True)
        return int(next(l for l in result.stdout.splitlines() if l.startswith("INDEXED")).split()[1])

    def invoke(self, *args: str, timeout: float = 600):
        result = invoke(self.state, *args, timeout=timeout)
        return result


@pytest.fixture(scope="module")
def lab(lab_hosts, lab_inventory, tmp_path_factory):
    Mailman3Core().up()
    web = HyperKittyWeb()
    web.up()
    names, facts = seed_with_facts(lists=LISTS, members=MEMBERS, messages=MESSAGES, seed=SEED)
    state = tmp_path_factory.mktemp("archives") / "state"
    migrated = invoke(state, "mailman.migrate", "--all", "--allow-pending", "--yes", timeout=600)
    assert migrated.returncode == 0, migrated.stdout[-3000:] + migrated.stderr[-3000:]
    yield Lab(web, names, facts, state, lab_inventory)
    # Leave a lab as `lab.seed` makes it: fresh Mailman 2 tree, empty Mailman 3 and HyperKitty.
    seed(lists=LISTS, members=MEMBERS, messages=MESSAGES, seed=SEED)


def legacy_files(name: str) -> dict[str, bytes]:
    folder = mailman2_var_dir() / "archives" / "private" / f"{name}.mbox"
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*"))}


@pytest.mark.lab
@pytest.mark.slow
def test_check_counts_every_hard_case_and_changes_nothing(lab):
    before = {n: legacy_files(n) for n in lab.archived}
    result = lab.invoke("archives.check", "--all", "--json")
    assert result.returncode == 0, result.stderr
    reports = json.loads(result.stdout)["lists"]
    assert sorted(reports) == lab.archived
    for name in lab.archived:
        facts, counts = lab.facts[name], reports[name]["counts"]
        assert reports[name]["messages"] == facts.message_count
        assert counts["missing_message_id"] == len(facts.with_flag("no_msgid"))
        assert counts["duplicate_message_id"] == sum(m.hyperkitty_duplicate_of is not None for m in facts.messages)
        assert counts["unescaped_from_line"] == len(facts.with_flag("from_in_body"))
        assert counts["decorated_message_id"] == len(facts.with_flag("decorated"))
        assert counts["unparseable_date"] == len(facts.with_flag("bad_date"))
    # The lab holds each hard case somewhere, so the loop above compared real findings.
    assert all(sum(r["counts"][k] for r in reports.values()) for k in
               ("missing_message_id", "duplicate_message_id", "unescaped_from_line", "decorated_message_id"))
    assert {n: legacy_files(n) for n in lab.archived} == before


@pytest.mark.lab
@pytest.mark.slow
def test_prepare_twice_writes_the_same_bytes_and_reports_assigned_ids(lab):
    first = lab.invoke("archives.prepare", "--all", "--yes", "--reason", "test")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr
    first_run = newest_run_id(lab.state)
    copies = {n: legacy_files(n)[f"{n}.mbox.prepared"] for n in lab.archived}
    second = lab.invoke("archives.prepare", "--all", "--yes", "--json")
    assert second.returncode == 0, second.stderr
    second_run = json.loads(second.stdout)["run_id"]
    assert {n: legacy_files(n)[f"{n}.mbox.prepared"] for n in lab.archived} == copies
    shown = json.loads(lab.invoke("runs.show", second_run, "--json").stdout)
    assert sum(len(s["ops"]) for s in shown["steps"]) == 0, "a second prepare must write nothing"

    no_id = lab.facts["cuisine-fr"].with_flag("no_msgid")
    reports = [json.loads((lab.state / "runs" / run / "reports" / "cuisine-fr.prepare.json").read_text())
               for run in (first_run, second_run)]
    assert reports[0]["assigned_ids"] == reports[1]["assigned_ids"]
    assert sorted(int(i) for i in reports[0]["assigned_ids"]) == [m.mbox_index for m in no_id]
    assert all(i.startswith("<migrate.") for i in reports[0]["assigned_ids"].values())
    moderation = json.loads((lab.state / "runs" / first_run / "reports" / "moderation-rules.prepare.json").read_text())
    assert moderation["counts"]["escaped_from_line"] >= 1


@pytest.mark.lab
@pytest.mark.slow
def test_dry_run_prints_the_import_commands_and_changes_nothing(lab):
    empty = lab.hyperkitty()
    assert all(v is None for v in empty.values()), "the lab's HyperKitty should start empty"
    result = lab.invoke("archives.import", "--all", "--prestage", "--dry-run")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert "hyperkitty_import" in result.stdout and "DRY RUN" in result.stdout
    log = (lab.state / "runs" / newest_run_id(lab.state) / "run.log").read_text()
    for name in lab.archived:
        assert f"hyperkitty_import -l {lab.address(name)} {SINCE}" in log
        assert f"update_index_one_list {lab.address(name)}" in log
    assert lab.hyperkitty() == empty
    import_dir = Path(lab.inventory.one_with_role("mailman3").var("hyperkitty_import_dir"))
    assert list(import_dir.iterdir()) == []


@pytest.mark.lab
@pytest.mark.slow
def test_prestage_never_shows_a_private_archive_and_verifies(lab):
    paths = [p for name in lab.private for p in (f"/hyperkitty/list/{lab.address(name)}/",
                                                 f"/hyperkitty/api/list/{lab.address(name)}/emails/")]
    seen: list[tuple[str, int | str]] = []
    stop = threading.Event()

    def visit():
        while not stop.is_set():
            for path in paths:
                try:
                    status, _, _ = lab.web.get(path, timeout=10)
                except OSError as exc:
                    status = f"error {exc}"
                seen.append((path, status))
            time.sleep(0.1)

    visitor = threading.Thread(target=visit, daemon=True)
    visitor.start()
    try:
        result = lab.invoke("archives.import", "--all", "--prestage", "--yes", "--reason", "test", "--json")
    finally:
        stop.set()
        visitor.join(timeout=30)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert len(seen) > 50, "the anonymous visitor must have watched the whole import"
    assert not [s for s in seen if s[1] == 200], "a private archive answered 200 to an anonymous visitor"
    # Once the list exists its page refuses anonymous visitors, while a public list shows.
    assert {status for path, status in seen if path.endswith(f"{lab.address('cuisine-fr')}/")} >= {403}
    assert lab.web.get(f"/hyperkitty/list/{lab.address('cuisine-fr')}/")[0] == 403
    assert lab.web.get(f"/hyperkitty/list/{lab.address('kultur-de')}/")[0] == 200

    imported = {r["list"]: r for r in json.loads(result.stdout)["lists"]}
    assert sorted(imported) == lab.archived
    held = lab.hyperkitty()
    for name in lab.archived:
        facts = lab.facts[name]
        distinct = facts.message_count - sum(m.hyperkitty_duplicate_of is not None for m in facts.messages)
        assert imported[name]["added"] == distinct == len(held[name][1])
        assert held[name][0] == ("private" if facts.private else "public")
    # The id prepare gave the message without one is the id HyperKitty now holds.
    report = json.loads(next((lab.state / "runs").glob("*/reports/cuisine-fr.prepare.json")).read_text())
    assert set(report["assigned_ids"].values()) <= held["cuisine-fr"][1]

    # HyperKitty's database (PostgreSQL) takes concurrent writers, so a step's lists import two at
    # a time (the default): inside one operation the lists' import times overlap.
    overlaps = []
    for journal in (lab.state / "runs").glob("*/journal.jsonl"):
        for line in journal.read_text().splitlines():
            event = json.loads(line)
            if event.get("event") == "op_end" and event.get("stdout", "").startswith('{"lists"'):
                summary = json.loads(event["stdout"])
                times = [entry["seconds"] for entry in summary["lists"].values()]
                if len(times) > 1:
                    overlaps.append(sum(times) / summary["seconds"])
    assert overlaps and max(overlaps) > 1.3, overlaps

    verified = lab.invoke("archives.verify", "--all", "--json")
    assert verified.returncode == 0, verified.stdout[-3000:]
    comparisons = {c["list"]: c for c in json.loads(verified.stdout)["lists"]}
    assert comparisons["cuisine-fr"]["duplicates"] and comparisons["cuisine-fr"]["ok"]
    assert all(c["unexplained"] == 0 and not c["missing"] and not c["extra"] for c in comparisons.values())


@pytest.mark.lab
@pytest.mark.slow
def test_prestage_again_adds_nothing(lab):
    before = lab.hyperkitty()
    again = lab.invoke("archives.import", "--all", "--prestage", "--yes", "--json")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert json.loads(again.stdout)["lists"] == [], "nothing should have been imported again"
    assert lab.hyperkitty() == before


@pytest.mark.lab
@pytest.mark.slow
def test_delta_imports_exactly_the_new_posts_and_its_rollback_exactly_removes_them(lab):
    before = lab.hyperkitty()
    new = {}
    for name, count in (("kultur-de", 4), ("cuisine-fr", 3)):
        posted = lab.invoke("lab.post", "--list", name, "--count", str(count), "--json")
        assert posted.returncode == 0, posted.stderr
        new[name] = set(json.loads(posted.stdout)["message_ids"])
        assert len(new[name]) == count

    dry = lab.invoke("archives.import", "--all", "--delta", "--dry-run")
    assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr
    assert lab.hyperkitty() == before

    searchable = lab.indexed("kultur-de")
    assert searchable == len(before["kultur-de"][1])
    delta = lab.invoke("archives.import", "--all", "--delta", "--yes", "--json")
    assert delta.returncode == 0, delta.stdout[-3000:] + delta.stderr[-3000:]
    data = json.loads(delta.stdout)
    assert {r["list"]: r["added"] for r in data["lists"]} == {"kultur-de": 4, "cuisine-fr": 3}
    assert lab.indexed("kultur-de") == searchable + 4
    after = lab.hyperkitty()
    for name in lab.archived:
        added = after[name][1] - before[name][1]
        assert added == new.get(name, set()), name
        assert after[name][1] >= before[name][1]
    verified = lab.invoke("archives.verify", "--all")
    assert verified.returncode == 0, verified.stdout[-3000:]

    rolled = lab.invoke("runs.rollback", data["run_id"], "--yes")
    assert rolled.returncode == 0, rolled.stdout[-3000:] + rolled.stderr
    assert lab.hyperkitty() == before
    assert lab.indexed("kultur-de") == searchable
    # The new posts are known to be pending again: verify says so, and fails.
    pending = lab.invoke("archives.verify", "--list", "kultur-de", "--json")
    assert pending.returncode == 10
    missing = json.loads(pending.stdout)["lists"][0]["missing"]
    assert {m["message_id"] for m in missing} == new["kultur-de"]
    assert all("archives.import --delta" in m["reason"] for m in missing)

    again = lab.invoke("archives.import", "--all", "--delta", "--yes", "--json")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert lab.invoke("archives.verify", "--all").returncode == 0


@pytest.mark.lab
@pytest.mark.slow
def test_a_changed_mbox_is_refused_and_rollback_of_the_imports_empties_hyperkitty(lab):
    mbox = mailman2_var_dir() / "archives" / "private" / "kultur-de.mbox" / "kultur-de.mbox"
    original = mbox.read_bytes()
    mbox.write_bytes(original.replace(b"Subject:", b"Subject: edited", 1))
    try:
        refused = lab.invoke("archives.import", "--list", "kultur-de", "--delta", "--yes")
    finally:
        mbox.write_bytes(original)
    assert refused.returncode == 1
    assert "changed" in refused.stdout and "--prestage" in refused.stdout

    imports = [r.run_id for r in StateDir(lab.state).list_runs()
               if not r.dry_run and r.status != "rolled_back" and any(s.id == "archives.import" for s in r.steps)]
    assert imports
    for run_id in reversed(imports):
        rolled = lab.invoke("runs.rollback", run_id, "--yes")
        assert rolled.returncode == 0, rolled.stdout[-3000:] + rolled.stderr
    assert all(v is None for v in lab.hyperkitty().values()), "rollback must remove the lists it created"
