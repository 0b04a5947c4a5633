"""Mailman 2 → Mailman 3 conversion: the import copy, the charset, the expected state, the report.

The pure tests run on trees from the lab generator and on small handmade configs. The lab test at
the end runs the real `mailman import21` of Mailman 3.3.10 and compares what it holds afterwards
with `expected_state`.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import secrets
import subprocess
from pathlib import Path
from typing import Any

import pytest

from migrate.lab.mailman2_seed import generate_tree, mailman2_modules
from migrate.mailman import convert, mm2, unread_keys
from migrate.mailman.convert import (
    LEGACY_KEYS,
    LOSSY_FIELDS,
    Change,
    clean_config_for_import,
    conversion_report,
    expected_state,
    import_charset,
    mailman3_accepts,
    rest_fixups,
)
from migrate.mailman.mm2 import Py2Unicode, load_config
from migrate.mailman.model import COMPARED_SETTINGS, ListState, Membership
from migrate.mailman.py2pickle import dumps_py2

DOMAIN = "lists.example.org"


@pytest.fixture(scope="module")
def var_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    var_dir = tmp_path_factory.mktemp("convert") / "var"
    generate_tree(var_dir, lists=14, members=25, seed=3)
    return var_dir


def list_names(var_dir: Path) -> list[str]:
    return sorted(path.name for path in (var_dir / "lists").iterdir())


def config_of(var_dir: Path, name: str) -> dict[str, Any]:
    return load_config((var_dir / "lists" / name / "config.pck").read_bytes(), list_name=name)


def state_of(var_dir: Path, name: str) -> ListState:
    return expected_state(config_of(var_dir, name), fqdn_listname=f"{name}@{DOMAIN}")


def handmade(**overrides: Any) -> dict[str, Any]:
    """A small config.pck dict in load_config's form (Python 2 str as their latin-1 view)."""
    config: dict[str, Any] = {
        "real_name": "Test", "preferred_language": "en", "description": "", "info": "",
        "subject_prefix": "[Test] ", "archive": True, "archive_private": 0, "members": {}, "digest_members": {},
        "user_options": {}, "owner": ["owner@example.org"], "moderator": [],
    }
    config.update(overrides)
    return config


def latin1_view(text: str, charset: str) -> str:
    """How load_config returns a Python 2 str holding `text` encoded in `charset`."""
    return text.encode(charset).decode("latin-1")


# --- the import copy --------------------------------------------------------------------------------


def test_import_copy_loads_with_a_plain_unpickler_and_keeps_every_other_byte(var_dir):
    for name in list_names(var_dir):
        config = config_of(var_dir, name)
        data, changes = clean_config_for_import(config, list_name=name)

        # cli_import.py's own load, here without any Mailman 2 class available.
        loaded = pickle.load(io.BytesIO(data), encoding=import_charset(config), errors="ignore")
        assert "bounce_info" not in loaded and "passwords" not in loaded

        with mailman2_modules():
            original = pickle.loads((var_dir / "lists" / name / "config.pck").read_bytes(), encoding="bytes")
        copy = pickle.loads(data, encoding="bytes")
        changed = {change.key.encode() for change in changes}
        dropped = {change.key.encode() for change in changes if change.action == "dropped"}
        assert set(copy) == set(original) - dropped, name
        assert {k: v for k, v in copy.items() if k not in changed} == \
               {k: v for k, v in original.items() if k not in changed}, name


def test_leaving_out_unread_keys_is_the_only_change_to_a_generated_list(var_dir):
    config = config_of(var_dir, "roster-cases")
    data, changes = clean_config_for_import(config, list_name="roster-cases")

    assert {c.action for c in changes} == {"dropped"}
    assert ("bounce_info", "2 entries") in [(c.key, c.before) for c in changes]
    dropped = {c.key for c in changes}
    copy = load_config(data, list_name="roster-cases")
    assert copy == {k: v for k, v in config.items() if k not in dropped}
    for name in list_names(var_dir):
        if name != "roster-cases":
            assert {c.action for c in clean_config_for_import(config_of(var_dir, name), list_name=name)[1]} \
                == {"dropped"}


