"""The Mailman 2 reader on generated trees and on broken or hostile input."""

from __future__ import annotations

import json
import os
import pickle
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import NonRoundTrippableCharactersWarning

from migrate.core.errors import MigrateError
from migrate.lab import mailman2_seed
from migrate.lab.mailman2_protocol0 import generate_protocol0_lists
from migrate.lab.mailman2_seed import generate_tree, mailman2_modules, py2_pickle
from migrate.mailman import convert, mm2
from migrate.mailman.mm2 import (
    BounceInfo,
    Mailman2DataError,
    Mailman2Object,
    Py2Unicode,
    decode_text,
    load_config,
    load_requests,
    read_list,
    summarize_config,
)
from migrate.mailman.py2pickle import dumps_py2

from ..helpers.bounded import run_bounded


@pytest.fixture(scope="module")
def var_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    var_dir = tmp_path_factory.mktemp("mm2") / "var"
    generate_tree(var_dir, lists=13, members=25, seed=11)
    return var_dir


def config_bytes(var_dir: Path, name: str) -> bytes:
    return (var_dir / "lists" / name / "config.pck").read_bytes()


def summary(var_dir: Path, name: str, **kwargs) -> mm2.ListSummary:
    return read_list(config_bytes(var_dir, name), list_name=name, **kwargs)


# --- text and charsets ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "charset", "description", "info_fragment"),
    [
        ("kultur-de", "iso-8859-1", "Kulturverein Müller café ñ: Grüße aus Köln", "Straßenfest, Größe"),
        ("cuisine-fr", "iso-8859-1", "Recettes: crème brûlée, pâté, façon grand-mère", "Échanges de recettes, déjà"),
        ("charla-es", "iso-8859-1", "Charla en español: año, niño, ¿qué tal? ¡olé!", "pingüino"),
        ("dyskusja-pl", "iso-8859-2", "Zażółć gęślą jaźń", "Łódź, Gdańsk"),
        ("nihongo-ja", "euc-jp", "日本語のメーリングリスト", "質問はお気軽に"),
        ("tieng-viet", "utf-8", "Diễn đàn tiếng Việt", "tiếng Việt có dấu"),
    ],
)
def test_description_and_info_keep_every_character(var_dir, name, charset, description, info_fragment):
    s = summary(var_dir, name)
    assert s.charset == charset
    assert s.description == description
    assert info_fragment in s.info
    assert s.problems == ()


def test_latin1_fields_beyond_description(var_dir):
    s = summary(var_dir, "kultur-de")
    assert "Jürgen Weiß" in s.msg_footer
    assert s.msg_header.startswith("Kulturverein Köln")
    assert "Höflichkeit" in s.welcome_msg and s.goodbye_msg
    assert "25 &#8364;" in s.info  # Mailman 2's entity for a character outside latin-1 is kept verbatim
    assert s.subscriber("juergen.weiss@example.de").real_name == "Jürgen Weiß"


def test_koi8r_russian_from_an_early_21_release_survives(var_dir):
    s = summary(var_dir, "novosti-ru")
    assert s.description == "Новости и обсуждения"
    assert "ёлки-палки" in s.info
    # 2.1.39 declares Russian as UTF-8, so the koi8-r fallback is reported, not silent.
    assert {(p.where, p.kind) for p in s.problems} == {("description", "converted"), ("info", "converted")}
    assert all("koi8-r" in p.detail for p in s.problems)
    explicit = summary(var_dir, "novosti-ru", charset="koi8-r")
    assert explicit.description == "Новости и обсуждения" and explicit.problems == ()


def test_utf8_bytes_in_a_latin1_list_are_detected_and_reported(var_dir):
    s = summary(var_dir, "debian-utf8-de")
    assert s.charset == "iso-8859-1"
    assert s.description == "Größe, Übung, Straße – in UTF-8 gespeichert"
    assert "Euro: €" in s.info
    assert [p.where for p in s.problems] == ["description", "info"]
    assert all("UTF-8" in p.detail for p in s.problems)


def test_undecodable_bytes_are_reported_as_lossy():
    config = {"preferred_language": "en", "description": b"caf\xe9 \xff".decode("latin-1")}
    s = summarize_config(config, list_name="odd", charset="utf-8")
    assert s.description == "café ÿ"
    lossy = [p for p in s.problems if p.kind == "lossy"]
    assert [p.where for p in lossy] == ["description"]


