"""The generated Mailman 2 tree: files in place, real Python 2 pickle shape, every case covered."""

from __future__ import annotations

import io
import pickle
import pickletools
import re
import subprocess
import sys
from pathlib import Path

import pytest

from migrate.lab import mailman2_seed as seed
from migrate.lab.mailman2_seed import SPECIAL_LISTS, Unicode, generate_tree, mailman2_modules, py2_pickle

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LISTS, MEMBERS, SEED = 14, 30, 7


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    var_dir = tmp_path_factory.mktemp("mm2") / "var"
    return var_dir, generate_tree(var_dir, lists=LISTS, members=MEMBERS, seed=SEED)


def load(var_dir: Path, name: str, file: str = "config.pck", encoding: str = "latin-1"):
    """A plain pickle.load, as a sysadmin would try it, with the stand-in module registered."""
    with mailman2_modules(), open(var_dir / "lists" / name / file, "rb") as f:
        return pickle.load(f, encoding=encoding)


@pytest.fixture(scope="module")
def configs(tree) -> dict[str, dict]:
    var_dir, names = tree
    return {name: load(var_dir, name) for name in names}


@pytest.fixture(scope="module")
def raw_configs(tree) -> dict[str, dict]:
    """The pickles loaded with encoding='bytes': Python 2 str stays bytes, unicode becomes str."""
    var_dir, names = tree
    return {name: load(var_dir, name, encoding="bytes") for name in names}


def all_members(configs: dict[str, dict]):
    for name, config in configs.items():
        for roster in ("members", "digest_members"):
            for key, value in config[roster].items():
                yield name, roster, key, value


# --- the tree on disk ---------------------------------------------------------------------------


def test_every_list_has_its_files(tree):
    var_dir, names = tree
    assert len(names) == LISTS
    assert names[: len(SPECIAL_LISTS)] == list(SPECIAL_LISTS)
    assert names[len(SPECIAL_LISTS) :] == ["team-01", "team-02"]
    for name in names:
        assert (var_dir / "lists" / name / "config.pck").stat().st_size > 0
        assert (var_dir / "lists" / name / "request.pck").stat().st_size > 0
    assert sorted(p.name for p in (var_dir / "lists").iterdir()) == sorted(names)


def test_special_lists_are_written_even_when_fewer_lists_are_asked_for(tmp_path):
    names = generate_tree(tmp_path, lists=3, members=2, seed=1)
    assert names == list(SPECIAL_LISTS)


def test_each_pickle_loads_with_plain_pickle_after_registering_stand_ins(tree, configs):
    var_dir, names = tree
    for name in names:
        assert isinstance(configs[name], dict)
        assert configs[name]["_internal_name"] == name
        requests = load(var_dir, name, "request.pck")
        assert requests["version"] == (0, 1)  # (IGN, REQUESTS_FILE_SCHEMA_VERSION)


def test_stand_in_modules_are_removed_afterwards():
    assert "Mailman.Bouncer" not in sys.modules
    with mailman2_modules() as bouncer:
        assert sys.modules["Mailman.Bouncer"] is bouncer
        assert bouncer._BounceInfo.__module__ == "Mailman.Bouncer"
    assert "Mailman" not in sys.modules and "Mailman.Bouncer" not in sys.modules


def test_without_stand_ins_the_bounce_info_class_cannot_be_found(tree):
    var_dir, _ = tree
    with pytest.raises((ModuleNotFoundError, AttributeError)):
        pickle.loads((var_dir / "lists" / "roster-cases" / "config.pck").read_bytes(), encoding="latin-1")


def test_pickles_have_python2_protocol1_shape(tree):
    var_dir, _ = tree
    data = (var_dir / "lists" / "roster-cases" / "config.pck").read_bytes()
    pickletools.dis(data, out=io.StringIO())  # raises on any malformed opcode stream
    opcodes = {op.name for op, _arg, _pos in pickletools.genops(data)}
    # MailList.Save() uses cPickle protocol 1: no PROTO header, Python 2 str as (SHORT_)BINSTRING,
    # unicode as BINUNICODE, old-style _BounceInfo instances via OBJ + BUILD.
    assert "PROTO" not in opcodes
    assert {"SHORT_BINSTRING", "BINUNICODE", "OBJ", "BUILD", "GLOBAL"} <= opcodes
    globals_ = {arg for op, arg, _pos in pickletools.genops(data) if op.name == "GLOBAL"}
    assert globals_ == {"Mailman.Bouncer _BounceInfo"}


