"""Leaving out of the import copy what import21 never reads.

Mailman 3.3.10's import_config_pck (mailman/utilities/importer.py) sets the list attribute a
config.pck key names (after its NAME_MAPPINGS) and reads a few more keys with code of its own
(rosters, archive and moderation settings, bans, header filters, templates, dates); every other
key it passes over. `convert.LEGACY_KEYS` records each key's fate: a dropped or internal key, or a
lossy one without a Mailman 3 target, is one import21 passes over.

Such keys have no business on the lists host or in a run's blob store, where the copy goes: above
all `passwords`, Mailman 2's member passwords in clear, and the list's `password` and
`post_password`. The copy leaves them out, and the change records what they held as counts, never
as values.
"""

from __future__ import annotations

from typing import Any, Mapping


def passed_over(rule: Any) -> bool:
    """Whether import21 leaves a key with this `convert.Rule` unread. mod_password is a dropped
    key although import21 would copy it: 2.1's SHA1 hex digest is no hash Mailman 3 can check."""
    return rule.fate in ("dropped", "internal") or (rule.fate == "lossy" and not rule.target)


def _held(key: str, value: Any, secret: bool) -> Any:
    if key == "passwords" and isinstance(value, dict):
        return f"{len(value)} member passwords"
    if isinstance(value, (dict, list, tuple)):
        return f"{len(value)} entries"
    if secret:
        return "set" if value else "not set"
    if isinstance(value, str):
        return f"{len(value)} characters" if value else ""
    return value if value is None or isinstance(value, (bool, int, float)) else f"<{type(value).__name__}>"


def leave_out(copy: dict[str, Any], rules: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Remove from `copy` every key import21 passes over, secrets first, and return (key, what it
    held) for each: a count, "set"/"not set", a length or a number, never a secret's value."""
    keys = sorted((key for key in copy if key in rules and passed_over(rules[key])),
                  key=lambda key: not rules[key].secret)
    return [(key, _held(key, copy.pop(key), rules[key].secret)) for key in keys]