def test_unknown_language_is_reported(var_dir):
    config = load_config(config_bytes(var_dir, "team-01"), list_name="team-01")
    config["preferred_language"] = "tlh"
    s = summarize_config(config, list_name="team-01")
    assert s.charset == "utf-8"
    assert ("preferred_language", "converted") in {(p.where, p.kind) for p in s.problems}


def test_decode_text():
    raw = "Müller".encode("iso-8859-2").decode("latin-1")
    assert decode_text(raw, "iso-8859-2") == "Müller"
    assert decode_text("Новости".encode("koi8-r").decode("latin-1"), "koi8-r") == "Новости"
    assert decode_text(Py2Unicode("José Müller"), "utf-8") == "José Müller"
    assert decode_text("Łukasz", "us-ascii") == "Łukasz"  # beyond U+00FF: already text
    with pytest.raises(UnicodeDecodeError):
        decode_text("\xff\xfe", "utf-8")


CHARSETS = sorted(set(mm2.LANGUAGE_CHARSETS.values()) | set(mm2.EARLIER_CHARSETS.values()))


def round_trippable(charset: str) -> st.SearchStrategy[str]:
    # Some codecs map two characters to one byte sequence (euc-jp's ¥ and \); text holding them
    # cannot come back from any bytes, so those characters are outside the property.
    return st.characters(codec=charset).filter(lambda c: c.encode(charset).decode(charset) == c)


with warnings.catch_warnings():
    warnings.simplefilter("ignore", NonRoundTrippableCharactersWarning)
    TEXT_IN_CHARSET = st.sampled_from(CHARSETS).flatmap(
        lambda charset: st.tuples(st.just(charset), st.text(round_trippable(charset)))
    )


@pytest.mark.filterwarnings("ignore", category=NonRoundTrippableCharactersWarning)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(TEXT_IN_CHARSET)
def test_decode_text_round_trips_any_text_the_charset_can_hold(case):
    charset, text = case
    stored = text.encode(charset)
    assert decode_text(stored.decode("latin-1"), charset) == text


@given(st.binary(max_size=60), st.sampled_from(["en", "de", "ru", "ja", "pl", "vi", "xx"]))
def test_field_decoding_never_fails(raw, language):
    config = {"preferred_language": language, "description": raw.decode("latin-1")}
    s = summarize_config(config, list_name="fuzz")
    assert isinstance(s.description, str)
    if raw.isascii():
        assert s.description == raw.decode("ascii")


# --- members --------------------------------------------------------------------------------------


def test_case_preserved_addresses(var_dir):
    s = summary(var_dir, "roster-cases")
    assert "Alice.Example@Example.ORG" in s.members
    assert "alice.example@example.org" not in s.members
    assert "Bob.CamelCase@Example.com" in s.digest_members
    assert s.subscriber("ALICE.EXAMPLE@example.org").address == "Alice.Example@Example.ORG"
    assert "Second.Owner@Example.COM" in s.owners
    assert s.moderators == ("moderator@example.org", "Other.Moderator@Example.NET")


def test_nomail_reasons(var_dir):
    s = summary(var_dir, "roster-cases")
    assert s.nomail == {
        "nomail.unknown@example.com": "unknown",
        "nomail.byuser@example.com": "by_user",
        "nomail.byadmin@example.com": "by_admin",
        "nomail.bybounce@example.com": "by_bounce",
    }
    bouncing = s.subscriber("nomail.bybounce@example.com")
    assert bouncing.disabled_at is not None and bouncing.bounce_score == 5.0
    assert s.subscriber("regular.member@example.com").delivery == "enabled"


@pytest.mark.parametrize(
    ("address", "options"),
    [
        ("opt.notmetoo@example.com", {"not_metoo"}),
        ("opt.ack@example.com", {"acknowledge"}),
        ("opt.conceal@example.com", {"conceal"}),
        ("opt.noreminder@example.com", {"suppress_password_reminder"}),
        ("opt.nmtopics@example.com", {"receive_nonmatching_topics"}),
        ("opt.moderated@example.com", {"moderated"}),
        ("opt.nodupes@example.com", {"no_dupes"}),
        ("digest.plain@example.com", {"digest_plain"}),
        ("opt.all@example.com", {"not_metoo", "acknowledge", "digest_plain", "conceal", "moderated", "no_dupes"}),
        ("regular.member@example.com", set()),
    ],
)
def test_option_bits_are_decoded(var_dir, address, options):
    assert summary(var_dir, "roster-cases").subscriber(address).options == options


