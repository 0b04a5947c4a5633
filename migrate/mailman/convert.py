"""Mailman 2.1 list configuration → what Mailman 3's import21 is given, what it will hold, what is lost.

Everything here is pure: a config dict as `mm2.load_config` returns it goes in, data comes out.

- `clean_config_for_import` writes the copy of config.pck handed to `mailman import21`: the keys
  import21 never reads (member passwords in clear among them) left out, the few values it chokes
  on or mis-imports replaced; every difference is a `Change`.
- `import_charset` is the `--charset` for import21: import21 decodes every Python 2 byte string of
  the pickle with it and silently drops the bytes that do not fit (`errors='ignore'`).
- `rest_fixups` are the settings re-set through REST after import21 (description and info always,
  display name and subject prefix when import21's decoding damaged them).
- `expected_state` is the `ListState` Mailman 3 holds after import21 and the fix-ups.
- `conversion_report` says, key by key, what became of the list's Mailman 2 configuration.

The behaviour modelled is Mailman 3.3.10's `mailman/utilities/importer.py` (import_config_pck,
_import_roster) and `mailman/commands/cli_import.py`, checked against a running Mailman 3.3.10
(tests/mailman/test_convert.py). Where a table entry records such a fact, its comment names the
function it comes from.
"""

from __future__ import annotations

import io
import pickle
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator, Mapping

from . import mm2
from .mm2 import Mailman2Object, Py2Unicode
from .model import COMPARED_SETTINGS, ListState, Membership
from .py2pickle import dumps_py2
from .unread_keys import leave_out

# --- Mailman 3.3.10 vocabularies ------------------------------------------------------------------
# Enum values as Mailman 3 stores them → the member name, which is how REST renders an enum
# (mailman/rest/helpers.py ExtendedEncoder). Mailman 2 used the same numbers for these settings,
# which is why import21 can call the enum on the Mailman 2 value.

REPLY_TO_MUNGING = {0: "no_munging", 1: "point_to_list", 2: "explicit_header", 3: "explicit_header_only"}
SUBSCRIPTION_POLICIES = {0: "open", 1: "confirm", 2: "moderate", 3: "confirm_then_moderate"}
DIGEST_FREQUENCIES = {0: "yearly", 1: "monthly", 2: "quarterly", 3: "weekly", 4: "daily"}
NEWSGROUP_MODERATION = {0: "none", 1: "open_moderated", 2: "moderated"}
PERSONALIZATION = {0: "none", 1: "individual", 2: "full"}
RESPONSE_ACTIONS = {0: "none", 1: "respond_and_discard", 2: "respond_and_continue"}
UNRECOGNIZED_BOUNCE_DISPOSITIONS = {0: "discard", 1: "administrators", 2: "site_owner"}
DMARC_MITIGATIONS = {0: "no_mitigation", 1: "munge_from", 2: "wrap_message", 3: "reject", 4: "discard"}

# importer.py's mapping functions, Mailman 2 number → Mailman 3 name.
# nonmember_action_mapping: 2.1's "accept" is 3.x's "defer" (no moderation, the post goes on).
MM2_NONMEMBER_ACTIONS = {0: "defer", 1: "hold", 2: "reject", 3: "discard"}
# member_moderation_action_mapping.
MM2_MEMBER_MODERATION_ACTIONS = {0: "hold", 1: "reject", 2: "discard"}
# filter_action_mapping: 2.1 content filter actions Discard, Reject, Forward to owner, Preserve.
MM2_FILTER_ACTIONS = {0: "discard", 1: "reject", 2: "forward", 3: "preserve"}
# member_roster_visibility_mapping: 2.1 private_roster 0 public, 1 members, 2 admins.
MM2_ROSTER_VISIBILITY = {0: "public", 1: "members", 2: "moderators"}
# action_to_chain: header_filter_rules action → chain. 0 (defer) becomes None, which Mailman 3
# reads as "jump to [antispam] jump_chain" (hold by default, mailman/chains/headers.py);
# 1 (approve) has no chain and the rule is skipped.
MM2_HEADER_FILTER_CHAINS: dict[int, str | None] = {0: None, 2: "reject", 3: "discard", 6: "accept", 7: "hold"}
# _import_roster: Mailman 2 delivery_status code → Mailman 3 DeliveryStatus. 2.1's BYADMIN (3)
# is 3.x's by_moderator. Other codes leave the member's status unset (Mailman 3 then reports
# "enabled").
MM2_DELIVERY_STATUSES = {0: "enabled", 1: "unknown", 2: "by_user", 3: "by_moderator", 4: "by_bounces"}

# The [language.*] sections of Mailman 3.3.10's schema.cfg, all enabled. import21 stops with
# "Missing language" (Import21Error, exit 1) on a list or member language outside this set.
MAILMAN3_LANGUAGES = frozenset((
    "ar", "ast", "bg", "ca", "cs", "da", "de", "el", "en", "es", "et", "eu", "fi", "fr", "gl", "he",
    "hr", "hu", "ia", "it", "ja", "ko", "lt", "nl", "no", "pl", "pt", "pt_BR", "ro", "ru", "sk", "sl",
    "sr", "sv", "tr", "uk", "vi", "zh_CN", "zh_TW",
))
# Mailman 2 language codes whose language Mailman 3 has under another code (2.1.0's 'big5' and
# 'gb' Chinese); any other unknown code becomes LANGUAGE_FALLBACK.
LANGUAGE_REPLACEMENTS = {"big5": "zh_TW", "gb": "zh_CN"}
LANGUAGE_FALLBACK = "en"


def create_defaults(list_name: str) -> dict[str, Any]:
    """The compared settings as `mailman create` leaves them (the legacy-default style).

    mailman/styles/base.py: Identity (display name = list name capitalised, subject prefix
    '[display name] ', empty description and info, language en), BasicOperation (member action
    defer, nonmember action hold, subscription policy confirm), Public (advertised, reply-to
    no_munging, no reply-to address, public archive), Discussion (max_message_size 40).
    import21 leaves a setting at this value when config.pck lacks its key.
    """
    display_name = list_name.capitalize()
    return {
        "display_name": display_name,
        "subject_prefix": f"[{display_name}] ",
        "description": "",
        "info": "",
        "archive_policy": "public",
        "default_member_action": "defer",
        "default_nonmember_action": "hold",
        "reply_goes_to_list": "no_munging",
        "reply_to_address": "",
        "first_strip_reply_to": False,
        "max_message_size": 40,
        "advertised": True,
        "subscription_policy": "confirm",
        "preferred_language": "en",
    }


# --- import21's value conversions, rendered the way REST shows the result ---------------------------
# Each takes a value as import21 sees it (text already decoded with --charset) and returns what
# GET /3.1/lists/<id>/config answers for the attribute. KeyError and TypeError mean import21 prints
# "Type conversion error" and leaves the attribute alone (import_config_pck catches only those two).


def _same(value: Any) -> Any:
    return value


def _bool(value: Any) -> bool:
    # import_config_pck converts every value for a Boolean column with bool().
    return bool(value)


def _enum(table: Mapping[int, str]) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        return table[int(value)] if isinstance(value, (int, bool)) else table[value]

    return convert


def _rest_timedelta(delta: timedelta) -> str:
    # ExtendedEncoder: "<days>d" for whole days, else "<days>d<seconds as float>s".
    if delta.seconds or delta.microseconds:
        return f"{delta.days}d{delta.seconds + delta.microseconds / 1_000_000.0}s"
    return f"{delta.days}d"


def _seconds(value: Any) -> str:
    # seconds_to_delta: 2.1 stored these intervals as seconds.
    return _rest_timedelta(timedelta(seconds=value))


def _days(value: Any) -> str:
    # days_to_delta: 2.1's autoresponse_graceperiod counts days.
    return _rest_timedelta(timedelta(days=value))


def _timestamp(value: Any) -> str:
    # import_config_pck: datetime.utcfromtimestamp(); REST renders naive UTC in ISO 8601.
    return datetime.fromtimestamp(value, timezone.utc).replace(tzinfo=None).isoformat()


def subject_prefix_adjust(value: str) -> str:
    """import21's subject_prefix conversion: 2.1 added a space after the stripped prefix itself."""
    stripped = value.strip()
    return f"{stripped} " if stripped else ""


def _autoresponder(value: Any) -> str:
    # autoresponder_mapping: 2.1's yes/no becomes respond_and_continue/none.
    return "respond_and_continue" if value else "none"


def _strings(value: Any) -> list[str]:
    # list_members_to_unicode: a list of text, item by item.
    return [str(item) for item in value]


def _language(value: Any) -> str:
    # check_language_code; clean_config_for_import has replaced codes Mailman 3 lacks.
    if value not in MAILMAN3_LANGUAGES:
        raise KeyError(value)
    return str(value)


# --- the mapping table ------------------------------------------------------------------------------

FATES = ("converted", "renamed", "dropped", "lossy", "internal")


Harmless = Callable[[Any, Mapping[str, Any]], bool]


def _empty(value: Any, config: Mapping[str, Any]) -> bool:
    """Nothing is lost by dropping an empty or switched-off value."""
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, tuple, dict)):
        return not value
    return value is None or value is False or value == 0