def test_text_fields_are_python2_byte_strings_in_the_list_charset(raw_configs):
    expected = {
        "kultur-de": ("Kulturverein Müller café ñ: Grüße aus Köln", "iso-8859-1"),
        "cuisine-fr": ("Recettes: crème brûlée, pâté, façon grand-mère", "iso-8859-1"),
        "charla-es": ("Charla en español: año, niño, ¿qué tal? ¡olé!", "iso-8859-1"),
        "dyskusja-pl": ("Zażółć gęślą jaźń", "iso-8859-2"),
        "nihongo-ja": ("日本語のメーリングリスト", "euc-jp"),
        "novosti-ru": ("Новости и обсуждения", "koi8-r"),
        "tieng-viet": ("Diễn đàn tiếng Việt", "utf-8"),
        "debian-utf8-de": ("Größe, Übung, Straße – in UTF-8 gespeichert", "utf-8"),
    }
    for name, (text, charset) in expected.items():
        config = raw_configs[name]
        assert config[b"description"] == text.encode(charset), name
        assert isinstance(config[b"info"], bytes) and config[b"info"].decode(charset)
        assert SPECIAL_LISTS[name].charset == charset


def test_a_utf8_loader_mangles_latin1_text(tree):
    var_dir, _ = tree
    with mailman2_modules():
        config = pickle.loads(
            (var_dir / "lists" / "kultur-de" / "config.pck").read_bytes(), encoding="utf-8", errors="ignore"
        )
    # What a loader that assumes UTF-8 makes of a latin-1 list: the accented letters are gone.
    assert config["description"] == "Kulturverein Mller caf : Gre aus Kln"


def test_languages_cover_latin1_utf8_and_legacy_charsets(configs):
    languages = {config["preferred_language"] for config in configs.values()}
    assert {"de", "fr", "es", "pl", "ja", "ru", "vi", "en"} <= languages


# --- the cases every migration meets -------------------------------------------------------------


def test_regular_and_digest_members_plain_and_mime(configs):
    regular = digest_plain = digest_mime = 0
    for name, roster, key, _value in all_members(configs):
        bits = configs[name]["user_options"][key]
        if roster == "members":
            regular += 1
        elif bits & 8:
            digest_plain += 1
        else:
            digest_mime += 1
    assert regular and digest_plain and digest_mime


def test_nomail_members_for_each_reason(configs):
    statuses = {}
    for name, config in configs.items():
        for key, (status, when) in config["delivery_status"].items():
            assert key in config["members"] or key in config["digest_members"]
            assert isinstance(when, float)
            statuses.setdefault(status, key)
    assert set(statuses) == {1, 2, 3, 4}


def test_members_with_each_option_bit(configs):
    bits_seen = 0
    for config in configs.values():
        for bits in config["user_options"].values():
            bits_seen |= bits
    for bit in (2, 4, 8, 16, 32, 64, 128, 256):
        assert bits_seen & bit, bit


def test_case_preserved_addresses(configs):
    roster = configs["roster-cases"]["members"]
    assert roster["alice.example@example.org"] == "Alice.Example@Example.ORG"
    assert configs["roster-cases"]["digest_members"]["bob.camelcase@example.com"] == "Bob.CamelCase@Example.com"
    assert roster["regular.member@example.com"] == 0
    for _name, _roster, key, value in all_members(configs):
        assert key == key.lower()
        assert value == 0 or (value.lower() == key and value != key)


def test_bounce_info_holds_bounce_info_instances(configs):
    with mailman2_modules() as bouncer:
        infos = configs["roster-cases"]["bounce_info"]
        disabled = infos["nomail.bybounce@example.com"]
        assert type(disabled).__name__ == "_BounceInfo"
        assert (disabled.member, disabled.score, disabled.noticesleft) == ("nomail.bybounce@example.com", 5.0, 0)
        assert disabled.date == (2011, 3, 2) and disabled.cookie
        assert isinstance(infos["regular.member@example.com"], bouncer._BounceInfo)


def test_real_names_as_python2_str_and_unicode(raw_configs):
    names = raw_configs["roster-cases"][b"usernames"]
    assert names[b"lukasz@example.pl"] == "Łukasz Żółkiewski"  # a Python 2 unicode object
    assert names[b"jose@example.es"] == "José Müller"
    assert names[b"alice.example@example.org"] == b"Alice Example"  # a Python 2 str
    assert raw_configs["kultur-de"][b"usernames"][b"juergen.weiss@example.de"] == "Jürgen Weiß".encode("iso-8859-1")


def test_owners_and_moderators(configs):
    assert len(configs["roster-cases"]["owner"]) == 3
    assert "Second.Owner@Example.COM" in configs["roster-cases"]["owner"]
    assert len(configs["roster-cases"]["moderator"]) == 2
    assert all(config["owner"] for config in configs.values())


def test_nonmember_filters_as_addresses_and_regexps(configs):
    config = configs["moderation-rules"]
    for key in ("accept_these_nonmembers", "hold_these_nonmembers", "reject_these_nonmembers", "discard_these_nonmembers"):
        entries = config[key]
        assert any(e.startswith("^") for e in entries), key
        assert any("@" in e and not e.startswith(("^", "@")) for e in entries), key
    assert "@kultur-de" in config["accept_these_nonmembers"]


def test_bans_include_an_invalid_regexp(configs):
    bans = configs["moderation-rules"]["ban_list"]
    assert "banned@example.com" in bans
    assert "^[unclosed" in bans
    with pytest.raises(re.error):
        re.compile("^[unclosed")


