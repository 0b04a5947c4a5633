"""Compare what Mailman 3 should hold with what it holds, and derive the operations that close
the gap (for `mailman.sync`). Pure: states in, differences and operations out.

Addresses match case-insensitively; a difference in case only is reported as `case`, never as
a missing plus an extra member. Differences documented as lossy are marked `expected` with the
reason, so verification can list them apart and still pass.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

from .model import COMPARED_SETTINGS, ListState

MEMBER_FIELDS = ("delivery_mode", "delivery_status", "moderation_action")


@dataclass
class Difference:
    category: str  # setting, member, owner, moderator, nonmember, ban, nonmember_pattern
    key: str  # setting name or address
    kind: str  # missing, extra, changed, case
    expected: Any = None
    actual: Any = None
    field: str = ""  # for changed roster entries: which attribute
    lossy: str = ""  # reason when this difference is a documented, expected loss

    @property
    def unexpected(self) -> bool:
        return not self.lossy

    def describe(self) -> str:
        what = f"{self.category} {self.key}" + (f" {self.field}" if self.field else "")
        if self.kind == "missing":
            return f"{what}: missing on Mailman 3"
        if self.kind == "extra":
            return f"{what}: on Mailman 3 but not on Mailman 2"
        if self.kind == "case":
            return f"{what}: case differs ({self.expected!r} on Mailman 2, {self.actual!r} on Mailman 3)"
        return f"{what}: {self.expected!r} expected, {self.actual!r} found"

    def to_dict(self) -> dict:
        return {**asdict(self), "unexpected": self.unexpected}


def _lossy(lossy: Mapping[str, str], *names: str) -> str:
    for name in names:
        if name in lossy:
            return lossy[name]
    return ""


def compare(expected: ListState, actual: ListState, lossy: Mapping[str, str] | None = None) -> list[Difference]:
    lossy = lossy or {}
    diffs: list[Difference] = []
    for name in COMPARED_SETTINGS:
        want, have = expected.settings.get(name), actual.settings.get(name)
        if name in expected.settings and want != have:
            diffs.append(Difference("setting", name, "changed", want, have,
                                    lossy=_lossy(lossy, f"settings.{name}")))
    for key in sorted(set(expected.roster) | set(actual.roster)):
        role, _ = key
        want, have = expected.roster.get(key), actual.roster.get(key)
        if have is None:
            # Never an expected loss: the expected state already leaves out whom import21 skips.
            diffs.append(Difference(role, want.address, "missing", want.to_dict(), None))
            continue
        if want is None:
            diffs.append(Difference(role, have.address, "extra", None, have.to_dict()))
            continue
        if want.address != have.address:
            diffs.append(Difference(role, want.address, "case", want.address, have.address,
                                    lossy=_lossy(lossy, f"roster.{role}.address")))
        for name in MEMBER_FIELDS + ("display_name",):
            w, h = getattr(want, name), getattr(have, name)
            if name == "display_name" and not w:
                continue  # nothing was known on Mailman 2; whatever Mailman 3 shows is fine
            if w != h:
                diffs.append(Difference(role, want.address, "changed", w, h, field=name,
                                        lossy=_lossy(lossy, f"roster.{role}.{name}")))
    want_bans, have_bans = expected.bans, actual.bans
    for pattern in sorted(want_bans - have_bans):
        diffs.append(Difference("ban", pattern, "missing", pattern, None, lossy=_lossy(lossy, "bans")))
    for pattern in sorted(have_bans - want_bans):
        diffs.append(Difference("ban", pattern, "extra", None, pattern))
    for name in sorted(set(expected.nonmember_patterns) | set(actual.nonmember_patterns)):
        want, have = expected.nonmember_patterns.get(name, []), actual.nonmember_patterns.get(name, [])
        if list(want) != list(have):
            diffs.append(Difference("nonmember_pattern", name, "changed", want, have,
                                    lossy=_lossy(lossy, f"nonmember_patterns.{name}")))
    return diffs


def roster_counts(state: ListState) -> dict[str, int]:
    counts = {"member": 0, "owner": 0, "moderator": 0, "nonmember": 0, "digest": 0, "nomail": 0}
    for (role, _), m in state.roster.items():
        counts[role] += 1
        if role == "member":
            counts["digest"] += m.delivery_mode not in (None, "regular")
            counts["nomail"] += m.delivery_status not in (None, "enabled")
    counts["ban"] = len(state.bans)
    return counts


def sync_operations(host: str, expected: ListState, actual: ListState) -> list:
    """Operations that make Mailman 3's rosters and bans match Mailman 2's current state.

    Settings are not touched: sync runs at cutover to carry roster changes made since the import.
    Removals come first, so a role change never passes through a state with both entries.
    """
    from .mm3 import Ban, SetMember, Subscribe, Unban, Unsubscribe

    fqdn = expected.fqdn_listname
    removals, additions, changes = [], [], []
    for key in sorted(set(expected.roster) | set(actual.roster)):
        role, _ = key
        want, have = expected.roster.get(key), actual.roster.get(key)
        if want is None:
            removals.append(Unsubscribe(host, fqdn, have.address, role))
        elif have is None:
            additions.append(Subscribe(host, fqdn, want.address, role, want.display_name or "",
                                       want.delivery_mode if role == "member" else None,
                                       want.delivery_status if role == "member" else None,
                                       want.moderation_action))
        else:
            values = {name: getattr(want, name) for name in MEMBER_FIELDS
                      if getattr(want, name) != getattr(have, name)
                      and not (role != "member" and name != "moderation_action")
                      and getattr(want, name) is not None}
            if values:
                changes.append(SetMember(host, fqdn, have.address, role, values))
    bans = [Unban(host, fqdn, p) for p in sorted(actual.bans - expected.bans)]
    bans += [Ban(host, fqdn, p) for p in sorted(expected.bans - actual.bans)]
    return removals + additions + changes + bans