def _never(value: Any, config: Mapping[str, Any]) -> bool:
    return False


def _when(harmless_value: Any) -> Harmless:
    return lambda value, config: value == harmless_value


def _when_on(value: Any, config: Mapping[str, Any]) -> bool:
    return bool(value)


def _when_off(other_key: str) -> Harmless:
    """Harmless while another setting that gives this one its meaning is off."""
    return lambda value, config: not config.get(other_key)


@dataclass(frozen=True)
class Rule:
    """What import21 does with one Mailman 2 config key, and why."""

    fate: str  # one of FATES; "renamed" is importer.py's NAME_MAPPINGS
    target: str  # the Mailman 3 attribute, roster or template it ends up in; "" for nowhere
    why: str
    convert: Callable[[Any], Any] | None = None  # import21's conversion, as REST renders it
    secret: bool = False  # the value is a secret: the report gives no more than whether it is set
    # For dropped and lossy keys: whether this value loses nothing (the report then lists the key
    # as ignored). Default: empty and switched-off values.
    harmless: Harmless = _empty


def _converted(target: str, why: str, convert: Callable[[Any], Any] | None = _same) -> Rule:
    return Rule("converted", target, why, convert)


def _renamed(target: str, why: str, convert: Callable[[Any], Any] = _same) -> Rule:
    return Rule("renamed", target, why, convert)


def _dropped(why: str, *, secret: bool = False, harmless: Harmless = _empty) -> Rule:
    return Rule("dropped", "", why, None, secret, harmless)


def _lossy(target: str, why: str, convert: Callable[[Any], Any] | None = None, *,
           harmless: Harmless = _empty) -> Rule:
    return Rule("lossy", target, why, convert, harmless=harmless)


def _internal(why: str) -> Rule:
    return Rule("internal", "", why)


_NO_MM3_ATTRIBUTE = "Mailman 3 has no such list attribute, so import21 skips it"