def test_digest_formats(var_dir):
    s = summary(var_dir, "roster-cases")
    assert s.subscriber("digest.plain@example.com").digest_format == "plain"
    assert s.subscriber("digest.mime@example.com").digest_format == "mime"
    assert s.subscriber("regular.member@example.com").digest_format is None
    assert set(s.members).isdisjoint(s.digest_members)
    assert len(s.members) + len(s.digest_members) == 25


def test_real_names_from_python2_unicode_are_not_decoded_twice(var_dir):
    s = summary(var_dir, "roster-cases")
    assert s.subscriber("jose@example.es").real_name == "José Müller"
    assert s.subscriber("lukasz@example.pl").real_name == "Łukasz Żółkiewski"
    assert s.subscriber("lukasz@example.pl").language == "pl"
    assert s.problems == ()


def test_inconsistent_rosters_are_reported():
    config = {
        "preferred_language": "en",
        "members": {"a@example.com": 0, "b@example.com": "B@Example.com"},
        "digest_members": {"a@example.com": 0},
        "user_options": {"b@example.com": 8 | 1024},
        "delivery_status": {"ghost@example.com": (2, 1.0), "b@example.com": (9, 2.0)},
    }
    s = summarize_config(config, list_name="odd")
    assert s.digest_members == ("a@example.com",) and s.members == ("B@Example.com",)
    kinds = {(p.where, p.kind) for p in s.problems}
    assert ("members[a@example.com]", "inconsistent") in kinds
    assert ("members[b@example.com]", "dropped") in kinds  # unknown bit 1024
    assert ("members[b@example.com]", "inconsistent") in kinds  # plain-digest bit on a regular member
    assert ("members[b@example.com]", "invalid") in kinds  # delivery status 9
    assert ("delivery_status[ghost@example.com]", "dropped") in kinds
    assert ("real_name", "missing") in kinds


# --- moderation, archive, emergency ----------------------------------------------------------------


def test_nonmember_addresses_regexps_and_list_references(var_dir):
    s = summary(var_dir, "moderation-rules")
    assert set(s.nonmembers) == {"accept", "hold", "reject", "discard"}
    kinds = {action: {p.kind for p in patterns} for action, patterns in s.nonmembers.items()}
    assert kinds["accept"] == {"address", "regexp", "list"}
    for action in ("hold", "reject", "discard"):
        assert kinds[action] == {"address", "regexp"}
    assert mm2.AddressPattern("^troll[0-9]+@.*", "regexp") in s.nonmembers["reject"]
    assert mm2.AddressPattern("spam@spam.example", "address") in s.nonmembers["discard"]


def test_bans_with_an_invalid_regexp(var_dir):
    s = summary(var_dir, "moderation-rules")
    assert s.bans == (
        mm2.AddressPattern("banned@example.com", "address"),
        mm2.AddressPattern("^.*@banned\\.example$", "regexp"),
        mm2.AddressPattern("^[unclosed", "regexp", valid=False),
    )
    assert [(p.where, p.kind) for p in s.problems] == [("ban_list[2]", "invalid")]


def test_header_filters_and_moderation_settings(var_dir):
    s = summary(var_dir, "moderation-rules")
    assert [f.action for f in s.header_filters] == ["hold", "discard", "reject", "accept", "approve", "defer"]
    assert s.header_filters[1].patterns == ("^Subject:.*viagra", "^X-Spam-Score: \\*{5,}")
    assert s.default_member_moderation is True
    assert s.member_moderation_action == "reject"
    assert s.generic_nonmember_action == "reject"
    assert s.subscriber("moderated.member@example.com").options == {"moderated"}


@pytest.mark.parametrize(
    ("name", "private", "period"),
    [
        ("cuisine-fr", True, "yearly"),
        ("kultur-de", False, "monthly"),
        ("charla-es", False, "quarterly"),
        ("dyskusja-pl", True, "weekly"),
        ("nihongo-ja", False, "daily"),
    ],
)
def test_archive_settings(var_dir, name, private, period):
    s = summary(var_dir, name)
    assert s.archive is True
    assert s.archive_private is private
    assert s.archive_volume_period == period