def test_what_would_stop_import21_is_replaced_and_recorded():
    config = handmade(
        preferred_language="eo",
        language={"a@example.org": "fa", "b@example.org": "big5", "c@example.org": "de"},
        members={"a@example.org": 0, "b@example.org": 0, "c@example.org": 0},
        reply_goes_to_list=7,
        member_moderation_action=9,
        mod_password="5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8",
        accept_these_nonmembers=["", "friend@example.net", "  "],
        ban_list=["", "x@example.com"],
        header_filter_rules=[("^X-Spam: yes", 3), "garbage"],
        delivery_status={"a@example.org": 2},
        user_options={"a@example.org": "8"},
        last_post_time=None,
    )

    data, changes = clean_config_for_import(config, list_name="test")
    copy = load_config(data, list_name="test")
    by_key = {change.key: change for change in changes}

    assert copy["preferred_language"] == "en" and by_key["preferred_language"].before == "eo"
    assert copy["language"] == {"a@example.org": "en", "b@example.org": "zh_TW", "c@example.org": "de"}
    assert "reply_goes_to_list" not in copy and by_key["reply_goes_to_list"].action == "removed"
    assert copy["member_moderation_action"] == 0
    assert "mod_password" not in copy
    assert copy["accept_these_nonmembers"] == ["friend@example.net"]
    assert copy["ban_list"] == ["x@example.com"]
    assert copy["header_filter_rules"] == [("^X-Spam: yes", 3, False)]
    assert copy["delivery_status"] == {"a@example.org": (2, 0.0)}
    assert copy["user_options"] == {}
    assert "last_post_time" not in copy
    assert all(isinstance(change, Change) for change in changes)
    assert "5baa61e4" not in json.dumps([change.to_dict() for change in changes])


def secret_forms(secret: str) -> set[bytes]:
    """The bytes a secret can take in a pickle: the Python 2 str itself (the latin-1 form of
    load_config's view) and that view's text in UTF-8 (as BINUNICODE would hold it)."""
    forms = {secret.encode("utf-8")}
    try:
        forms.add(secret.encode("latin-1"))
    except UnicodeEncodeError:
        pass
    return forms


def test_the_import_copy_holds_no_password_in_any_form(var_dir):
    config = handmade(
        members={"a@example.org": 0, "b@example.org": 0, "c@example.org": 0},
        passwords={"a@example.org": latin1_view("pässwörd-Ä1", "latin-1"), "b@example.org": Py2Unicode("geheim€-2"),
                   "c@example.org": latin1_view("ключ-3", "koi8-r")},
        password="5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8",
        mod_password="7c4a8d09ca3762af61e59520943dc26494f8941b", post_password="posting-secret-4",
    )
    secrets_ = [*config["passwords"].values(), config["password"], config["mod_password"], config["post_password"]]
    generated = [(config_of(var_dir, name), name) for name in list_names(var_dir)]

    for cfg, name in [(config, "handmade"), *generated]:
        data, changes = clean_config_for_import(cfg, list_name=name)

        values = secrets_ if cfg is config else [*cfg["passwords"].values(), cfg["password"]]
        forms = set().union(*(secret_forms(secret) for secret in values))
        if cfg is config:
            forms |= {"ключ-3".encode("utf-8"), "pässwörd-Ä1".encode("utf-8")}  # the texts themselves
        for form in forms:
            assert form not in data, (name, form)
        assert not {"passwords", "password", "post_password", "mod_password"} & set(load_config(data, list_name=name))
        dropped = {change.key: change for change in changes if change.action == "dropped"}
        assert dropped["passwords"].before == f"{len(cfg['passwords'])} member passwords", name
        shown = json.dumps([change.to_dict() for change in changes], ensure_ascii=False)
        assert not any(secret in shown for secret in values), name


def test_the_report_says_which_secrets_were_left_out_without_showing_them():
    config = handmade(members={"a@example.org": 0, "b@example.org": 0},
                      passwords={"a@example.org": "hunter2-a", "b@example.org": "hunter2-b"},
                      password="5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8", post_password="posting-secret")

    report = conversion_report(config, list_name="t")

    assert "dropped: passwords (2 member passwords, not imported by import21)" in report.notes
    assert "dropped: password (set, not imported by import21)" in report.notes
    assert "dropped: post_password (set, not imported by import21)" in report.notes
    assert {entry.key for entry in report.dropped} >= {"passwords", "password", "post_password"}
    text = json.dumps(report.to_dict(), ensure_ascii=False)
    assert not any(secret in text for secret in ("hunter2", "5baa61e4", "posting-secret"))


# Keys Mailman 3.3.10's import_config_pck reads (importer.py: list attributes it sets, and what its
# own code reads for rosters, archive policy, moderation, bans, header filters, templates, dates).
IMPORTED_KEYS = frozenset({
    "real_name", "description", "info", "subject_prefix", "preferred_language", "members", "digest_members",
    "user_options", "delivery_status", "usernames", "language", "owner", "moderator", "accept_these_nonmembers",
    "hold_these_nonmembers", "reject_these_nonmembers", "discard_these_nonmembers", "ban_list",
    "header_filter_rules", "archive", "archive_private", "default_member_moderation", "member_moderation_action",
    "generic_nonmember_action", "msg_header", "msg_footer", "digest_header", "digest_footer", "goodbye_msg",
    "private_roster", "acceptable_aliases", "created_at", "last_post_time", "max_message_size", "advertised",
    "subscribe_policy", "send_welcome_msg", "send_goodbye_msg", "topics", "encode_ascii_prefixes",
})