# Every Mailman 2.1.39 list attribute MailList.Save() writes (MailList.InitVars and the InitVars
# of its mixins: Digester, SecurityManager, Archiver, ListAdmin, Bouncer, GatewayManager,
# Autoresponder), and what import21 makes of it.
LEGACY_KEYS: dict[str, Rule] = {
    # -- identity and texts --
    "real_name": _renamed("display_name", "NAME_MAPPINGS real_name → display_name; re-set through REST when "
                          "import21's decoding damaged it"),
    "description": _converted("description", "copied, then re-set through REST with the correctly decoded text "
                              "(one line: the REST validator refuses newlines)"),
    "info": _converted("info", "copied, then re-set through REST with the correctly decoded text"),
    "subject_prefix": _converted("subject_prefix", "subject_prefix_adjust: stripped, one space appended "
                                 "(2.1 added that space itself)", subject_prefix_adjust),
    "preferred_language": _converted("preferred_language", "check_language_code; codes Mailman 3 lacks are "
                                     "replaced in the import copy (import21 would stop)", _language),
    "available_languages": _dropped("Mailman 3 enables languages site-wide, not per list"),
    "encode_ascii_prefixes": _lossy("encode_ascii_prefixes", "2.1's 0 never / 1 always / 2 as needed becomes a "
                                    "boolean (2 turns into always)", _bool, harmless=lambda v, c: v != 2),
    "host_name": _dropped("the Mailman 3 domain is chosen by the migration (mailman create LIST@DOMAIN)",
                          harmless=_never),
    "web_page_url": _dropped("web pages are Postorius/HyperKitty's; old URLs are redirected separately",
                             harmless=_never),
    # -- templates: import_config_pck convert_to_uri writes these as list templates when they differ
    # from Mailman 3's default, after replacing the common %(...)s placeholders --
    "msg_header": _converted("template list:member:regular:header", "written as a list template if it differs "
                             "from the default; 2.1 %(...)s placeholders converted where import21 knows them", None),
    "msg_footer": _converted("template list:member:regular:footer", "written as a list template if it differs "
                             "from the default; 2.1 %(...)s placeholders converted where import21 knows them", None),
    "digest_header": _converted("template list:member:digest:header", "written as a list template if it "
                                "differs from the default", None),
    "digest_footer": _converted("template list:member:digest:footer", "written as a list template if it "
                                "differs from the default", None),
    "goodbye_msg": _converted("template list:user:notice:goodbye", "written as a list template if it differs "
                              "from the default", None),
    # importer.py omits it on purpose: 2.1 inserted it into a larger welcome text, and no place in
    # Mailman 3's welcome template corresponds.
    "welcome_msg": _dropped("import21 does not import the welcome text (set template "
                            "list:user:notice:welcome by hand if it matters)"),
    # -- rosters: _import_roster --
    "members": _converted("roster member", "regular members, address case from the value when it differs"),
    "digest_members": _converted("roster member", "digest members: delivery mode plaintext_digests with option "
                                 "bit 8, else mime_digests"),
    "user_options": _converted("member preferences", "bit 128 → moderation_action, 4 acknowledge_posts, "
                               "16 hide_address, 2 receive_own_postings off, 256 receive_list_copy off, "
                               "8 digest format; unmoderated members get moderation_action defer"),
    "delivery_status": _converted("member delivery_status", "1 unknown, 2 by_user, 3 by_moderator, 4 by_bounces; "
                                  "the time delivery was disabled is not kept"),
    "usernames": _converted("member display_name", "set on the address and the user"),
    "language": _converted("member preferred_language", "per-member language; codes Mailman 3 lacks are "
                           "replaced in the import copy"),
    "owner": _converted("roster owner", "owners, lowercased unless the address is a case-preserved member"),
    "moderator": _converted("roster moderator", "moderators, lowercased unless the address is a "
                            "case-preserved member"),
    "accept_these_nonmembers": _converted("roster nonmember", "addresses → nonmembers with moderation_action "
                                          "defer; ^regexps and @lists stay in accept_these_nonmembers"),
    "hold_these_nonmembers": _converted("roster nonmember", "addresses → nonmembers with moderation_action hold; "
                                        "^regexps stay in hold_these_nonmembers, @lists are dropped"),
    "reject_these_nonmembers": _converted("roster nonmember", "addresses → nonmembers with moderation_action "
                                          "reject; ^regexps stay in reject_these_nonmembers, @lists are dropped"),
    "discard_these_nonmembers": _converted("roster nonmember", "addresses → nonmembers with moderation_action "
                                           "discard; ^regexps stay in discard_these_nonmembers, @lists are "
                                           "dropped"),
    "ban_list": _converted("bans", "addresses and ^regexps; import21 drops regexps that do not compile, and "
                           "addresses a ban matches are not imported into any roster"),
    "passwords": _dropped("member passwords are not imported (importer.py: hashing them is too slow); "
                          "members set a new one in Postorius", secret=True, harmless=_never),
    "bounce_info": _dropped("bounce scores and re-enable cookies do not carry over"),
    # -- moderation --
    "default_member_moderation": _converted("default_member_action", "with member_moderation_action: "
                                            "moderated lists get that action, others defer"),
    "member_moderation_action": _converted("default_member_action", "0 hold, 1 reject, 2 discard; also the "
                                           "moderation_action of members with option bit 128"),
    "member_moderation_notice": _converted("member_moderation_notice", "copied"),
    "generic_nonmember_action": _renamed("default_nonmember_action", "nonmember_action_mapping: 0 accept → "
                                         "defer, 1 hold, 2 reject, 3 discard", _enum(MM2_NONMEMBER_ACTIONS)),
    "nonmember_rejection_notice": _converted("nonmember_rejection_notice", "copied"),
    "forward_auto_discards": _converted("forward_auto_discards", "copied", _bool),
    "emergency": _converted("emergency", "copied", _bool),
    "header_filter_rules": _converted("header_matches", "each regexp line split into header and pattern; "
                                      "action_to_chain maps the action"),
    "bounce_matching_headers": _converted("bounce_matching_headers", "copied as text"),
    "dmarc_moderation_action": _converted("dmarc_mitigate_action", "with from_is_list: the larger of the two "
                                          "decides, from_is_list winning makes it unconditional"),
    "from_is_list": _converted("dmarc_mitigate_action", "see dmarc_moderation_action"),
    "dmarc_quarantine_moderation_action": _lossy("", "Mailman 3 applies its DMARC action to p=quarantine "
                                                 "as well; 2.1 lists that exempted quarantine lose that",
                                                 harmless=_when_on),
    "dmarc_none_moderation_action": _lossy("", "Mailman 3 has one DMARC action for every policy; the "
                                           "p=none setting is dropped"),
    "dmarc_moderation_notice": _converted("dmarc_moderation_notice", "copied"),
    "dmarc_wrapped_message_text": _converted("dmarc_wrapped_message_text", "copied"),
    "dmarc_moderation_addresses": _renamed("dmarc_addresses", "NAME_MAPPINGS", _strings),
    "equivalent_domains": _lossy("", f"{_NO_MM3_ATTRIBUTE}: nonmember checks no longer treat these domains "
                                 "as equal"),
    "member_verbosity_threshold": _lossy("", f"{_NO_MM3_ATTRIBUTE}: no automatic moderation of members who "
                                         "post too much"),
    "member_verbosity_interval": _lossy("", f"{_NO_MM3_ATTRIBUTE} (see member_verbosity_threshold)",
                                        harmless=_when_off("member_verbosity_threshold")),
    "subscribe_auto_approval": _lossy("", f"{_NO_MM3_ATTRIBUTE}: addresses once approved automatically now "
                                      "go through subscription_policy"),
    # -- policies --
    "advertised": _converted("advertised", "copied", _bool),
    "subscribe_policy": _renamed("subscription_policy", "NAME_MAPPINGS; same numbers (0 open, 1 confirm, "
                                 "2 moderate, 3 confirm_then_moderate)", _enum(SUBSCRIPTION_POLICIES)),
    "unsubscribe_policy": _lossy("", "import21 has no mapping to unsubscription_policy: Mailman 3 keeps its "
                                 "default (confirm), also for lists that required approval",
                                 harmless=_when(0)),
    "private_roster": _converted("member_roster_visibility", "member_roster_visibility_mapping: 0 public, "
                                 "1 members, 2 moderators", _enum(MM2_ROSTER_VISIBILITY)),
    "obscure_addresses": _converted("obscure_addresses", "copied", _bool),
    "require_explicit_destination": _converted("require_explicit_destination", "copied", _bool),
    "acceptable_aliases": _converted("acceptable_aliases", "each line becomes a ^regexp alias, lowercased; "
                                     "'^<list name>@' is added"),
    "max_num_recipients": _converted("max_num_recipients", "copied"),
    "max_message_size": _converted("max_message_size", "copied (kilobytes in both)"),
    "max_days_to_hold": _converted("max_days_to_hold", "copied"),
    "administrivia": _converted("administrivia", "copied", _bool),
    "respond_to_post_requests": _converted("respond_to_post_requests", "copied", _bool),
    "new_member_options": _lossy("", f"{_NO_MM3_ATTRIBUTE}: new members get Mailman 3's default preferences"),
    "send_reminders": _dropped("Mailman 3 sends no monthly password reminders"),
    "umbrella_list": _lossy("", f"{_NO_MM3_ATTRIBUTE}: notices go to members directly"),
    "umbrella_member_suffix": _lossy("", f"{_NO_MM3_ATTRIBUTE} (see umbrella_list)",
                                     harmless=_when_off("umbrella_list")),
    "admin_member_chunksize": _internal("paging of 2.1's membership web page"),
    # -- replies and headers --
    "reply_goes_to_list": _converted("reply_goes_to_list", "ReplyToMunging: 0 no_munging, 1 point_to_list, "
                                     "2 explicit_header", _enum(REPLY_TO_MUNGING)),
    "reply_to_address": _converted("reply_to_address", "copied"),
    "first_strip_reply_to": _converted("first_strip_reply_to", "copied", _bool),
    "anonymous_list": _converted("anonymous_list", "copied", _bool),
    "include_rfc2369_headers": _converted("include_rfc2369_headers", "copied", _bool),
    "include_list_post_header": _renamed("allow_list_posts", "NAME_MAPPINGS", _bool),
    "include_sender_header": _lossy("", f"{_NO_MM3_ATTRIBUTE}: Mailman 3 always sets Sender",
                                    harmless=_when_on),
    "drop_cc": _lossy("", f"{_NO_MM3_ATTRIBUTE}: Cc headers are left alone"),
    "regular_exclude_lists": _lossy("", f"{_NO_MM3_ATTRIBUTE}: cross-list duplicate suppression is lost"),
    "regular_exclude_ignore": _lossy("", f"{_NO_MM3_ATTRIBUTE} (see regular_exclude_lists)"),
    "regular_include_lists": _lossy("", f"{_NO_MM3_ATTRIBUTE}: members of other lists no longer receive "
                                    "this list's posts"),
    "personalize": _converted("personalize", "same numbers (0 none, 1 individual, 2 full)",
                              _enum(PERSONALIZATION)),
    # -- notifications --
    "send_welcome_msg": _renamed("send_welcome_message", "NAME_MAPPINGS", _bool),
    "send_goodbye_msg": _renamed("send_goodbye_message", "NAME_MAPPINGS", _bool),
    "admin_immed_notify": _converted("admin_immed_notify", "copied", _bool),
    "admin_notify_mchanges": _converted("admin_notify_mchanges", "copied", _bool),
    # -- passwords --
    "password": _dropped("the list administrator password (a SHA1 hash) is not imported; owners log in to "
                         "Postorius with their own accounts", secret=True, harmless=_never),
    # importer.py would copy it into moderator_password, but 2.1 stored a bare SHA1 hex digest that
    # Mailman 3's passlib context cannot identify: an "Approved:" header then raises
    # UnknownHashError in the approved rule. The import copy leaves it out.
    "mod_password": _dropped("left out of the import copy: 2.1's SHA1 hex digest is not a hash Mailman 3 can "
                             "check (posts with an Approved: header would fail); set a new moderator password",
                             secret=True),
    "post_password": _dropped("Mailman 3 has no separate poster password", secret=True),
    # -- digests (Digester.InitVars) --
    "digestable": _lossy("", "import21 does not map it to digests_enabled: digests stay enabled",
                         harmless=_when_on),
    "nondigestable": _lossy("", f"{_NO_MM3_ATTRIBUTE}: a digest-only list also allows regular delivery",
                            harmless=_when_on),
    "digest_is_default": _converted("digest_is_default", "copied", _bool),
    "mime_is_default_digest": _lossy("", f"{_NO_MM3_ATTRIBUTE}: there is no list default for the digest "
                                     "format"),
    "digest_size_threshhold": _lossy("", "2.1's misspelt name matches no Mailman 3 attribute: "
                                     "digest_size_threshold keeps its default (30 KB)", harmless=_when(30)),
    "digest_send_periodic": _converted("digest_send_periodic", "copied", _bool),
    "digest_volume_frequency": _converted("digest_volume_frequency", "same numbers (0 yearly ... 4 daily)",
                                          _enum(DIGEST_FREQUENCIES)),
    "next_digest_number": _converted("next_digest_number", "copied"),
    "digest_last_sent_at": _converted("digest_last_sent_at", "seconds since the epoch → UTC time", _timestamp),
    "next_post_number": _internal("2.1's digest counter, superseded by post_id"),
    "one_last_digest": _lossy("", "members who left while digests were pending do not get a last digest"),
    "scrub_nondigest": _converted("scrub_nondigest", "copied", _bool),
    # -- archives --
    "archive": _converted("archive_policy", "with archive_private: off → never, else private or public"),
    "archive_private": _converted("archive_policy", "see archive"),
    "archive_volume_frequency": _lossy("", "HyperKitty has no archive volumes; the pipermail URL redirects "
                                       "need this value", harmless=_never),
    # -- bounces (Bouncer.InitVars) --
    "bounce_processing": _renamed("process_bounces", "NAME_MAPPINGS", _bool),
    "bounce_score_threshold": _converted("bounce_score_threshold", "copied into an integer column "
                                         "(2.1 allowed fractions)", int),
    "bounce_info_stale_after": _converted("bounce_info_stale_after", "seconds → interval", _seconds),
    "bounce_you_are_disabled_warnings": _converted("bounce_you_are_disabled_warnings", "copied"),
    "bounce_you_are_disabled_warnings_interval": _converted("bounce_you_are_disabled_warnings_interval",
                                                            "seconds → interval", _seconds),
    "bounce_unrecognized_goes_to_list_owner": _renamed("forward_unrecognized_bounces_to", "NAME_MAPPINGS; "
                                                       "yes → administrators, no → discard",
                                                       _enum(UNRECOGNIZED_BOUNCE_DISPOSITIONS)),
    "bounce_notify_owner_on_bounce_increment": _converted("bounce_notify_owner_on_bounce_increment", "copied",
                                                          _bool),
    "bounce_notify_owner_on_disable": _converted("bounce_notify_owner_on_disable", "copied", _bool),
    "bounce_notify_owner_on_removal": _converted("bounce_notify_owner_on_removal", "copied", _bool),
    # -- usenet (GatewayManager.InitVars) --
    "nntp_host": _dropped("Mailman 3 configures the news server site-wide ([nntp] in mailman.cfg)"),
    "linked_newsgroup": _converted("linked_newsgroup", "copied"),
    "gateway_to_news": _converted("gateway_to_news", "copied", _bool),
    "gateway_to_mail": _converted("gateway_to_mail", "copied", _bool),
    "news_moderation": _renamed("newsgroup_moderation", "NAME_MAPPINGS; same numbers",
                                _enum(NEWSGROUP_MODERATION)),
    "news_prefix_subject_too": _renamed("nntp_prefix_subject_too", "NAME_MAPPINGS", _bool),
    "usenet_watermark": _converted("usenet_watermark", "copied"),
    # -- autoresponder (Autoresponder.InitVars) --
    "autorespond_postings": _converted("autorespond_postings", "autoresponder_mapping: yes → "
                                       "respond_and_continue", _autoresponder),
    "autoresponse_postings_text": _converted("autoresponse_postings_text", "copied"),
    "autorespond_admin": _renamed("autorespond_owner", "NAME_MAPPINGS; yes → respond_and_continue",
                                  _autoresponder),
    "autoresponse_admin_text": _renamed("autoresponse_owner_text", "NAME_MAPPINGS"),
    "autorespond_requests": _converted("autorespond_requests", "same numbers (0 none, 1 respond_and_discard, "
                                       "2 respond_and_continue)", _enum(RESPONSE_ACTIONS)),
    "autoresponse_request_text": _converted("autoresponse_request_text", "copied"),
    "autoresponse_graceperiod": _renamed("autoresponse_grace_period", "NAME_MAPPINGS; days → interval", _days),
    "postings_responses": _internal("when each sender last got an autoresponse (rate limiting state)"),
    "admin_responses": _internal("when each sender last got an autoresponse (rate limiting state)"),
    "request_responses": _internal("when each sender last got an autoresponse (rate limiting state)"),
    "hold_and_cmd_autoresponses": _internal("per-sender counts of today's automatic replies"),
    # -- content filter --
    "filter_content": _converted("filter_content", "copied", _bool),
    "filter_mime_types": _renamed("filter_types", "NAME_MAPPINGS", _strings),
    "pass_mime_types": _renamed("pass_types", "NAME_MAPPINGS", _strings),
    "filter_filename_extensions": _renamed("filter_extensions", "NAME_MAPPINGS", _strings),
    "pass_filename_extensions": _renamed("pass_extensions", "NAME_MAPPINGS", _strings),
    "collapse_alternatives": _converted("collapse_alternatives", "copied", _bool),
    "convert_html_to_plaintext": _converted("convert_html_to_plaintext", "copied", _bool),
    "filter_action": _converted("filter_action", "filter_action_mapping: 0 discard, 1 reject, 2 forward, "
                                "3 preserve", _enum(MM2_FILTER_ACTIONS)),
    # -- topics: Mailman 3 has the columns but does not filter by topic --
    "topics": _lossy("topics", "copied as inert data: Mailman 3 does not filter posts by topic"),
    "topics_enabled": _lossy("topics_enabled", "copied, but Mailman 3 has no topic filtering", _bool),
    "topics_bodylines_limit": _lossy("topics_bodylines_limit", "copied, but Mailman 3 has no topic filtering",
                                     harmless=_when_off("topics_enabled")),
    "topics_userinterest": _lossy("", "members' topic subscriptions have no Mailman 3 counterpart"),
    # -- bookkeeping --
    "created_at": _converted("created_at", "seconds since the epoch → UTC time", _timestamp),
    "last_post_time": _renamed("last_post_at", "seconds since the epoch → UTC time", _timestamp),
    "post_id": _converted("post_id", "the next post's sequence number, copied", int),
    "volume": _converted("volume", "copied"),
    "next_request_id": _converted("next_request_id", "copied; pending requests themselves are in request.pck"),
    "data_version": _internal("2.1's config.pck schema version"),
    "_internal_name": _internal("the list's name, already given by LIST@DOMAIN"),
}

