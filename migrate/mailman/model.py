"""The shape both sides of a list are compared in: what Mailman 3 should hold (computed from
Mailman 2 by `convert.expected_state`) and what it does hold (read back by `mm3.read_list_state`).

Addresses are keyed lowercased: Mailman matches them case-insensitively, while the stored form
keeps its case, and a case change is reported, not treated as a different person.
Values use Mailman 3's REST vocabulary.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

DELIVERY_MODES = ("regular", "plaintext_digests", "mime_digests", "summary_digests")
DELIVERY_STATUSES = ("enabled", "by_user", "by_moderator", "by_bounces", "unknown")
ACTIONS = ("accept", "hold", "reject", "discard", "defer")
ROLES = ("member", "owner", "moderator", "nonmember")

# The list settings a list owner notices, compared by verify (Mailman 3 attribute names).
COMPARED_SETTINGS = (
    "display_name", "subject_prefix", "description", "info", "archive_policy",
    "default_member_action", "default_nonmember_action", "reply_goes_to_list", "reply_to_address",
    "first_strip_reply_to", "max_message_size", "advertised", "subscription_policy",
    "preferred_language",
)


@dataclass
class Membership:
    """One roster entry of a list."""

    address: str  # as stored, case preserved
    role: str  # member, owner, moderator, nonmember
    display_name: str = ""
    delivery_mode: str | None = "regular"  # members only
    delivery_status: str | None = "enabled"  # members only
    moderation_action: str | None = None  # None: the list default applies

    @property
    def key(self) -> tuple[str, str]:
        return (self.role, self.address.lower())

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ListState:
    fqdn_listname: str
    settings: dict[str, Any] = field(default_factory=dict)
    roster: dict[tuple[str, str], Membership] = field(default_factory=dict)  # (role, lower address)
    bans: set[str] = field(default_factory=set)  # addresses and ^regexps, as stored
    # Nonmember rules kept as regexps in the list's legacy attributes (accept_these_nonmembers...).
    nonmember_patterns: dict[str, list[str]] = field(default_factory=dict)

    def add(self, membership: Membership) -> None:
        self.roster[membership.key] = membership

    def role(self, role: str) -> dict[str, Membership]:
        return {addr: m for (r, addr), m in self.roster.items() if r == role}

    def to_dict(self) -> dict:
        return {"fqdn_listname": self.fqdn_listname, "settings": self.settings,
                "roster": [m.to_dict() for m in sorted(self.roster.values(), key=lambda m: m.key)],
                "bans": sorted(self.bans), "nonmember_patterns": self.nonmember_patterns}