def test_keys_import21_does_not_read_are_left_out_of_the_copy(var_dir):
    for name in list_names(var_dir):
        config = config_of(var_dir, name)


        copy_data, changes = clean_config_for_import(config, list_name=name)
        unread = {change.key for change in changes if change.action == "dropped"}
        assert unread >= {"passwords", "password", "bounce_info", "welcome_msg", "host_name", "data_version"}, name
        assert not unread & IMPORTED_KEYS, name
        assert set(load_config(copy_data, list_name=name)) == set(config) - unread, name


# --- charsets and texts -----------------------------------------------------------------------------

LANGUAGE_LISTS = {
    # name: (import charset, description, info fragment)
    "kultur-de": ("iso-8859-1", "Kulturverein Müller café ñ: Grüße aus Köln", "Jahresbeitrag: 25 €\n"),
    "cuisine-fr": ("iso-8859-1", "Recettes: crème brûlée, pâté, façon grand-mère", "déjà testées à Noël"),
    "charla-es": ("iso-8859-1", "Charla en español: año, niño, ¿qué tal? ¡olé!", "pingüino"),
    "dyskusja-pl": ("iso-8859-2", "Zażółć gęślą jaźń", "Łódź, Gdańsk"),
    "nihongo-ja": ("euc-jp", "日本語のメーリングリスト", "質問はお気軽にどうぞ"),
    # Russian is utf-8 in 2.1.39 but this list kept 2.1.0's koi8-r bytes.
    "novosti-ru": ("koi8-r", "Новости и обсуждения", "ёлки-палки"),
    "tieng-viet": ("utf-8", "Diễn đàn tiếng Việt", "tiếng Việt có dấu"),
    # A German list whose Debian Mailman stored UTF-8.
    "debian-utf8-de": ("utf-8", "Größe, Übung, Straße – in UTF-8 gespeichert", "Euro: €"),
    "roster-cases": ("utf-8", "Every kind of Mailman 2 membership", ""),
}


@pytest.mark.parametrize("name", sorted(LANGUAGE_LISTS))
def test_charset_description_and_info_of_each_language_list(var_dir, name):
    charset, description, info_fragment = LANGUAGE_LISTS[name]
    config = config_of(var_dir, name)

    assert import_charset(config) == charset
    state = state_of(var_dir, name)
    assert state.settings["description"] == description
    assert info_fragment in state.settings["info"]
    # import21 itself already decodes them right with that charset; only the character
    # reference in kultur-de's info needs the REST fix-up.
    seen = pickle.loads(clean_config_for_import(config, list_name=name)[0], encoding=charset, errors="ignore")
    assert seen["description"] == description


def test_the_member_name_of_a_latin1_list_is_decoded(var_dir):
    state = state_of(var_dir, "kultur-de")

    assert state.roster[("member", "juergen.weiss@example.de")].display_name == "Jürgen Weiß"


def test_english_lists_never_use_us_ascii():
    assert import_charset(handmade()) == "utf-8"
    assert import_charset(handmade(info=latin1_view("naïve café", "utf-8"))) == "utf-8"
    latin1 = handmade(description=latin1_view("Müller café ñ", "latin-1"))
    assert import_charset(latin1) == "iso-8859-1"
    assert expected_state(latin1, fqdn_listname="test@example.org").settings["description"] == "Müller café ñ"


def test_handmade_lists_in_each_charset():
    cases = [
        ("de", "iso-8859-1", "Müller café ñ"),
        ("ru", "koi8-r", "Привет, мир"),
        ("ru", "utf-8", "Привет, мир"),
        ("ja", "euc-jp", "日本語の説明"),
        ("de", "utf-8", "Grüße – UTF-8"),
    ]
    for language, stored, text in cases:
        config = handmade(preferred_language=language, description=latin1_view(text, stored),
                          info=latin1_view(text + "\n" + text, stored))
        assert import_charset(config) == stored, (language, stored)
        settings = expected_state(config, fqdn_listname="test@example.org").settings
        assert settings["description"] == text
        assert settings["info"] == text + "\n" + text
        assert settings["preferred_language"] == language


def test_fixups_restore_what_import21_damages():
    # One UTF-8 name in an otherwise latin-1 German list: import21 runs with iso-8859-1.
    config = handmade(
        preferred_language="de",
        real_name=latin1_view("Köln", "latin-1"),
        subject_prefix=latin1_view("  [Köln]", "latin-1"),
        description=latin1_view("Zwei\nZeilen &#8364;", "latin-1"),
        info=latin1_view("Größe", "utf-8"),
    )

    fixes = rest_fixups(config, list_name="test")

    assert fixes == {"description": "Zwei Zeilen €", "info": "Größe"}
    settings = expected_state(config, fqdn_listname="test@example.org").settings
    assert settings["display_name"] == "Köln"
    assert settings["subject_prefix"] == "[Köln] "
    assert settings["info"] == "Größe"