# Keys whose values are secrets: never shown, never scanned for text.
SECRET_KEYS = frozenset(key for key, rule in LEGACY_KEYS.items() if rule.secret)

# The 2.1 placeholders import21 rewrites in templates (import_config_pck, convert_placeholders), in
# its order: the first two and the listinfo line are only rewritten as these whole sequences.
# Whatever other %(...)s a template holds is sent out literally by Mailman 3.
HANDLED_PLACEHOLDERS = (
    "%(real_name)s@%(host_name)s",
    "%(real_name)s mailing list",
    "%(web_page_url)slistinfo%(cgiext)s/%(_internal_name)s\n",
    "%(real_name)s", "%(list_name)s", "%(description)s", "%(info)s", "%(cgiext)s", "%(user_address)s",
    "%(user_delivered_to)s", "%(user_password)s", "%(user_name)s",
)
_TEMPLATE_KEYS = ("msg_header", "msg_footer", "digest_header", "digest_footer", "goodbye_msg")
_LEFTOVER_PLACEHOLDER = re.compile(r"%\([^)]*\)[sd]")

# user_options bits _import_roster does not map (it maps 2, 4, 8, 16, 128 and 256).
_UNMAPPED_OPTION_BITS = {
    1: "2.0's disable-delivery bit (delivery_status holds the state since 2.1)",
    32: "suppress password reminders: Mailman 3 sends none",
    64: "receive posts matching no topic: Mailman 3 has no topics",
}


# --- expected differences for verification ---------------------------------------------------------

# Where Mailman 3's state after import21 cannot equal what Mailman 2 held: verification lists a
# difference in these fields as expected, with the reason, instead of as a failure. Keys are
# ListState paths: settings.<name>, roster.<role>.<field>, bans, nonmember_patterns.<attribute>.
LOSSY_FIELDS: dict[str, str] = {
    "settings.description": "REST keeps it to one line (newlines become spaces) and numeric character "
                            "references 2.1's web forms stored (&#8364;) are decoded",
    "settings.info": "numeric character references 2.1's web forms stored (&#8364;) are decoded",
    "settings.subject_prefix": "import21 strips it and appends exactly one space",
    "settings.default_nonmember_action": "2.1's accept becomes defer (the post goes on without moderation)",
    "settings.archive_policy": "2.1's archive_private is meaningless when archiving was off: both become never",
    "settings.preferred_language": "languages Mailman 3 lacks (eo, fa) are replaced by en, 2.1.0's big5/gb by "
                                   "zh_TW/zh_CN",
    "roster.owner.address": "import21 lowercases owners unless the address is also a case-preserved member "
                            "or already known to Mailman 3 (addresses are site-wide)",
    "roster.moderator.address": "lowercased like owners",
    "roster.nonmember.address": "lowercased like owners",
    "roster.member.address": "an address Mailman 3 already knew (from another list) keeps its stored case",
    "roster.member.display_name": "users are site-wide: an existing user's name is overwritten by the last "
                                  "import that had one, and bytes outside --charset are dropped",
    "roster.member.delivery_status": "unknown 2.1 status codes become enabled; the time delivery was "
                                     "disabled is lost",
    "roster.member.moderation_action": "import21 sets defer on every member with options, where 2.1 had "
                                       "'not moderated'",
    "roster.member": "members matched by a ban (list or site-wide) or with an address Mailman 3 finds "
                     "invalid are not imported",
    "bans": "ban regexps Python cannot compile are dropped",
    "nonmember_patterns.accept_these_nonmembers": "2.1's @list entries become @list@<new domain>",
    "nonmember_patterns.hold_these_nonmembers": "2.1's @list entries are dropped",
    "nonmember_patterns.reject_these_nonmembers": "2.1's @list entries are dropped",
    "nonmember_patterns.discard_these_nonmembers": "2.1's @list entries are dropped",
}


# --- changes made to the import copy ---------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One difference between config.pck and the copy handed to import21, and why it was made."""

    key: str  # e.g. "bounce_info", "language[bob@example.org]", "header_filter_rules[3]"
    action: str  # "dropped" (import21 does not read it), "removed", "replaced", "added"
    reason: str
    before: Any = None  # JSON-safe; secrets are never included
    after: Any = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Enum settings import21 converts by calling the Mailman 3 enum: a value outside it raises
# ValueError, which import_config_pck does not catch, and the whole import stops.
_ENUM_KEYS: dict[str, Mapping[int, str]] = {
    "reply_goes_to_list": REPLY_TO_MUNGING,
    "subscribe_policy": SUBSCRIPTION_POLICIES,
    "digest_volume_frequency": DIGEST_FREQUENCIES,
    "news_moderation": NEWSGROUP_MODERATION,
    "personalize": PERSONALIZATION,
    "autorespond_requests": RESPONSE_ACTIONS,
    "bounce_unrecognized_goes_to_list_owner": UNRECOGNIZED_BOUNCE_DISPOSITIONS,
}
# Values looked up outside import_config_pck's try (its DMARC and moderation code, and
# _import_roster): a KeyError there stops the import too. They are set to 2.1's default.
_LOOKUP_KEYS: dict[str, tuple[Mapping[int, str], int]] = {
    "member_moderation_action": (MM2_MEMBER_MODERATION_ACTIONS, 0),
    "dmarc_moderation_action": (DMARC_MITIGATIONS, 0),
    "from_is_list": (DMARC_MITIGATIONS, 0),
}
_DATETIME_KEYS = ("created_at", "last_post_time", "digest_last_sent_at")


def _in_enum(value: Any, table: Mapping[int, str]) -> bool:
    return isinstance(value, (int, bool)) and int(value) in table


def _contains_object(value: Any) -> bool:
    if isinstance(value, Mailman2Object):
        return True
    if isinstance(value, (list, tuple)):
        return any(_contains_object(item) for item in value)
    if isinstance(value, dict):
        return any(_contains_object(k) or _contains_object(v) for k, v in value.items())
    return False


def _known_language(code: Any, known: frozenset[str]) -> str:
    if isinstance(code, str) and code in known:
        return code
    replacement = LANGUAGE_REPLACEMENTS.get(code) if isinstance(code, str) else None
    return replacement if replacement in known else LANGUAGE_FALLBACK