def test_emergency_list(var_dir):
    s = summary(var_dir, "emergency-stop")
    assert s.emergency is True and s.archive is False
    assert summary(var_dir, "team-01").emergency is False


def test_bounce_info_becomes_an_inert_stand_in(var_dir):
    config = load_config(config_bytes(var_dir, "roster-cases"), list_name="roster-cases")
    info = config["bounce_info"]["nomail.bybounce@example.com"]
    assert isinstance(info, BounceInfo)
    assert (info.member, info.score, info.date, info.noticesleft) == ("nomail.bybounce@example.com", 5.0, (2011, 3, 2), 0)
    assert isinstance(config["usernames"]["jose@example.es"], Py2Unicode)
    assert type(config["description"]) is str


def test_unknown_mailman_classes_load_as_generic_stand_ins():
    class Topic:
        __module__ = "Mailman.Gui.Topics"
        py2_old_style = True

    topic = Topic()
    topic.name = b"news"
    obj = load_config(py2_pickle({"real_name": b"x", "topic": topic}), list_name="x")["topic"]
    assert isinstance(obj, Mailman2Object) and not isinstance(obj, BounceInfo)
    assert obj.legacy_class == "Mailman.Gui.Topics.Topic"
    assert obj.name == "news"


# --- requests ---------------------------------------------------------------------------------------


def test_requests_summary(var_dir):
    data = (var_dir / "lists" / "held-requests" / "request.pck").read_bytes()
    requests = load_requests(data, list_name="held-requests")
    assert requests.version == 1
    assert (len(requests.held_messages), len(requests.subscriptions), len(requests.unsubscriptions)) == (3, 2, 1)
    assert requests.pending == 6
    assert [m.sender for m in requests.held_messages] == ["stranger@example.net", "leaver@example.com", "someone@example.org"]
    assert requests.held_messages[0].reason == "Post by non-member to a members-only list"
    assert requests.held_messages[1].filename == "heldmsg-held-requests-2.txt"
    assert (var_dir / "data" / requests.held_messages[1].filename).exists()
    fan = requests.subscriptions[1]
    assert (fan.address, fan.real_name, fan.digest, fan.language) == ("Digest.Fan@Example.com", "Zoë Digest", True, "de")
    assert not hasattr(fan, "password")
    assert requests.unsubscriptions[0].address == "leaver@example.com"
    assert requests.problems == ()


def test_an_empty_request_db_has_nothing_pending(var_dir):
    requests = load_requests((var_dir / "lists" / "team-01" / "request.pck").read_bytes(), list_name="team-01")
    assert requests.version == 1 and requests.pending == 0


def test_older_request_records_are_read_and_untyped_ones_inferred():
    db = {
        "version": (0, 1),
        1: (1, (10.0, b"a@example.com", b"Hi", b"Too big", b"heldmsg-x-1.txt")),  # pre-msgdata layout
        2: (2, (11.0, b"b@example.com", b"pw", 1, b"fr")),  # 2.1a2: no fullname
        3: (2, (12.0, b"c@example.com", b"pw", 0)),  # 2.0: no language either
        4: (13.0, b"d@example.com", b"D", b"pw", 0, b"en"),  # stored without its type
        5: (9, b"?"),
    }
    requests = load_requests(py2_pickle(db), list_name="x", language="de")
    assert [m.subject for m in requests.held_messages] == ["Hi"]
    assert [(s.address, s.language) for s in requests.subscriptions] == [
        ("b@example.com", "fr"),
        ("c@example.com", "de"),
        ("d@example.com", "en"),
    ]
    assert {(p.where, p.kind) for p in requests.problems} == {("request 4", "converted"), ("request 5", "dropped")}


# --- protocol 0 pickles (Python 2's default) with 8-bit str -------------------------------------------