def test_display_name_and_prefix_are_fixed_when_import21_drops_bytes():
    # A Vietnamese (UTF-8) list whose name was typed in latin-1: import21 with utf-8 drops the é.
    config = handmade(preferred_language="vi", real_name=latin1_view("Café", "latin-1"),
                      subject_prefix=latin1_view("[Café]", "latin-1"), info=latin1_view("Tiếng Việt", "utf-8"))

    assert import_charset(config) == "utf-8"
    fixes = rest_fixups(config, list_name="test")
    assert fixes["display_name"] == "Café"
    assert fixes["subject_prefix"] == "[Café] "
    notes = " ".join(conversion_report(config, list_name="test").notes)
    assert "real_name: bytes that are not utf-8" in notes


def test_texts_import21_damages_are_reported():
    # A Japanese list with one value that is not EUC-JP: its odd bytes are dropped.
    euc = handmade(preferred_language="ja", info=latin1_view("日本語", "euc-jp"),
                   msg_footer=latin1_view("フッター", "euc-jp") + "\xff\xfe")
    lossy = {e.key: e for e in conversion_report(euc, list_name="t").lossy}
    assert import_charset(euc) == "euc-jp"
    assert lossy["msg_footer"].after == "フッター"
    assert lossy["msg_footer"].reason == "bytes that are not euc-jp are dropped by import21"

    # A German latin-1 list with one UTF-8 value (Debian upgrade half-way): mojibake, reported.
    mixed = handmade(preferred_language="de", description=latin1_view("Köln", "latin-1"),
                     goodbye_msg=latin1_view("Tschüß", "utf-8"))
    lossy = {e.key: e for e in conversion_report(mixed, list_name="t").lossy}
    assert import_charset(mixed) == "iso-8859-1"
    assert lossy["goodbye_msg"].before == "Tschüß"
    assert lossy["goodbye_msg"].after == "TschÃ¼Ã\x9f"

    # koi8-r decodes every byte: nothing is dropped.
    russian = handmade(preferred_language="ru", info=latin1_view("Привет", "koi8-r"), msg_footer="\xff\xfe")
    assert import_charset(russian) == "koi8-r"
    assert not [e for e in conversion_report(russian, list_name="t").lossy if e.key == "msg_footer"]


# --- rosters ----------------------------------------------------------------------------------------


def test_roster_cases(var_dir):
    roster = state_of(var_dir, "roster-cases").roster

    def member(address: str) -> Membership:
        return roster[("member", address.lower())]

    assert member("regular.member@example.com").delivery_mode == "regular"
    assert member("regular.member@example.com").display_name == "Regular Member"
    assert member("digest.plain@example.com").delivery_mode == "plaintext_digests"
    assert member("digest.mime@example.com").delivery_mode == "mime_digests"
    assert member("opt.all@example.com").delivery_mode == "plaintext_digests"
    assert {a: member(f"nomail.{a}@example.com").delivery_status
            for a in ("unknown", "byuser", "byadmin", "bybounce")} == {
        "unknown": "unknown", "byuser": "by_user", "byadmin": "by_moderator", "bybounce": "by_bounces"}
    assert member("regular.member@example.com").delivery_status == "enabled"
    # Bit 128 takes member_moderation_action (0: hold); everyone else with options gets defer.
    assert member("opt.moderated@example.com").moderation_action == "hold"
    assert member("opt.all@example.com").moderation_action == "hold"
    assert member("opt.ack@example.com").moderation_action == "defer"
    # Case-preserved addresses keep their case, display names from usernames (unicode too).
    assert member("alice.example@example.org").address == "Alice.Example@Example.ORG"
    assert member("bob.camelcase@example.com").address == "Bob.CamelCase@Example.com"
    assert member("bob.camelcase@example.com").delivery_mode == "mime_digests"
    assert member("lukasz@example.pl").display_name == "Łukasz Żółkiewski"
    assert member("jose@example.es").display_name == "José Müller"
    owners = state_of(var_dir, "roster-cases").role("owner")
    assert sorted(m.address for m in owners.values()) == [
        "owner@lists.example.org", "second.owner@example.com", "third-owner@example.net"]
    assert all(m.moderation_action == "accept" and m.delivery_mode is None for m in owners.values())
    moderators = state_of(var_dir, "roster-cases").role("moderator")
    assert sorted(m.address for m in moderators.values()) == ["moderator@example.org", "other.moderator@example.net"]
    assert len(state_of(var_dir, "roster-cases").role("member")) == 25