# Each fix takes the import copy (changed in place) and the site's languages, and returns the
# changes it made.
Fix = Callable[[dict[str, Any], frozenset[str]], list[Change]]


def _fix_unread_keys(copy: dict[str, Any], languages: frozenset[str]) -> list[Change]:
    return [Change(key, "dropped", f"not imported by import21: {LEGACY_KEYS[key].why}", held)
            for key, held in leave_out(copy, LEGACY_KEYS)]


def _fix_mailman2_objects(copy: dict[str, Any], languages: frozenset[str]) -> list[Change]:
    # cli_import.py gives the unpickler stand-ins for Mailman.Bouncer._BounceInfo only; any other
    # Mailman 2 class fails with AttributeError and import21 stops.
    changes = []
    for key in [k for k, v in copy.items() if _contains_object(v)]:
        del copy[key]
        changes.append(Change(key, "removed", "holds an instance of a Mailman 2 class import21 cannot unpickle"))
    return changes


def _fix_languages(copy: dict[str, Any], languages: frozenset[str]) -> list[Change]:
    # check_language_code raises Import21Error ("Missing language") for the list's language and
    # for each member's.
    changes = []
    if "preferred_language" in copy:
        code = copy["preferred_language"]
        replacement = _known_language(code, languages)
        if replacement != code:
            copy["preferred_language"] = replacement
            changes.append(Change("preferred_language", "replaced", "Mailman 3 does not have this language",
                                  code, replacement))
    members = copy.get("language")
    if isinstance(members, dict):
        fixed = {address: _known_language(code, languages) for address, code in members.items()}
        for address, code in members.items():
            if fixed[address] != code:
                changes.append(Change(f"language[{address}]", "replaced", "Mailman 3 does not have this "
                                      "language", code, fixed[address]))
        if fixed != members:
            copy["language"] = fixed
    return changes


def _fix_enums(copy: dict[str, Any], languages: frozenset[str]) -> list[Change]:
    changes = []
    for key, table in _ENUM_KEYS.items():
        if key in copy and not _in_enum(copy[key], table):
            changes.append(Change(key, "removed", "outside Mailman 3's enum (import21 would stop with ValueError); "
                                  "Mailman 3 keeps its default", _summary_value(copy.pop(key)), None))
    for key, (table, default) in _LOOKUP_KEYS.items():
        if key in copy and not _in_enum(copy[key], table):
            changes.append(Change(key, "replaced", "unknown value (import21 would stop with KeyError); 2.1's "
                                  "default instead", _summary_value(copy[key]), default))
            copy[key] = default
    moderated = any(isinstance(bits, int) and bits & 128 for bits in _mapping(copy, "user_options").values())
    if "member_moderation_action" not in copy and (copy.get("default_member_moderation") or moderated):
        copy["member_moderation_action"] = 0
        changes.append(Change("member_moderation_action", "added", "import21 needs it for moderated members "
                              "(KeyError otherwise); 2.1's default, hold", None, 0))
    return changes


def _fix_scalars(copy: dict[str, Any], languages: frozenset[str]) -> list[Change]:
    # subject_prefix_adjust calls .strip(); utcfromtimestamp needs a number. Neither error is caught.
    changes = []
    if "subject_prefix" in copy and not isinstance(copy["subject_prefix"], str):
        changes.append(Change("subject_prefix", "removed", "not text", _summary_value(copy.pop("subject_prefix"))))
    for key in _DATETIME_KEYS:
        if key in copy and not isinstance(copy[key], (int, float)):
            changes.append(Change(key, "removed", "not a timestamp", _summary_value(copy.pop(key))))
    return changes


def _fix_blank_entries(copy: dict[str, Any], languages: frozenset[str]) -> list[Change]:
    # import_config_pck tests addr[0] of every sender filter entry: an empty one raises IndexError.
    # A blank ban would be stored as a ban of the empty address.
    changes = []
    for key in (*mm2.NONMEMBER_ACTIONS, "ban_list"):
        entries = copy.get(key)
        if isinstance(entries, list):
            kept = [entry for entry in entries if isinstance(entry, str) and entry.strip()]
            if len(kept) != len(entries):
                copy[key] = kept
                changes.append(Change(key, "removed", "blank entries", len(entries), len(kept)))
    return changes


def _fix_header_filter_rules(copy: dict[str, Any], languages: frozenset[str]) -> list[Change]:
    # import_config_pck unpacks (patterns, action, empty) and splits patterns into lines. Rules of
    # 2.1 releases before the 'empty' flag have two items.
    rules = copy.get("header_filter_rules")
    if not isinstance(rules, list):
        return []
    kept, changes = [], []
    for i, rule in enumerate(rules):
        if isinstance(rule, (list, tuple)) and len(rule) in (2, 3) and isinstance(rule[0], str):
            kept.append(rule if len(rule) == 3 else (rule[0], rule[1], False))
            if len(rule) == 2:
                changes.append(Change(f"header_filter_rules[{i}]", "replaced", "rule without the 'empty' flag"))
        else:
            changes.append(Change(f"header_filter_rules[{i}]", "removed", "not (patterns, action, empty)",
                                  _summary_value(rule), None))
    if changes:
        copy["header_filter_rules"] = kept
    return changes


def _fix_member_records(copy: dict[str, Any], languages: frozenset[str]) -> list[Change]:
    # _import_roster reads delivery_status[address][0] and tests user_options[address] & 128.
    changes = []
    statuses = copy.get("delivery_status")
    if isinstance(statuses, dict):
        fixed: dict[Any, Any] = {}
        for address, entry in statuses.items():
            if isinstance(entry, (tuple, list)) and entry:
                fixed[address] = entry
            elif isinstance(entry, int):
                fixed[address] = (entry, 0.0)
                changes.append(Change(f"delivery_status[{address}]", "replaced", "a bare status code instead of "
                                      "(status, time)", entry, [entry, 0.0]))
            else:
                changes.append(Change(f"delivery_status[{address}]", "removed", "not (status, time)",
                                      _summary_value(entry), None))
        if changes:
            copy["delivery_status"] = fixed
    options = copy.get("user_options")
    if isinstance(options, dict):
        numbers = {address: bits for address, bits in options.items() if isinstance(bits, int)}
        for address in options.keys() - numbers.keys():
            changes.append(Change(f"user_options[{address}]", "removed", "not a number",
                                  _summary_value(options[address]), None))
        if len(numbers) != len(options):
            copy["user_options"] = numbers
    return changes


# What clean_config_for_import changes, in order: first the keys import21 (Mailman 3.3.10) never
# reads, then each thing it stops on or stores wrongly (tests/mailman/test_convert.py shows the real
# import21 failing on each).
IMPORT_FIXES: tuple[Fix, ...] = (
    _fix_unread_keys,
    _fix_mailman2_objects,
    _fix_languages,
    _fix_enums,
    _fix_scalars,
    _fix_blank_entries,
    _fix_header_filter_rules,
    _fix_member_records,
)


def _clean(config: Mapping[str, Any], known_languages: frozenset[str]) -> tuple[dict[str, Any], list[Change]]:
    """The import copy and the changes made to it (see clean_config_for_import)."""
    copy = dict(config)
    changes: list[Change] = []
    for fix in IMPORT_FIXES:
        changes.extend(fix(copy, known_languages))
    return copy, changes


def clean_config_for_import(
    config: Mapping[str, Any], *, list_name: str, known_languages: frozenset[str] = MAILMAN3_LANGUAGES
) -> tuple[bytes, list[Change]]:
    """The config.pck to hand to import21, and every change made to it.

    Leaves out every key import21 does not read (`unread_keys`: member, list and poster passwords,
    bounce_info, welcome_msg, bookkeeping, the unusable moderator password), and replaces what
    would stop import21 (unknown languages, out-of-range enum values, blank sender-filter entries,
    malformed header filter rules, delivery_status and user_options entries). Every other value
    is written back with its original bytes. `known_languages` is the target site's enabled
    languages when it has more than Mailman's defaults.
    """
    copy, changes = _clean(config, known_languages)
    return dumps_py2(copy), changes


# --- charsets and what import21 sees ----------------------------------------------------------------


