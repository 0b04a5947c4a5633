"""Mailman 2 → Mailman 3 against the lab's real Mailman 3, driven through `invoke` as an operator
would: survey, dry run, migrate --all, verify, sync after roster changes, rollback."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from migrate.lab.mailman3 import Mailman3Core
from migrate.lab.seeding import mailman2_var_dir, seed
from migrate.mailman import convert, mm2
from migrate.mailman.py2pickle import dumps_py2

from ..helpers import invoke, inventory_variant, newest_run_id

pytestmark = [pytest.mark.lab, pytest.mark.slow]

LISTS, MEMBERS = 10, 30


def mm3_snapshot(core: Mailman3Core) -> dict:
    client = core.client()
    return {"domains": sorted(d.mail_host for d in client.domains),
            "lists": sorted(m.fqdn_listname for m in client.lists),
            "users": sorted(str(a.email).lower() for u in client.users for a in u.addresses)}


def config_path(name: str) -> Path:
    return mailman2_var_dir() / "lists" / name / "config.pck"


def edit_config(name: str, change) -> None:
    """Change a list on the Mailman 2 side the way Mailman 2 would have stored it."""
    path = config_path(name)
    config = mm2.load_config(path.read_bytes(), list_name=name)
    change(config)
    path.write_bytes(dumps_py2(config))


@pytest.fixture(scope="module")
def lab(lab_hosts):
    core = Mailman3Core()
    core.up()
    names = seed(lists=LISTS, members=MEMBERS, seed=7)
    return core, names


@pytest.fixture
def state(tmp_path):
    return tmp_path / "state"


def test_survey_reads_the_legacy_tree_without_changing_it(lab, state):
    core, names = lab
    before = {p: p.read_bytes() for p in (mailman2_var_dir() / "lists").rglob("*") if p.is_file()}
    result = invoke(state, "mailman.lists", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert sorted(rows) == sorted(names)
    assert rows["held-requests"]["held"] > 0 and rows["held-requests"]["pending"] > 0
    assert all(not r["on_mailman3"] for r in rows.values())
    assert all(r["members"] >= MEMBERS for r in rows.values())
    assert {p: p.read_bytes() for p in (mailman2_var_dir() / "lists").rglob("*") if p.is_file()} == before


def test_dry_run_shows_every_command_and_creates_nothing(lab, state):
    core, names = lab
    before = mm3_snapshot(core)
    result = invoke(state, "mailman.migrate", "--all", "--allow-pending", "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert mm3_snapshot(core) == before
    for name in names:
        assert "import21" in result.stdout and name in result.stdout
    log = (state / "runs" / newest_run_id(state) / "run.log").read_text()
    assert log.count("mailman import21") == len(names)


def test_migrate_all_verify_sync_and_rollback(lab, state, tmp_path):
    core, names = lab
    empty = mm3_snapshot(core)

    first = invoke(state, "mailman.migrate", "--all", "--yes", "--reason", "test", timeout=600)
    # The list with held posts and pending requests is refused; every other list goes through.
    assert first.returncode == 1, first.stdout + first.stderr
    assert "held-requests" in first.stdout and "--allow-pending" in first.stdout
    migrate_run = newest_run_id(state)
    reports = sorted(p.stem for p in (state / "runs" / migrate_run / "reports").glob("*.json"))
    assert set(reports) >= set(names) - {"held-requests"}
    report = json.loads((state / "runs" / migrate_run / "reports" / "kultur-de.json").read_text())
    assert any("password" in json.dumps(d).lower() for d in report["dropped"])

    second = invoke(state, "mailman.migrate", "--list", "held-requests", "--allow-pending", "--yes")
    assert second.returncode == 0, second.stdout + second.stderr
    verified = invoke(state, "mailman.verify", "--all", timeout=300)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    # Every character of a latin-1 list's texts arrives (character references that Mailman 2's
    # web forms stored, like &#8364;, arrive as the character they stand for).
    config = mm2.load_config(config_path("kultur-de").read_bytes(), list_name="kultur-de")
    summary = mm2.summarize_config(config, list_name="kultur-de")
    mlist = core.client().get_list(f"kultur-de@{summary.host_name}")
    assert mlist.settings["description"] == convert.rest_fixups(config, list_name="kultur-de")["description"]
    assert mlist.settings["info"] == convert.decode_char_refs(summary.info)
    for text in ("Müller", "café", "ñ"):
        assert text in mlist.settings["description"] + mlist.settings["info"]

    # Roster changes on the Mailman 2 side after the import, then sync reconciles them.
    target = "team-01" if "team-01" in names else names[-1]
    config = mm2.load_config(config_path(target).read_bytes(), list_name=target)
    regular = sorted(config["members"])
    leaving, to_digest, to_nomail, promoted = regular[:4]

    def change(cfg):
        cfg["members"]["newcomer@example.org"] = 0
        del cfg["members"][leaving]
        del cfg["members"][to_digest]
        cfg["digest_members"][to_digest] = 0
        cfg["delivery_status"][to_nomail] = (2, 1700000000.0)
        cfg["moderator"] = list(cfg["moderator"]) + [promoted]

    edit_config(target, change)
    assert invoke(state, "mailman.verify", "--list", target).returncode == 10
    synced = invoke(state, "mailman.sync", "--list", target, "--yes")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert invoke(state, "mailman.verify", "--list", target).returncode == 0
    again = invoke(state, "mailman.sync", "--all", "--yes", "--json")
    assert again.returncode == 0
    sync_run = json.loads(again.stdout)["run_id"]
    shown = json.loads(invoke(state, "runs.show", sync_run, "--json").stdout)
    assert sum(len(s["ops"]) for s in shown["steps"]) == 0, "a second sync must change nothing"

    # Rolling back the first migrate run removes its lists, domains and users and nothing else.
    runs = json.loads(invoke(state, "runs.list", "--json").stdout)
    for run in reversed([r for r in runs if not r["dry_run"]]):
        rolled = invoke(state, "runs.rollback", run["run_id"], "--yes", timeout=600)
        assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert mm3_snapshot(core) == empty


def test_bad_input_names_the_list_creates_nothing_and_the_rest_completes(lab, state, tmp_path):
    core, names = lab
    base = mailman2_var_dir() / "lists"
    good = config_path(names[-1]).read_bytes()
    broken = {"broken-truncated": good[: len(good) // 2], "broken-notadict": pickle.dumps([1, 2, 3], protocol=2)}
    for name, data in broken.items():
        (base / name).mkdir(exist_ok=True)
        (base / name / "config.pck").write_bytes(data)
    (base / "Bad Name").mkdir(exist_ok=True)
    try:
        before = mm3_snapshot(core)
        result = invoke(state, "mailman.migrate", "--all", "--exclude", "held-requests",
                        "--order", "size", "--yes", timeout=600)
        text = result.stdout + result.stderr
        assert result.returncode == 1, text
        for name in (*broken, "Bad Name"):
            assert name in text
        after = mm3_snapshot(core)
        assert not [l for l in after["lists"] if l.startswith(("broken", "bad"))]
        assert len(after["lists"]) == len(before["lists"]) + len(names) - 1

        missing = invoke(state, "mailman.migrate", "--list", "no-such-list", "--yes")
        assert missing.returncode == 1 and "no-such-list" in missing.stdout + missing.stderr

        unreachable = inventory_variant(tmp_path, host_vars={"lists-01": {"mailman3_rest_url": "http://127.0.0.12:8099/3.1"}})
        down = invoke(state, "mailman.migrate", "--list", names[0], "-i", str(unreachable), "--yes")
        assert down.returncode == 1 and "not reachable" in down.stdout + down.stderr and names[0] in down.stdout
        assert mm3_snapshot(core) == after
    finally:
        for name in (*broken, "Bad Name"):
            for f in (base / name).glob("*"):
                f.unlink()
            (base / name).rmdir()
        runs = json.loads(invoke(state, "runs.list", "--json").stdout)
        for run in reversed([r for r in runs if not r["dry_run"]]):
            invoke(state, "runs.rollback", run["run_id"], "--yes", timeout=600)