def test_moderation_rules(var_dir):
    state = state_of(var_dir, "moderation-rules")

    assert state.settings["default_member_action"] == "reject"  # moderated list, action 1
    assert state.settings["default_nonmember_action"] == "reject"  # generic_nonmember_action 2
    assert {a: m.moderation_action for a, m in state.role("nonmember").items()} == {
        "friend@partner.example": "defer", "newsletter@vendor.example": "hold",
        "troll@example.net": "reject", "spam@spam.example": "discard"}
    assert state.nonmember_patterns == {
        "accept_these_nonmembers": ["^.*@trusted\\.example$", f"@kultur-de@{DOMAIN}"],
        "hold_these_nonmembers": ["^.*@freemail\\.example$"],
        "reject_these_nonmembers": ["^troll[0-9]+@.*"],
        "discard_these_nonmembers": ["^.*@(spam|junk)\\.example$"],
    }
    assert state.bans == {"banned@example.com", "^.*@banned\\.example$"}  # ^[unclosed is dropped
    assert state.roster[("member", "moderated.member@example.com")].moderation_action == "reject"


def test_archive_and_moderation_settings(var_dir):
    assert state_of(var_dir, "emergency-stop").settings["archive_policy"] == "never"
    assert state_of(var_dir, "cuisine-fr").settings["archive_policy"] == "private"
    assert state_of(var_dir, "kultur-de").settings["archive_policy"] == "public"
    assert state_of(var_dir, "held-requests").settings["subscription_policy"] == "moderate"
    accept = handmade(generic_nonmember_action=0)
    assert expected_state(accept, fqdn_listname="t@example.org").settings["default_nonmember_action"] == "defer"


def test_every_compared_setting_is_expected(var_dir):
    for name in list_names(var_dir):
        settings = state_of(var_dir, name).settings
        assert list(settings) == list(COMPARED_SETTINGS), name
    settings = state_of(var_dir, "kultur-de").settings
    assert settings["display_name"] == "Kultur-DE"
    assert settings["subject_prefix"] == "[Kultur-DE] "
    assert settings["preferred_language"] == "de"
    assert settings["max_message_size"] == 40
    assert settings["reply_goes_to_list"] == "no_munging"
    assert settings["advertised"] is True and settings["first_strip_reply_to"] is False


def test_what_import21_skips_in_rosters():
    config = handmade(
        members={"kept@example.org": 0, "banned1@bad.example": 0, "exact@example.org": "Exact@example.org",
                 "broken@": 0, "both@example.org": 0, "ownercase@example.org": "OwnerCase@Example.org"},
        digest_members={"both@example.org": 0},
        user_options={"both@example.org": 8, "ownercase@example.org": 128},
        ban_list=["^.*@bad\\.example$", "Exact@example.org", "^(unclosed"],
        owner=["OwnerCase@example.org", "Other.Owner@Example.org"],
        member_moderation_action=2,
        hold_these_nonmembers=["@otherlist", "Poster@Example.net"],
    )

    state = expected_state(config, fqdn_listname="test@new.example.org")

    assert sorted(state.role("member")) == ["both@example.org", "exact@example.org", "kept@example.org",
                                            "ownercase@example.org"]
    # Exact bans are compared case-sensitively with the lowercased address: "Exact@example.org"
    # does not stop "exact@example.org", which keeps its case-preserved form.
    assert state.roster[("member", "exact@example.org")].address == "Exact@example.org"
    assert state.roster[("member", "both@example.org")].delivery_mode == "regular"
    owner = state.roster[("owner", "ownercase@example.org")]
    assert owner.address == "OwnerCase@Example.org" and owner.moderation_action == "discard"
    assert state.roster[("owner", "other.owner@example.org")].address == "other.owner@example.org"
    assert state.roster[("nonmember", "poster@example.net")].moderation_action == "hold"
    assert state.nonmember_patterns["hold_these_nonmembers"] == []
    assert state.bans == {"^.*@bad\\.example$", "Exact@example.org"}
    lossy = {e.key for e in conversion_report(config, list_name="test").lossy}
    assert {"members[banned1@bad.example]", "members[broken@]", "digest_members[both@example.org]",
            "hold_these_nonmembers[@otherlist]", "ban_list[^(unclosed]",
            "owner[Other.Owner@Example.org]", "hold_these_nonmembers[Poster@Example.net]"} <= lossy


@pytest.mark.parametrize(("address", "valid"), [
    ("a@example.org", True), ("A.B+c@Sub.Example.ORG", True), ('"a"@example.org', True),
    ("a@localhost", False), ("a b@example.org", False), ("a@-bad.example", False), ("@example.org", False),
    ("a@exämple.org", False), ("", False), ("a@example..org", False),
])
def test_mailman3_address_validation(address, valid):
    assert mailman3_accepts(address) is valid


# --- the report -------------------------------------------------------------------------------------


def test_report_covers_every_key_the_generator_writes(var_dir):
    for name in list_names(var_dir):
        config = config_of(var_dir, name)
        report = conversion_report(config, list_name=name)

        assert report.unknown == [], name
        assert set(config) <= report.covered_keys(), (name, set(config) - report.covered_keys())
        json.dumps(report.to_dict())