def test_header_filter_rules_have_mailman21_shape_and_every_action(configs):
    rules = configs["moderation-rules"]["header_filter_rules"]
    for rule in rules:
        assert isinstance(rule, tuple) and len(rule) == 3
        patterns, action, empty = rule
        assert isinstance(patterns, str) and isinstance(action, int) and empty is False
    assert {action for _p, action, _e in rules} == {0, 1, 2, 3, 6, 7}
    assert any("\n" in patterns for patterns, _a, _e in rules)


def test_custom_header_footer_and_messages(configs):
    config = configs["kultur-de"]
    assert config["msg_header"] and config["welcome_msg"] and config["goodbye_msg"]
    assert config["msg_footer"] != configs["team-01"]["msg_footer"]


def test_public_and_private_archives_and_every_volume_frequency(configs):
    archived = [c for c in configs.values() if c["archive"]]
    assert {c["archive_private"] for c in archived} == {0, 1}
    assert {c["archive_volume_frequency"] for c in configs.values()} >= {0, 1, 2, 3, 4}
    assert configs["dyskusja-pl"]["archive_volume_frequency"] == 3


def test_emergency_moderated_list(configs):
    assert configs["emergency-stop"]["emergency"] is True
    assert [name for name, c in configs.items() if c["emergency"]] == ["emergency-stop"]


def test_requests_hold_posts_and_pending_subscriptions(tree):
    var_dir, _ = tree
    db = load(var_dir, "held-requests", "request.pck")
    types = sorted(record[0] for key, record in db.items() if key != "version")
    assert types == [1, 1, 1, 2, 2, 3]
    for key, record in db.items():
        if key != "version" and record[0] == 1:
            _when, _sender, _subject, _reason, filename, msgdata = record[1]
            assert (var_dir / "data" / filename).read_bytes().startswith(b"From ")
            assert msgdata["listname"] == "held-requests"
    assert load(var_dir, "held-requests")["next_request_id"] == 7


def test_members_per_list_follow_the_parameter(configs):
    for name, config in configs.items():
        count = len(config["members"]) + len(config["digest_members"])
        assert count == MEMBERS, name


def test_special_list_metadata_matches_the_data(configs):
    for name, spec in SPECIAL_LISTS.items():
        assert spec.covers
        assert configs[name]["preferred_language"] == spec.language


# --- determinism and the command line -----------------------------------------------------------


def snapshot(var_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(var_dir)): p.read_bytes() for p in sorted(var_dir.rglob("*")) if p.is_file()}


def test_same_seed_writes_identical_bytes(tmp_path):
    generate_tree(tmp_path / "a", lists=13, members=12, seed=5)
    generate_tree(tmp_path / "b", lists=13, members=12, seed=5)
    generate_tree(tmp_path / "c", lists=13, members=12, seed=6)
    a, b, c = snapshot(tmp_path / "a"), snapshot(tmp_path / "b"), snapshot(tmp_path / "c")
    assert a == b
    assert a.keys() == c.keys() and a != c


def test_command_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "migrate.lab.mailman2_seed", str(tmp_path / "var"), "--lists", "13", "--members", "5", "--seed", "2"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=True,
    )
    lines = result.stdout.splitlines()
    assert len(lines) == 13
    assert lines[0].startswith("kultur-de: ") and lines[-1] == "team-01: filler"
    assert (tmp_path / "var" / "lists" / "team-01" / "config.pck").exists()


# --- the Python 2 pickle writer -----------------------------------------------------------------


def test_writer_round_trips_every_supported_type_in_both_protocols():
    value = {
        "ints": [0, 255, 256, 65535, 65536, -1, 2**31 - 1, -(2**31), 2**40],
        "float": 2.5,
        "flags": (True, False, None),
        "tuples": ((), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4)),
        "bytes": b"\xe4\xf6\xfc",
        "long": b"x" * 300,
        "unicode": Unicode("Żółw"),
        "many": list(range(2500)),
        "dict": {f"k{i}": i for i in range(1200)},
    }
    expected = dict(value, bytes="\xe4\xf6\xfc", long="x" * 300)
    for protocol in (1, 2):
        assert pickle.loads(py2_pickle(value, protocol), encoding="latin-1") == expected


def test_writer_uses_python2_opcodes_for_booleans_and_memo():
    assert py2_pickle(True) == b"I01\n."
    assert py2_pickle(False, 2) == b"\x80\x02\x89."
    shared = [b"s"]
    data = py2_pickle([shared, shared] + [b"x%d" % i for i in range(300)])
    loaded = pickle.loads(data, encoding="bytes")
    assert loaded[0] is loaded[1]
    assert "LONG_BINPUT" in {op.name for op, _a, _p in pickletools.genops(data)}


def test_writer_refuses_what_python2_could_not_hold():
    with pytest.raises(UnicodeEncodeError):
        py2_pickle("Grüße")  # text must be encoded (bytes) or marked Unicode
    with pytest.raises(TypeError):
        py2_pickle({1, 2})
    with pytest.raises(ValueError):
        seed.Py2Pickler(protocol=3)