# (language, charset, description, info, member real name): the text as the list owner typed it.
PROTOCOL0_LISTS = {
    "ellinika": ("el", "iso-8859-7", "Ελληνική λίστα συζητήσεων",
                 "Καλώς ήρθατε! Γράφετε στα ελληνικά.\nΆρθρα, σχόλια, ερωτήσεις.\n", "Γιώργος Παπαδόπουλος"),
    "kultur": ("de", "iso-8859-1", "Grüße aus Köln", "Änderungen der Öffnungszeiten, Straßenfest.\n",
               "Jürgen Weiß"),
    "novosti": ("ru", "koi8-r", "Новости и обсуждения", "Пишите по-русски, ёлки-палки!\n", "Пётр Ильич"),
    "dyskusja": ("pl", "iso-8859-2", "Zażółć gęślą jaźń", "Łódź, Gdańsk, Kraków.\n", "Łukasz Żółkiewski"),
    "nihongo": ("ja", "euc-jp", "日本語のメーリングリスト", "質問はお気軽にどうぞ。\n", "山田太郎"),
}


def protocol0_config(language: str, charset: str, description: str, info: str, real_name: str) -> bytes:
    """A config.pck as Python 2's pickle.dump(dict, fp) wrote it, texts in the list charset."""
    member = "member@example.org"
    config = {
        "real_name": b"Liste", "host_name": b"lists.example.org", "preferred_language": language.encode(),
        "description": description.encode(charset), "info": info.encode(charset),
        "members": {member.encode(): 0}, "digest_members": {}, "owner": [b"owner@example.org"],
        "usernames": {member.encode(): real_name.encode(charset)},
        "delivery_status": {member.encode(): (2, 1262304000.5)}, "user_options": {member.encode(): 0},
    }
    return dumps_py2(config, protocol=0)


@pytest.mark.parametrize("name", sorted(PROTOCOL0_LISTS))
def test_protocol0_config_with_8bit_text_reads_every_character(name):
    language, charset, description, info, real_name = PROTOCOL0_LISTS[name]
    data = protocol0_config(language, charset, description, info, real_name)
    assert data[:1] != b"\x80" and b"S'\\x" in data  # protocol 0, 8-bit bytes as escapes

    s = read_list(data, list_name=name, charset=charset)

    assert (s.description, s.info, s.charset) == (description, info, charset)
    assert s.subscriber("member@example.org").real_name == real_name
    assert s.subscriber("member@example.org").delivery == "by_user"
    assert s.problems == ()


def test_protocol0_greek_list_is_read_in_its_languages_charset():
    language, charset, description, info, real_name = PROTOCOL0_LISTS["ellinika"]

    s = read_list(protocol0_config(language, charset, description, info, real_name), list_name="ellinika")

    assert s.charset == "iso-8859-7" and s.description == description and s.info == info


def test_protocol0_shift_jis_with_backslash_and_quote_bytes():
    # Shift_JIS second bytes include 0x5c (表 is 0x95 0x5c) and 0x27: escaped in the repr().
    text = "表示ソフト'能'\\"
    data = protocol0_config("ja", "shift_jis", text, text + "\n", "表")

    s = read_list(data, list_name="sjis", charset="shift_jis")

    assert (s.description, s.info, s.subscriber("member@example.org").real_name) == (text, text + "\n", "表")


def test_protocol0_request_pck_with_8bit_subjects():
    subject = "Ερώτηση για τη συνάντηση".encode("iso-8859-7")
    db = {"version": (0, 1), 1: (1, (10.0, b"a@example.com", subject, b"Too big", b"heldmsg-x-1.txt", {}))}

    requests = load_requests(dumps_py2(db, protocol=0), list_name="ellinika", charset="iso-8859-7")

    assert [m.subject for m in requests.held_messages] == ["Ερώτηση για τη συνάντηση"]
    assert requests.version == 1 and requests.problems == ()


# --- broken and hostile input ---------------------------------------------------------------------


def assert_refused(excinfo: pytest.ExceptionInfo, list_name: str) -> None:
    assert isinstance(excinfo.value, MigrateError)
    assert excinfo.value.list_name == list_name
    assert f"Mailman 2 list {list_name}:" in str(excinfo.value)