def test_report_drops_passwords_without_showing_any(var_dir):
    config = config_of(var_dir, "roster-cases")
    secrets_ = list(config["passwords"].values()) + [config["password"]]
    secrets_ += [info.cookie for info in config["bounce_info"].values() if info.cookie]

    report = conversion_report(config, list_name="roster-cases")
    text = json.dumps(report.to_dict(), ensure_ascii=False)

    dropped = {entry.key: entry for entry in report.dropped}
    assert dropped["passwords"].before == f"{len(config['passwords'])} entries"
    assert dropped["password"].before == "set"
    assert dropped["bounce_info"].before == "2 entries"
    for secret in secrets_:
        assert secret not in text


def test_report_sections(var_dir):
    config = config_of(var_dir, "kultur-de")
    report = conversion_report(config, list_name="kultur-de")
    sections = {name: {entry.key: entry for entry in entries} for name, entries in report.sections().items()}

    assert sections["renamed"]["real_name"].target == "display_name"
    assert sections["renamed"]["real_name"].after == "Kultur-DE"
    assert sections["renamed"]["subscribe_policy"].after == "confirm"
    assert sections["converted"]["archive"].after == "public"
    assert sections["converted"]["info"].after.endswith("25 €\n")
    assert "welcome_msg" in sections["dropped"]
    assert sections["lossy"]["archive_volume_frequency"].before == 1
    # The footer keeps 2.1 placeholders Mailman 3 does not expand.
    assert sections["lossy"]["msg_footer"].before == ["%(_internal_name)s", "%(web_page_url)s"]
    assert "data_version" in sections["ignored"]
    assert report.fixups["info"].endswith("25 €\n")
    assert report.charset == "iso-8859-1"


def test_moderation_rules_report(var_dir):
    report = conversion_report(config_of(var_dir, "moderation-rules"), list_name="moderation-rules")
    lossy = {entry.key: entry for entry in report.lossy}

    assert lossy["ban_list[^[unclosed]"].after is None
    assert lossy["header_filter_rules[4]"].reason.startswith("action 'approve'")
    assert lossy["header_filter_rules[5]"].after == "hold"  # 2.1 defer
    assert lossy["accept_these_nonmembers[@kultur-de]"].after == "@kultur-de@<list domain>"


def test_tables_are_complete_and_explained():
    assert all(rule.fate in convert.FATES and rule.why for rule in LEGACY_KEYS.values())
    assert all(rule.target for rule in LEGACY_KEYS.values() if rule.fate in ("converted", "renamed"))
    for path, reason in LOSSY_FIELDS.items():
        section, _, name = path.partition(".")
        assert section in ("settings", "roster", "bans", "nonmember_patterns") and reason
        if section == "settings":
            assert name in COMPARED_SETTINGS


def test_character_references_and_one_line_description():
    assert convert.decode_char_refs("25 &#8364; &#x263A; &#0; &#55296;") == "25 € ☺ &#0; &#55296;"
    config = handmade(description="Line one\r\nline two\n")
    assert rest_fixups(config, list_name="t")["description"] == "Line one line two"


def test_unicode_values_are_not_decoded_twice():
    config = handmade(preferred_language="de", description=Py2Unicode("Müller"),
                      members={"a@example.org": 0}, usernames={"a@example.org": Py2Unicode("Zoë")})

    state = expected_state(config, fqdn_listname="t@example.org")

    assert state.settings["description"] == "Müller"
    assert state.roster[("member", "a@example.org")].display_name == "Zoë"
    assert load_config(dumps_py2(config), list_name="t")["description"] == "Müller"


# --- against the real Mailman 3 ---------------------------------------------------------------------

LIVE_LISTS = ("roster-cases", "moderation-rules", "kultur-de", "novosti-ru")
NONMEMBER_ATTRIBUTES = tuple(mm2.NONMEMBER_ACTIONS)
# Environment variables that would make Mailman's venv load other code or another config.
FOREIGN_ENV = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "MAILMAN_CONFIG_FILE")


@pytest.fixture(scope="module")
def mailman3():
    from migrate.lab.mailman3 import Mailman3Core, MailmanLabError

    core = Mailman3Core()
    try:
        core.versions()
    except (OSError, MailmanLabError) as exc:
        pytest.skip(f"the lab's Mailman 3 core is not running: {exc}")
    return core


@pytest.fixture
def scratch_domain(mailman3):
    """A domain of our own; deleting it at the end deletes its lists (and nothing of anyone else)."""
    client = mailman3.client()
    name = f"convtest-{secrets.token_hex(4)}.example.org"
    client.create_domain(name)
    try:
        yield name
    finally:
        client.delete_domain(name)


def _mailman(core, *args: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in FOREIGN_ENV}
    return subprocess.run(core.mailman_command(*args), capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL, timeout=600)