def _byte_strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(where, text) for every Python 2 byte string in value (latin-1 view), keys included."""
    if isinstance(value, Py2Unicode):
        return
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _byte_strings(item, f"{path}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            label = key if isinstance(key, str) else repr(key)
            yield from _byte_strings(key, f"{path}[{label}]")
            yield from _byte_strings(item, f"{path}[{label}]")


def _imported_byte_strings(config: Mapping[str, Any]) -> Iterator[tuple[str, bytes]]:
    """Non-ASCII byte strings in the keys import21 reads (secrets and bookkeeping left out)."""
    for key, value in config.items():
        rule = LEGACY_KEYS.get(key)
        if key in SECRET_KEYS or key == "bounce_info" or (rule is not None and rule.fate in ("dropped", "internal")):
            continue
        for where, text in _byte_strings(value, key):
            try:
                raw = text.encode("latin-1")
            except UnicodeEncodeError:
                continue
            if not raw.isascii():
                yield where, raw


def _decodes(raw: bytes, charset: str) -> bool:
    try:
        raw.decode(charset)
    except (UnicodeDecodeError, LookupError):
        return False
    return True


def import_charset(config: Mapping[str, Any]) -> str:
    """The --charset for `mailman import21` of this list.

    Start from the charset of the list's preferred language (`mm2.charset_for`), then look at the
    bytes: import21 drops whatever does not decode (errors='ignore'), so the charset that decodes
    every stored text wins.
    - UTF-8 when every non-ASCII text is valid UTF-8: Debian's 2.1.16+ packages stored UTF-8 for
      every language, and multi-byte UTF-8 rarely forms by accident in single-byte or EUC text.
    - else the language's charset, else the charset early 2.1 releases used for it (koi8-r for
      Russian), when that decodes everything.
    - us-ascii (English) is never returned: it would drop every accented letter. ASCII-only lists
      get utf-8 (import21's own default); others iso-8859-1, which maps every byte to some
      character so that nothing silently disappears.
    """
    language = config.get("preferred_language")
    language = language if isinstance(language, str) and language else "en"
    declared = mm2.charset_for(language) or "utf-8"
    ascii_only = declared == "us-ascii"
    texts = [raw for _, raw in _imported_byte_strings(config)]
    if not texts:
        return "utf-8" if ascii_only else declared
    if all(_decodes(raw, "utf-8") for raw in texts):
        return "utf-8"
    for candidate in (declared, mm2.EARLIER_CHARSETS.get(language)):
        if candidate and candidate != "us-ascii" and all(_decodes(raw, candidate) for raw in texts):
            return candidate
    return "iso-8859-1" if ascii_only else declared


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"unexpected global {module}.{name} in the import copy")


def import21_view(config: Mapping[str, Any], *, charset: str | None = None,
                  known_languages: frozenset[str] = MAILMAN3_LANGUAGES) -> dict[str, Any]:
    """The dict import21 works on: the import copy unpickled the way cli_import.py does it."""
    copy, _ = _clean(config, known_languages)
    charset = charset or import_charset(config)
    return _NoGlobals(io.BytesIO(dumps_py2(copy)), encoding=charset, errors="ignore").load()


# --- settings ---------------------------------------------------------------------------------------

_CHAR_REF = re.compile(r"&#(?:([0-9]{1,7})|[xX]([0-9a-fA-F]{1,6}));")


def decode_char_refs(text: str) -> str:
    """Numeric character references → characters.

    2.1's web forms were served in the list's charset; browsers sent characters outside it as
    `&#8364;`, and Mailman 2 stored that as typed and showed it as HTML. Mailman 3 shows plain text.
    """

    def replace(match: re.Match[str]) -> str:
        code = int(match.group(1)) if match.group(1) else int(match.group(2), 16)
        if code == 0 or 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
            return match.group(0)
        return chr(code)

    return _CHAR_REF.sub(replace, text)


def _one_line(text: str) -> str:
    # REST's description validator (no_newlines_validator) refuses any newline.
    lines = text.splitlines()
    if len(lines) <= 1 and not text.endswith(("\n", "\r")):
        return text
    return " ".join(line.strip() for line in lines if line.strip())


def rest_fixups(config: Mapping[str, Any], *, list_name: str) -> dict[str, Any]:
    """Settings to PATCH through REST after import21, with their values (REST form).

    description and info always (correctly decoded, character references resolved, description on
    one line); display_name and subject_prefix only when import21's decoding of them differs from
    the correct text.
    """
    summary = mm2.summarize_config(config, list_name=list_name)
    seen = import21_view(config)
    fixes: dict[str, Any] = {
        "description": _one_line(decode_char_refs(summary.description)),
        "info": decode_char_refs(summary.info),
    }
    if isinstance(seen.get("real_name"), str) and summary.real_name and seen["real_name"] != summary.real_name:
        fixes["display_name"] = summary.real_name
    if isinstance(seen.get("subject_prefix"), str):
        correct = subject_prefix_adjust(summary.subject_prefix)
        if subject_prefix_adjust(seen["subject_prefix"]) != correct:
            fixes["subject_prefix"] = correct
    return fixes


def _archive_policy(seen: Mapping[str, Any]) -> str:
    # A missing archive_private counts as private "for maximum safety" (import_config_pck).
    if not seen.get("archive"):
        return "never"
    return "private" if seen.get("archive_private", True) else "public"


def _default_member_action(seen: Mapping[str, Any]) -> str:
    if bool(seen.get("default_member_moderation", 0)):
        return MM2_MEMBER_MODERATION_ACTIONS[seen.get("member_moderation_action")]
    return "defer"


def _dmarc(seen: Mapping[str, Any]) -> tuple[str, bool]:
    from_is_list = seen.get("from_is_list", 0)
    moderation = seen.get("dmarc_moderation_action", 0)
    if from_is_list > moderation:
        return DMARC_MITIGATIONS[from_is_list], True
    return DMARC_MITIGATIONS[moderation], False


def _import21_settings(seen: Mapping[str, Any], list_name: str) -> dict[str, Any]:
    """Every Mailman 3 attribute import21 sets from `seen`, in REST form."""
    settings: dict[str, Any] = {}
    for key, value in seen.items():
        rule = LEGACY_KEYS.get(key)
        if rule is None or rule.convert is None or not rule.target or rule.fate in ("dropped", "internal"):
            continue
        try:
            settings[rule.target] = rule.convert(value)
        except (KeyError, TypeError, ValueError):
            continue
    settings["archive_policy"] = _archive_policy(seen)
    settings["default_member_action"] = _default_member_action(seen)
    settings["dmarc_mitigate_action"], settings["dmarc_mitigate_unconditionally"] = _dmarc(seen)
    return settings


def expected_settings(config: Mapping[str, Any], *, list_name: str) -> dict[str, Any]:
    """The COMPARED_SETTINGS as GET /3.1/lists/<id>/config shows them after import21 and the fix-ups."""
    settings = create_defaults(list_name)
    imported = _import21_settings(import21_view(config), list_name)
    settings.update({name: value for name, value in imported.items() if name in settings})
    settings.update(rest_fixups(config, list_name=list_name))
    return {name: settings[name] for name in COMPARED_SETTINGS}


# --- rosters ----------------------------------------------------------------------------------------

_VALID_LOCAL = re.compile(r"[-0-9a-z!#$%&'*+./=?@_`{}~]", re.IGNORECASE)
_VALID_DOMAIN = re.compile(r"[-a-z0-9]", re.IGNORECASE)


def mailman3_accepts(address: str) -> bool:
    """Whether Mailman 3.3.10's email validator (mailman/email/validate.py) takes the address.

    The local part may only use letters, digits and -!#$%&'*+./=?@_`{}~ (surrounding quotes
    removed first); the domain needs two or more dot-separated labels of letters, digits and
    hyphens, none empty or starting with a hyphen. International domains fail.
    """
    if not address:
        return False
    local, at, domain = address.rpartition("@")
    if not at:
        return False
    local = re.sub(r'^"(.*)"$', r"\1", local)
    if not local or _VALID_LOCAL.sub("", local):
        return False
    labels = domain.split(".")
    if len(labels) < 2:
        return False
    return all(label and label[0] != "-" and not _VALID_DOMAIN.sub("", label) for label in labels)


def _mapping(config: Mapping[str, Any], key: str) -> Mapping[Any, Any]:
    value = config.get(key)
    return value if isinstance(value, Mapping) else {}


def _sequence(config: Mapping[str, Any], key: str) -> list[Any]:
    value = config.get(key)
    return list(value) if isinstance(value, (list, tuple)) else []


def import21_bans(seen: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(bans import21 stores, ^regexps it drops because Python cannot compile them)."""
    stored: list[str] = []
    invalid: list[str] = []
    for entry in _sequence(seen, "ban_list"):
        text = str(entry)
        if text.startswith("^"):
            try:
                re.compile(text)
            except re.error:
                invalid.append(text)
                continue
        if text not in stored:
            stored.append(text)
    return stored, invalid


def _banned(email: str, bans: list[str]) -> bool:
    # BanManager.is_banned: an exact (case-sensitive) match, or a ^pattern matched with re.match
    # and IGNORECASE. Site-wide bans are unknown here.
    return any(ban == email or (ban.startswith("^") and re.match(ban, email, re.IGNORECASE)) for ban in bans)


@dataclass
class _RosterResult:
    roster: dict[tuple[str, str], Membership]
    skipped: list[tuple[str, str, str]]  # (role, address, why)