def test_truncated_pickle(var_dir):
    data = config_bytes(var_dir, "kultur-de")
    with pytest.raises(Mailman2DataError) as excinfo:
        load_config(data[: len(data) // 2], list_name="kultur-de")
    assert_refused(excinfo, "kultur-de")
    assert "truncated" in excinfo.value.problem


def test_pickle_that_is_not_a_dict():
    with pytest.raises(Mailman2DataError) as excinfo:
        load_config(py2_pickle([b"members"]), list_name="listy")
    assert_refused(excinfo, "listy")
    assert "list" in excinfo.value.problem
    with pytest.raises(Mailman2DataError):
        load_requests(py2_pickle(b"nope"), list_name="listy")


@pytest.mark.parametrize(
    "data", [b"", b"this is not a pickle at all", bytes(range(256)), b"\x80\x05garbage", b"}q\x00(U\x04abc"]
)
def test_garbage(data):
    with pytest.raises(Mailman2DataError) as excinfo:
        load_config(data, list_name="junk")
    assert_refused(excinfo, "junk")


def test_trailing_bytes(var_dir):
    with pytest.raises(Mailman2DataError) as excinfo:
        load_config(config_bytes(var_dir, "team-01") + b"\n", list_name="team-01")
    assert "after the end" in excinfo.value.problem


def test_pickle_calling_os_system_is_refused_not_executed(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(os, "system", lambda command: calls.append(command) or 0)
    marker = tmp_path / "pwned"
    payload = b"cos\nsystem\n(U" + bytes([len(f"touch {marker}")]) + f"touch {marker}".encode() + b"tR."
    with pytest.raises(Mailman2DataError) as excinfo:
        load_config(payload, list_name="evil")
    assert_refused(excinfo, "evil")
    assert "os.system" in excinfo.value.problem
    assert calls == [] and not marker.exists()
    # The same payload through plain pickle would have run it: proof the test payload is live.
    pickle.loads(payload)
    assert calls == [f"touch {marker}"]


@pytest.mark.parametrize(
    "payload",
    [
        b"c__builtin__\neval\n(U\x041+1tR.",
        b"cposix\nsystem\n(U\x04truetR.",
        pickle.dumps(os.system, protocol=4),
    ],
)
def test_other_globals_are_refused(payload):
    with pytest.raises(Mailman2DataError) as excinfo:
        load_config(payload, list_name="evil")
    assert "refusing" in excinfo.value.problem


def test_requests_errors_name_the_list():
    with pytest.raises(Mailman2DataError) as excinfo:
        load_requests(b"\x00\x01", list_name="held")
    assert_refused(excinfo, "held")
    assert "request.pck" in excinfo.value.problem


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_load_or_raise_mailman2_data_error(data):
    try:
        config = load_config(data, list_name="fuzz")
    except Mailman2DataError:
        return
    assert isinstance(config, dict)


@settings(max_examples=200)
@given(st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)), min_size=1, max_size=4))
def test_damaged_real_pickles_load_or_raise_mailman2_data_error(var_dir, damage):
    data = bytearray(config_bytes(var_dir, "moderation-rules"))
    for position, value in damage:
        data[position % len(data)] = value
    try:
        config = load_config(bytes(data), list_name="damaged")
    except Mailman2DataError:
        return
    summarize_config(config, list_name="damaged")


@settings(max_examples=300)
@given(st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)), min_size=1, max_size=4))
def test_damaged_protocol0_pickles_load_or_raise_mailman2_data_error(damage):
    data = bytearray(protocol0_config(*PROTOCOL0_LISTS["ellinika"]))
    for position, value in damage:
        data[position % len(data)] = value
    try:
        config = load_config(bytes(data), list_name="damaged")
    except Mailman2DataError:
        return
    summarize_config(config, list_name="damaged")


# --- inputs that used to hang or crash a run: shared values, cycles, nesting ---------------------


def dag(levels: int) -> tuple:
    """A value of `levels` tuples, each holding the one below twice: small as a pickle (the memo
    refers to each tuple once), 2**levels leaves when walked as a tree."""
    value: tuple = ("leaf",)
    for _ in range(levels):
        value = (value, value)
    return value


def hostile_config(**values) -> bytes:
    member = "a@example.org"
    config = {"real_name": "Hostile", "preferred_language": "en", "host_name": "lists.example.org",
              "members": {member: 0}, "digest_members": {}, "owner": ["owner@example.org"],
              "user_options": {member: 0}, "passwords": {member: "secret"}}
    config.update(values)
    return dumps_py2(config)