def _known_addresses(client, emails: set[str]) -> set[str]:
    """Those of the addresses Mailman already has (from other lists: addresses are site-wide)."""
    from urllib.error import HTTPError

    known = set()
    for email in emails:
        try:
            client.get_address(email)
        except HTTPError as exc:
            if exc.code != 404:
                raise
        else:
            known.add(email)
    return known


def _read_back(client, fqdn: str) -> ListState:
    """The list as Mailman 3's REST API shows it, in ListState form (members only carry delivery)."""
    mlist = client.get_list(fqdn)
    config = mlist.settings
    state = ListState(fqdn_listname=fqdn, settings={name: config[name] for name in COMPARED_SETTINGS})
    state.nonmember_patterns = {name: list(config[name]) for name in NONMEMBER_ATTRIBUTES}
    state.bans = {ban.email for ban in mlist.bans}
    for role, entries in (("member", mlist.members), ("owner", mlist.owners), ("moderator", mlist.moderators),
                          ("nonmember", mlist.nonmembers)):
        for entry in entries:
            mode = status = None
            if role == "member":
                mode = entry.delivery_mode
                status = entry.preferences["delivery_status"]
            state.add(Membership(
                address=entry.address.original_email, role=role,
                display_name=entry.rest_data.get("display_name", ""),
                delivery_mode=mode, delivery_status=status,
                moderation_action=entry.rest_data.get("moderation_action"),
            ))
    return state


def _import_and_fix(core, client, config: dict[str, Any], fqdn: str, tmp_path: Path) -> ListState:
    """mailman create, import21 of the cleaned copy, the REST fix-ups; then read the list back."""
    name = fqdn.partition("@")[0]
    data, _ = clean_config_for_import(config, list_name=name)
    pickle_file = tmp_path / f"{name}.pck"
    pickle_file.write_bytes(data)
    created = _mailman(core, "create", fqdn)
    assert created.returncode == 0, created.stderr
    imported = _mailman(core, "import21", "-c", import_charset(config), fqdn, str(pickle_file))
    assert imported.returncode == 0, imported.stderr
    settings = client.get_list(fqdn).settings
    for attribute, value in rest_fixups(config, list_name=name).items():
        settings[attribute] = value
    settings.save()
    return _read_back(client, fqdn)


def _assert_same(actual: ListState, expected: ListState, known: set[str]) -> None:
    name = expected.fqdn_listname
    assert actual.settings == expected.settings, name
    assert actual.nonmember_patterns == expected.nonmember_patterns, name
    assert actual.bans == expected.bans, name
    assert set(actual.roster) == set(expected.roster), name
    for key, want in expected.roster.items():
        got = actual.roster[key]
        if key[1] in known:
            # Mailman had this address before (from another list: addresses and users are
            # site-wide), so its stored case and its user's name may come from there.
            got.address, got.display_name = want.address, want.display_name
        assert got == want, (name, key)


@pytest.mark.slow
@pytest.mark.lab
def test_expected_state_matches_a_real_import21(mailman3, scratch_domain, var_dir, tmp_path):
    client = mailman3.client()
    for name in LIVE_LISTS:
        fqdn = f"{name}@{scratch_domain}"
        config = config_of(var_dir, name)
        expected = expected_state(config, fqdn_listname=fqdn)
        known = _known_addresses(client, {email for _, email in expected.roster})

        actual = _import_and_fix(mailman3, client, config, fqdn, tmp_path)

        _assert_same(actual, expected, known)


def unique_roster_config(token: str) -> dict[str, Any]:
    """A German list whose addresses no earlier run has used, with the roster edge cases."""

    def at(local: str, domain: str = "example.org") -> str:
        return f"{local}.{token}@{domain}"

    camel, exact, boss = at("camel"), at("exact"), at("boss")
    return handmade(
        real_name="Unique", preferred_language="de",
        description=latin1_view("Müller café ñ", "latin-1"),
        info=latin1_view("Grüße\nBeitrag: 25 &#8364;\n", "latin-1"),
        members={at("kept"): 0, at("both"): 0, at("spam", "bad.example"): 0, exact: f"Exact.{token}@example.org",
                 f"broken.{token}@": 0, boss: f"Boss.{token}@Example.ORG", at("nomail"): 0},
        digest_members={camel: f"Camel.{token}@Example.ORG", at("both"): 0},
        user_options={at("kept"): 0, camel: 8, at("both"): 8, exact: 0, boss: 128, at("nomail"): 16},
        delivery_status={at("nomail"): (3, 1262304000.0)},
        usernames={at("kept"): Py2Unicode("Zoë Kept"), camel: latin1_view("Jürgen Weiß", "latin-1")},
        language={at("kept"): "fr", camel: "eo"},
        member_moderation_action=2,
        ban_list=["^.*@bad\\.example$", f"Exact.{token}@example.org", "^[unclosed"],
        owner=[f"Boss.{token}@example.org", f"Other.{token}@Example.org"],
        moderator=[at("mod")],
        accept_these_nonmembers=["^.*@trusted\\.example$", "@otherlist", f"Friend.{token}@Example.net"],
        hold_these_nonmembers=["@otherlist", at("poster", "example.net")],
        generic_nonmember_action=0,
        reply_goes_to_list=2, reply_to_address="replies@example.org", first_strip_reply_to=True,
        max_message_size=100, advertised=False, subscribe_policy=3,
    )