def _import21_roster(seen: Mapping[str, Any]) -> _RosterResult:
    """_import_roster run on `seen` for members, owners, moderators and the four nonmember lists."""
    regular = _mapping(seen, "members")
    digest = _mapping(seen, "digest_members")
    merged = {**regular, **digest}
    options = _mapping(seen, "user_options")
    statuses = _mapping(seen, "delivery_status")
    names = _mapping(seen, "usernames")
    bans, _ = import21_bans(seen)
    created: dict[str, str] = {}  # lowercased → stored address; Mailman keeps the first form it saw
    display: dict[str, str] = {}
    roster: dict[tuple[str, str], Membership] = {}
    skipped: list[tuple[str, str, str]] = []

    def moderated_action() -> str:
        return MM2_MEMBER_MODERATION_ACTIONS[seen.get("member_moderation_action")]

    def import_role(role: str, entries: Any, action: str | None = None) -> None:
        for entry in entries:
            email = str(entry).lower()
            if _banned(email, bans):
                skipped.append((role, email, "banned"))
                continue
            if (role, email) in roster:
                skipped.append((role, email, "listed twice"))
                continue
            if email not in created:
                original = merged.get(email, 0)
                original = str(original) if original != 0 and original is not None else email
                if not mailman3_accepts(original):
                    original = email
                if not mailman3_accepts(original):
                    skipped.append((role, email, "address Mailman 3 finds invalid"))
                    continue
                created[email] = original
            if email in names:
                display[email] = str(names[email]) if names[email] else ""
            # Member.__init__: owners and moderators start with accept, others with no action.
            moderation = "accept" if role in ("owner", "moderator") else None
            prefs = options.get(email)
            if prefs is not None:
                moderation = moderated_action() if prefs & 128 else "defer"
            elif action is not None:
                moderation = action
            mode = status = None
            if role == "member":
                # A key that is not lowercased in config.pck matches neither roster here: import21
                # then sets no mode and Mailman 3 reports its default, regular.
                mode = "regular"
                if email not in regular and email in digest:
                    mode = "plaintext_digests" if prefs is not None and prefs & 8 else "mime_digests"
                entry_status = statuses.get(email, (0, 0))
                code = entry_status[0] if isinstance(entry_status, (tuple, list)) and entry_status else 0
                status = MM2_DELIVERY_STATUSES.get(code, "enabled")
            roster[(role, email)] = Membership(created[email], role, delivery_mode=mode, delivery_status=status,
                                               moderation_action=moderation)

    import_role("member", set(regular) | set(digest))
    import_role("owner", _sequence(seen, "owner"))
    import_role("moderator", _sequence(seen, "moderator"))
    for key, action in mm2.NONMEMBER_ACTIONS.items():
        addresses = [e for e in _sequence(seen, key) if isinstance(e, str) and e and e[0] not in "^@"]
        # MM 2.1 accept is MM 3 defer (import_config_pck).
        import_role("nonmember", addresses, "defer" if action == "accept" else action)
    for (role, email), membership in roster.items():
        membership.display_name = display.get(email, "")
    return _RosterResult(roster, skipped)


def _nonmember_patterns(seen: Mapping[str, Any], mail_host: str) -> dict[str, list[str]]:
    patterns: dict[str, list[str]] = {}
    for key, action in mm2.NONMEMBER_ACTIONS.items():
        kept: list[str] = []
        for entry in _sequence(seen, key):
            if not isinstance(entry, str):
                continue
            if entry.startswith("^"):
                kept.append(entry)
            elif entry.startswith("@") and action == "accept":
                # import_config_pck: "This needs to be a fqdn-listname", in the new list's domain.
                kept.append(f"{entry}@{mail_host}")
        patterns[key] = kept
    return patterns


def expected_state(config: Mapping[str, Any], *, fqdn_listname: str) -> ListState:
    """What Mailman 3 holds for the list after import21 (of the cleaned copy) and the REST fix-ups."""
    list_name, _, mail_host = fqdn_listname.partition("@")
    seen = import21_view(config)
    state = ListState(fqdn_listname=fqdn_listname, settings=expected_settings(config, list_name=list_name))
    state.roster = _import21_roster(seen).roster
    state.bans = set(import21_bans(seen)[0])
    state.nonmember_patterns = _nonmember_patterns(seen, mail_host)
    return state


# --- the report -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportEntry:
    """One finding of the conversion report."""

    key: str  # the Mailman 2 key, with [index] or [address] for a part of it
    target: str  # where it ends up in Mailman 3; "" for nowhere
    reason: str
    before: Any = None  # JSON-safe; secrets are never included
    after: Any = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ConversionReport:
    """What becomes of one list's Mailman 2 configuration in Mailman 3, key by key."""

    list_name: str
    charset: str  # the --charset import21 is run with
    converted: list[ReportEntry] = field(default_factory=list)
    renamed: list[ReportEntry] = field(default_factory=list)
    dropped: list[ReportEntry] = field(default_factory=list)
    lossy: list[ReportEntry] = field(default_factory=list)
    ignored: list[ReportEntry] = field(default_factory=list)  # Mailman 2 bookkeeping
    unknown: list[ReportEntry] = field(default_factory=list)  # keys the tables do not know
    changes: list[Change] = field(default_factory=list)  # made to the import copy
    fixups: dict[str, Any] = field(default_factory=dict)  # settings re-set through REST
    notes: list[str] = field(default_factory=list)

    def sections(self) -> dict[str, list[ReportEntry]]:
        return {"converted": self.converted, "renamed": self.renamed, "dropped": self.dropped,
                "lossy": self.lossy, "ignored": self.ignored, "unknown": self.unknown}

    def covered_keys(self) -> set[str]:
        """Top-level Mailman 2 keys some section speaks about."""
        return {re.split(r"[\[.]", entry.key, maxsplit=1)[0] for entries in self.sections().values()
                for entry in entries}

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"list_name": self.list_name, "charset": self.charset}
        data.update({name: [entry.to_dict() for entry in entries] for name, entries in self.sections().items()})
        data["changes"] = [change.to_dict() for change in self.changes]
        data["fixups"] = self.fixups
        data["notes"] = list(self.notes)
        return data


def _summary_value(value: Any, *, limit: int = 20) -> Any:
    """A JSON-safe rendering of a Mailman 2 value; big containers become counts."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, Mailman2Object):
        return f"<{value.legacy_class}>"
    if isinstance(value, (list, tuple)):
        if len(value) > limit:
            return f"{len(value)} entries"
        return [_summary_value(item, limit=limit) for item in value]
    if isinstance(value, dict):
        if len(value) > limit:
            return f"{len(value)} entries"
        return {str(k): _summary_value(v, limit=limit) for k, v in value.items()}
    return repr(value)


def _secret_summary(value: Any) -> str:
    if isinstance(value, dict):
        return f"{len(value)} entries"
    return "set" if value else "not set"


def _text(value: Any, charset: str) -> Any:
    """The text of a Python 2 value decoded strictly with charset; otherwise import21's view."""
    if isinstance(value, str) and not isinstance(value, Py2Unicode):
        try:
            return mm2.decode_text(value, charset)
        except (UnicodeDecodeError, LookupError):
            return value.encode("latin-1", "replace").decode(charset, "ignore")
    if isinstance(value, (list, tuple)):
        return [_text(item, charset) for item in value]
    return value


def _roster_findings(config: Mapping[str, Any], seen: Mapping[str, Any], report: ConversionReport) -> None:
    result = _import21_roster(seen)
    counts: dict[str, int] = {}
    for role, _ in result.roster:
        counts[role] = counts.get(role, 0) + 1
    for role, email, why in result.skipped:
        if why != "listed twice":
            report.lossy.append(ReportEntry(f"{_roster_key(config, role, email)}[{email}]", f"roster {role}",
                                            f"not imported: {why}", email, None))
    # Case: owners, moderators and nonmembers are stored lowercased (_import_roster), unless the
    # address was created earlier as a case-preserved member.
    sources = (("owner", "owner"), ("moderator", "moderator"), *((k, "nonmember") for k in mm2.NONMEMBER_ACTIONS))
    for key, role in sources:
        for entry in _sequence(seen, key):
            if not isinstance(entry, str) or entry[:1] in ("^", "@"):
                continue
            membership = result.roster.get((role, entry.lower()))
            if membership is not None and membership.address != entry:
                report.lossy.append(ReportEntry(f"{key}[{entry}]", f"roster {role}", "address stored in another "
                                                "case", entry, membership.address))
    both = set(_mapping(seen, "members")) & set(_mapping(seen, "digest_members"))
    for email in sorted(both, key=str):
        report.lossy.append(ReportEntry(f"digest_members[{email}]", "roster member", "listed as regular and digest "
                                        "member: import21 makes it a regular member", "digest", "regular"))
    for key in mm2.NONMEMBER_ACTIONS:
        for entry in _sequence(seen, key):
            if isinstance(entry, str) and entry.startswith("@") and key != "accept_these_nonmembers":
                report.lossy.append(ReportEntry(f"{key}[{entry}]", "", "@list entries are imported only for "
                                                "accept_these_nonmembers", entry, None))
            elif isinstance(entry, str) and entry.startswith("@"):
                report.lossy.append(ReportEntry(f"{key}[{entry}]", "accept_these_nonmembers", "becomes a "
                                                "reference to a list in the new domain", entry,
                                                f"{entry}@<list domain>"))
    _, invalid = import21_bans(seen)
    for pattern in invalid:
        report.lossy.append(ReportEntry(f"ban_list[{pattern}]", "bans", "regular expression does not compile; "
                                        "import21 drops it", pattern, None))
    bits: dict[int, int] = {}
    for value in _mapping(seen, "user_options").values():
        for bit in _UNMAPPED_OPTION_BITS:
            if isinstance(value, int) and value & bit:
                bits[bit] = bits.get(bit, 0) + 1
    for bit, count in sorted(bits.items()):
        report.lossy.append(ReportEntry(f"user_options[bit {bit}]", "", _UNMAPPED_OPTION_BITS[bit], count, None))
    unknown_codes = sorted({str(e[0]) for e in _mapping(seen, "delivery_status").values()
                            if isinstance(e, (tuple, list)) and e and e[0] not in MM2_DELIVERY_STATUSES})
    if unknown_codes:
        report.lossy.append(ReportEntry("delivery_status", "member delivery_status", "unknown status codes are "
                                        "left unset (shown as enabled)", unknown_codes, "enabled"))
    report.notes.append("rosters after import: "
                        + ", ".join(f"{role}s: {count}" for role, count in sorted(counts.items())))