def read_summarize_convert(data: bytes, list_name: str) -> None:
    """Everything a migration does with a config.pck before it talks to Mailman 3."""
    config = load_config(data, list_name=list_name)
    summarize_config(config, list_name=list_name)
    convert.clean_config_for_import(config, list_name=list_name)
    json.dumps(convert.conversion_report(config, list_name=list_name).to_dict(), default=str)
    convert.expected_state(config, fqdn_listname=f"{list_name}@lists.example.org")


def read_requests(data: bytes, list_name: str) -> None:
    load_requests(data, list_name=list_name)


def refused_quickly(function, *args) -> str:
    """The message of the Mailman2DataError function(*args) raises, within seconds."""
    outcome = run_bounded(function, *args, seconds=20)
    assert outcome.raised == "Mailman2DataError", outcome
    return outcome.message


def test_a_dag_of_40_levels_in_delivery_status_is_refused_quickly():
    data = hostile_config(delivery_status={"a@example.org": dag(40)})
    assert len(data) < 700

    message = refused_quickly(read_summarize_convert, data, "dag")

    assert message.startswith("Mailman 2 list dag: config.pck")
    assert "['delivery_status']['a@example.org']" in message and "--exclude dag" in message


def test_a_dag_in_the_version_of_request_pck_is_refused_quickly():
    data = dumps_py2({"version": (0, dag(40)), 1: (3, "leaver@example.org")})

    message = refused_quickly(read_requests, data, "dag")

    assert message.startswith("Mailman 2 list dag: request.pck") and "['version']" in message


def test_a_dag_inside_a_mailman2_object_is_refused_quickly():
    bounce = mailman2_seed._BounceInfo("a@example.org", 1.0, dag(40), 3)
    data = py2_pickle({"real_name": b"x", "bounce_info": {b"a@example.org": bounce}}, 2)

    message = refused_quickly(read_summarize_convert, data, "dag")

    assert message.startswith("Mailman 2 list dag: config.pck") and "['bounce_info']" in message


@pytest.mark.parametrize("where", ["owner", "ban_list", "topics"])
def test_a_list_that_contains_itself_is_refused(where):
    itself: list = ["x@example.org"]
    itself.append(itself)

    message = refused_quickly(read_summarize_convert, hostile_config(**{where: itself}), "loop")

    assert message.startswith("Mailman 2 list loop: config.pck")
    assert f"['{where}']" in message and "contains itself" in message


def test_a_dict_that_contains_itself_is_refused():
    itself: dict = {}
    itself["again"] = itself

    message = refused_quickly(read_summarize_convert, hostile_config(usernames=itself), "loop")

    assert "['usernames']['again']" in message and "contains itself" in message


def test_a_cycle_through_a_tuple_is_refused():
    # EMPTY_LIST BINPUT 2, BINGET 2, TUPLE1, APPEND: owner = L where L == [(L,)]; Python 3's
    # pickle cannot write this, Python 2's could.
    data = b"\x80\x02}q\x00U\x05ownerq\x01]q\x02h\x02\x85q\x03as."

    message = refused_quickly(read_summarize_convert, data, "loop")

    assert "['owner']" in message and "contains itself" in message


def test_values_nested_deeper_than_any_mailman2_file_are_refused():
    deep: list = []
    for _ in range(300):
        deep = [deep]

    message = refused_quickly(read_summarize_convert, hostile_config(topics=deep), "deep")

    assert "nested too deeply" in message and "['topics']" in message


def test_real_shaped_pickles_still_read_exactly_as_a_plain_unpickle_reads_them(tmp_path):
    generate_tree(tmp_path, lists=13, members=400, seed=4)
    generate_protocol0_lists(tmp_path, members=400, seed=4)
    for path in sorted((tmp_path / "lists").glob("*/*.pck")):
        data = path.read_bytes()
        with mailman2_modules():
            plain = pickle.loads(data, encoding="latin-1")

        ours = load_config(data, list_name=path.parent.name) if path.name == "config.pck" else None

        if ours is not None:
            assert comparable(ours) == comparable(plain), path
        else:
            assert load_requests(data, list_name=path.parent.name).problems == ()


def comparable(value):
    """A loaded value with stand-in instances replaced by their class name and attributes."""
    if isinstance(value, dict):
        return {comparable(k): comparable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(comparable(item) for item in value)
    if hasattr(value, "__dict__") and not isinstance(value, type):
        return ("instance", {k: comparable(v) for k, v in vars(value).items() if k != "pickled_args"})
    return value