@pytest.mark.slow
@pytest.mark.lab
def test_expected_state_matches_for_addresses_new_to_mailman(mailman3, scratch_domain, tmp_path):
    client = mailman3.client()
    config = unique_roster_config(secrets.token_hex(4))
    fqdn = f"unique@{scratch_domain}"
    expected = expected_state(config, fqdn_listname=fqdn)
    assert _known_addresses(client, {email for _, email in expected.roster}) == set()

    actual = _import_and_fix(mailman3, client, config, fqdn, tmp_path)

    _assert_same(actual, expected, known=set())
    assert actual.settings["info"] == "Grüße\nBeitrag: 25 €\n"
    assert actual.settings["default_nonmember_action"] == "defer"


def what_stops_import21(token: str) -> dict[str, dict[str, Any]]:
    """One config per IMPORT_FIXES entry, each with a value Mailman 3.3.10's import21 stops on."""
    from migrate.mailman.mm2 import stand_in_class

    member = f"a.{token}@example.org"
    other_class = stand_in_class("Mailman.Pending", "Thing")()
    return {
        "list-language": handmade(preferred_language="eo"),
        "member-language": handmade(members={member: 0}, language={member: "fa"}),
        "enum": handmade(reply_goes_to_list=7),
        "moderation-action": handmade(default_member_moderation=True, member_moderation_action=5),
        "blank-nonmember": handmade(accept_these_nonmembers=["", f"b.{token}@example.org"]),
        "header-rule": handmade(header_filter_rules=[("^X-Spam: yes", 3)]),
        "delivery-status": handmade(members={member: 0}, delivery_status={member: 2}),
        "other-class": handmade(pending={"k": other_class}),
    }


@pytest.mark.slow
@pytest.mark.lab
def test_import21_stops_on_what_the_import_copy_fixes(mailman3, scratch_domain, tmp_path):
    for name, config in what_stops_import21(secrets.token_hex(4)).items():
        fqdn = f"{name}@{scratch_domain}"
        assert _mailman(mailman3, "create", fqdn).returncode == 0
        raw_file, clean_file = tmp_path / f"{name}.raw.pck", tmp_path / f"{name}.pck"
        raw_file.write_bytes(dumps_py2(config))
        data, changes = clean_config_for_import(config, list_name=name)
        clean_file.write_bytes(data)

        raw = _mailman(mailman3, "import21", "-c", import_charset(config), fqdn, str(raw_file))
        cleaned = _mailman(mailman3, "import21", "-c", import_charset(config), fqdn, str(clean_file))

        assert raw.returncode != 0, name
        assert changes and cleaned.returncode == 0, (name, cleaned.stderr)


# What Mailman 3.3.10 itself says about a config.pck key, run in the lab's Mailman 3 venv: whether
# it names a MailingList attribute once importer.py's NAME_MAPPINGS is applied, and whether
# importer.py's code (comments left out) mentions it.
_ASK_IMPORTER = """
import inspect, json, sys
from mailman.model.mailinglist import MailingList
from mailman.utilities import importer
code = "\\n".join(line for line in inspect.getsource(importer).splitlines() if not line.strip().startswith("#"))
print(json.dumps({key: [hasattr(MailingList, importer.NAME_MAPPINGS.get(key, key)), repr(key) in code]
                  for key in json.load(sys.stdin)}))
"""


@pytest.mark.lab
def test_mailman3_reads_none_of_the_keys_the_copy_leaves_out(var_dir):
    from migrate.lab.mailman3 import Mailman3Core

    dropped = {key for key, rule in LEGACY_KEYS.items() if unread_keys.passed_over(rule)}
    for name in list_names(var_dir):
        dropped |= {c.key for c in clean_config_for_import(config_of(var_dir, name), list_name=name)[1]
                    if c.action == "dropped"}
    python = Mailman3Core().venv / "bin" / "python"
    env = {key: value for key, value in os.environ.items() if key not in FOREIGN_ENV}

    asked = subprocess.run([str(python), "-c", _ASK_IMPORTER], input=json.dumps(sorted(dropped)), env=env,
                           capture_output=True, text=True, timeout=120, check=True)

    answers = json.loads(asked.stdout)
    assert {"passwords", "password", "post_password", "bounce_info", "welcome_msg"} <= set(answers)
    # mod_password maps to moderator_password, left out because 2.1's hash is unusable there.
    assert {key for key, (attribute, _) in answers.items() if attribute} == {"mod_password"}
    assert {key for key, (_, mentioned) in answers.items() if mentioned} == set()