def _roster_key(config: Mapping[str, Any], role: str, email: str) -> str:
    if role == "member":
        return "digest_members" if email in _mapping(config, "digest_members") else "members"
    if role in ("owner", "moderator"):
        return role
    for key in mm2.NONMEMBER_ACTIONS:
        if any(isinstance(e, str) and e.lower() == email for e in _sequence(config, key)):
            return key
    return "members"


def _header_filter_entries(seen: Mapping[str, Any], report: ConversionReport) -> list[dict[str, Any]]:
    """import_config_pck's header_filter_rules → header_matches, with what it skips."""
    matches: list[dict[str, Any]] = []
    for i, rule in enumerate(_sequence(seen, "header_filter_rules")):
        patterns, action, _ = rule
        where = f"header_filter_rules[{i}]"
        if action not in MM2_HEADER_FILTER_CHAINS:
            report.lossy.append(ReportEntry(where, "", "action 'approve' (or unknown) has no Mailman 3 chain: "
                                            "the rule is skipped", {"patterns": patterns, "action": action}, None))
            continue
        chain = MM2_HEADER_FILTER_CHAINS[action]
        if chain is None:
            report.lossy.append(ReportEntry(where, "header_matches", "2.1's defer (no action) becomes Mailman 3's "
                                            "default header action: [antispam] jump_chain, hold by default",
                                            "defer", "hold"))
        for line in patterns.splitlines():
            if not line.strip():
                continue
            for separator in (": ", ":.*", ":.", ":"):
                header, found, pattern = line.partition(separator)
                if found:
                    break
            else:
                report.lossy.append(ReportEntry(where, "", "a pattern without 'Header:' cannot become a header "
                                                "match and is skipped", line, None))
                continue
            header = header.strip().lstrip("^").lower().replace("\\", "")
            if not header:
                report.lossy.append(ReportEntry(where, "", "no header name in the pattern; skipped", line, None))
                continue
            pattern = pattern or ".*"
            try:
                re.compile(pattern)
            except re.error:
                report.lossy.append(ReportEntry(where, "", "pattern does not compile; skipped", line, None))
                continue
            matches.append({"header": header, "pattern": pattern, "action": chain})
    return matches


def _template_leftovers(text: str) -> list[str]:
    """The %(...)s placeholders import21 leaves in a 2.1 template."""
    text = text.replace("\r\n", "\n")
    for placeholder in HANDLED_PLACEHOLDERS:
        text = text.replace(placeholder, "")
    return sorted(set(_LEFTOVER_PLACEHOLDER.findall(text)))


def conversion_report(config: Mapping[str, Any], *, list_name: str) -> ConversionReport:
    """Key by key: what import21 (with our clean-up and fix-ups) makes of the list's configuration.

    JSON-serialisable through `to_dict()`. Secrets (list and member passwords, bounce cookies)
    appear only as "set"/"not set" or counts.
    """
    charset = import_charset(config)
    cleaned, changes = _clean(config, MAILMAN3_LANGUAGES)
    seen = import21_view(config, charset=charset)
    fixups = rest_fixups(config, list_name=list_name)
    settings = create_defaults(list_name)
    settings.update(_import21_settings(seen, list_name))
    settings.update(fixups)
    report = ConversionReport(list_name=list_name, charset=charset, changes=changes, fixups=fixups)
    roster_counts: dict[str, int] = {}
    for role, _ in _import21_roster(seen).roster:
        roster_counts[role] = roster_counts.get(role, 0) + 1
    header_matches = _header_filter_entries(seen, report)

    for key in config:
        rule = LEGACY_KEYS.get(key)
        value = config[key]
        if rule is None:
            report.unknown.append(ReportEntry(key, "", "not in the mapping tables: import21 copies it only if a "
                                              "Mailman 3 list attribute has this name",
                                              _summary_value(_text(value, charset)), None))
            continue
        before = _secret_summary(value) if rule.secret else _summary_value(_text(value, charset))
        if key in ("passwords", "bounce_info", "hold_and_cmd_autoresponses", "usernames", "language",
                   "user_options", "delivery_status", "members", "digest_members"):
            before = f"{len(value)} entries" if isinstance(value, dict) else _summary_value(value)
        if rule.fate == "internal":
            report.ignored.append(ReportEntry(key, "", rule.why))
            continue
        if rule.fate in ("dropped", "lossy") and rule.harmless(value, config):
            report.ignored.append(ReportEntry(key, rule.target, f"{rule.why}; nothing is lost with this list's "
                                              "value", before, None))
            continue
        if rule.fate == "dropped":
            report.dropped.append(ReportEntry(key, "", rule.why, before, None))
            continue
        after: Any = None
        if key in cleaned and rule.target in settings:
            after = _summary_value(settings[rule.target])
        elif key == "header_filter_rules":
            after = _summary_value(header_matches)
        elif rule.target.startswith("roster "):
            after = f"{roster_counts.get(rule.target.split()[1], 0)} {rule.target.split()[1]}s in the list"
        entry = ReportEntry(key, rule.target, rule.why, before, after)
        {"converted": report.converted, "renamed": report.renamed, "lossy": report.lossy}[rule.fate].append(entry)

    if "encode_ascii_prefixes" in config and config["encode_ascii_prefixes"] == 2:
        report.notes.append("encode_ascii_prefixes 'as needed' (2) becomes 'always' in Mailman 3")
    if config.get("generic_nonmember_action") == 0:
        report.notes.append("generic_nonmember_action accept becomes default_nonmember_action defer: posts of "
                            "nonmembers go on through the other rules instead of being accepted outright")
    for key in _TEMPLATE_KEYS:
        if isinstance(seen.get(key), str):
            leftovers = _template_leftovers(seen[key])
            if leftovers:
                report.lossy.append(ReportEntry(key, LEGACY_KEYS[key].target, "placeholders Mailman 3 does not "
                                                "expand stay in the text literally", leftovers, None))
    if "welcome_msg" in config and isinstance(config["welcome_msg"], str) and config["welcome_msg"].strip():
        report.notes.append("welcome_msg has text that import21 does not import")
    for name, value in fixups.items():
        if seen.get(LEGACY_SOURCE.get(name, name)) != value:
            report.notes.append(f"{name}: import21 stores {seen.get(LEGACY_SOURCE.get(name, name))!r}, "
                                f"re-set through REST to {value!r}")

    report.notes += [f"dropped: {change.key} ({change.before}, not imported by import21)" for change in changes
                     if change.action == "dropped" and change.key in SECRET_KEYS and change.before != "not set"]
    _roster_findings(config, seen, report)
    _charset_losses(cleaned, charset, fixups, report)
    return report


# Where the REST fix-ups put back a text import21 damaged: Mailman 2 key → Mailman 3 setting.
_FIXED_BY_REST = {"description": "description", "info": "info", "real_name": "display_name",
                  "subject_prefix": "subject_prefix"}
# The other way round, for the fix-ups: Mailman 3 setting → the Mailman 2 key it comes from.
LEGACY_SOURCE = {target: key for key, target in _FIXED_BY_REST.items()}


def _charset_losses(cleaned: Mapping[str, Any], charset: str, fixups: Mapping[str, Any],
                    report: ConversionReport) -> None:
    """Byte strings that do not decode with --charset: import21 silently drops their odd bytes."""
    utf8 = charset.replace("_", "-").lower() in ("utf-8", "utf8")
    for where, raw in _imported_byte_strings(cleaned):
        if _decodes(raw, charset):
            if utf8 or not _decodes(raw, "utf-8"):
                continue
            # Valid multi-byte UTF-8 in a list imported with a single-byte charset: a Debian-style
            # UTF-8 value among the list's older texts. import21 turns it into mojibake.
            problem = f"UTF-8 text among {charset} texts: import21 decodes it as {charset}"
            shown: Any = raw.decode(charset, "replace")
        else:
            problem = f"bytes that are not {charset} are dropped by import21"
            shown = raw.decode(charset, "ignore")
        top = re.split(r"[\[]", where, maxsplit=1)[0]
        target = _FIXED_BY_REST.get(top)
        if target is not None and target in fixups:
            report.notes.append(f"{where}: {problem}; the REST fix-up restores {target}")
            continue
        report.lossy.append(ReportEntry(where, LEGACY_KEYS[top].target if top in LEGACY_KEYS else "", problem,
                                        raw.decode("utf-8", "replace") if "UTF-8" in problem else None, shown))
