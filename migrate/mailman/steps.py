"""Steps that move a Mailman 2 list to Mailman 3 and keep its roster in line until cutover.

One step per list, so one bad list is refused or rolled back on its own while an --all run
goes on (the runner's keep-going mode), and the journal says per list what happened.
"""

from __future__ import annotations

import posixpath
import weakref
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..core import names
from ..core.errors import MigrateError
from ..core.ops import RemoveFile, WriteFile
from ..core.step import Step, StepContext, Verification, fail
from . import convert, mm2
from .mm3 import (
    KIND, CreateDomain, CreateList, Import21, SetListSettings, get_list, known_addresses,
    mailman_command, read_list_state,
)
from .model import ListState
from .reconcile import Difference, compare, roster_counts, sync_operations

_known_addresses: "weakref.WeakKeyDictionary[Any, set[str]]" = weakref.WeakKeyDictionary()


def legacy_host(inventory):
    return inventory.one_with_role("mailman2")


def lists_host(inventory):
    return inventory.one_with_role("mailman3")


def checked_name(name: str) -> str:
    """The list name, if Mailman 2 could have created it; a folder named otherwise is no list of
    Mailman 2's and must not become a path, an address or a command argument here."""
    try:
        return names.list_name(name)
    except names.InvalidName as exc:
        raise MigrateError(f"list {name!r}: not a valid Mailman 2 list name: {exc.reason}") from None


def refuse_invalid_name(name: str) -> None:
    """Preflight: refuse a list whose name Mailman 2 could not have created."""
    try:
        checked_name(name)
    except MigrateError as exc:
        fail(str(exc))


def list_dir(inventory, name: str) -> str:
    return posixpath.join(legacy_host(inventory).var("mailman2_var_dir"), "lists", checked_name(name))


def read_list_config(ctx: StepContext, name: str) -> dict:
    """A list's Mailman 2 config.pck, read from the legacy host and unpickled."""
    path = posixpath.join(list_dir(ctx.inventory, name), "config.pck")
    data = ctx.read_file(legacy_host(ctx.inventory).name, path)
    if data is None:
        raise mm2.Mailman2DataError(name, f"{path} does not exist")
    return mm2.load_config(data, list_name=name)


def list_address(name: str, mail_host: str | None, config: dict) -> str:
    """`name@domain` on Mailman 3: the given domain, or the list's Mailman 2 host_name.

    Name and domain are checked first: the address becomes a REST URL and a command argument.
    """
    checked_name(name)
    if mail_host:
        field, host, fix = "mail_host", mail_host, "pass the list's Mailman 3 domain as mail_host"
    else:
        field, fix = "host_name", "correct it on Mailman 2, or pass the Mailman 3 domain as mail_host"
        host = str(config.get("host_name") or "")
        if not host:
            raise mm2.Mailman2DataError(name, "config.pck has no host_name; pass mail_host")
    try:
        names.domain(host)
    except names.InvalidName as exc:
        where = "the parameter" if field == "mail_host" else "in config.pck"
        raise mm2.Mailman2DataError(name, f"{field} {host!r} ({where}) is not a valid domain: "
                                          f"{exc.reason}; {fix}") from None
    return f"{name}@{host}"


class ListParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    list: str = Field(..., description="Mailman 2 list name (the folder under lists/)")
    mail_host: str | None = Field(None, description="Mailman 3 domain; default: the list's Mailman 2 host_name")


class _ListStep(Step):
    """What migrate, sync and verify share: reading one list on both sides."""

    Params = ListParams
    example = {"list": "announce"}

    def __init__(self, params=None):
        super().__init__(params)
        self._config: dict | None = None

    @property
    def name(self) -> str:
        return self.params.list

    def describe(self) -> str:
        return f"{self.title}: {self.name}"

    def config(self, ctx: StepContext) -> dict:
        if self._config is None:
            self._config = read_list_config(ctx, self.name)
        return self._config

    def fqdn(self, ctx: StepContext) -> str:
        return list_address(self.name, self.params.mail_host, self.config(ctx))

    def reader(self, ctx: StepContext):
        return ctx.executor.service(KIND, lists_host(ctx.inventory).name)

    # -- preflight checks shared by every list step ----------------------------------------
    def fail_for_invalid_list_name(self, ctx: StepContext) -> None:
        refuse_invalid_name(self.name)

    def fail_for_missing_list_folder(self, ctx: StepContext) -> None:
        folder = list_dir(ctx.inventory, self.name)
        if not ctx.read(legacy_host(ctx.inventory).name, ["test", "-d", folder]).ok:
            fail(f"list {self.name}: no folder {folder} on {legacy_host(ctx.inventory).name}")

    def fail_for_unreadable_config(self, ctx: StepContext) -> None:
        try:
            self.config(ctx)
            self.fqdn(ctx)
        except MigrateError as exc:
            fail(str(exc))

    def fail_for_unreachable_mailman3(self, ctx: StepContext) -> None:
        try:
            self.reader(ctx)
        except MigrateError as exc:
            fail(f"list {self.name}: {exc}")

    # -- verification shared by migrate, sync and verify ---------------------------------------
    def differences(self, ctx: StepContext) -> tuple[ListState, ListState | None, list[Difference]]:
        fqdn = self.fqdn(ctx)
        expected = convert.expected_state(self.config(ctx), fqdn_listname=fqdn)
        case_of = {m.address.lower() for m in expected.roster.values() if m.address != m.address.lower()}
        actual = read_list_state(self.reader(ctx), fqdn, case_of)
        if actual is None:
            return expected, None, []
        return expected, actual, compare(expected, actual, convert.LOSSY_FIELDS)

    def verify(self, ctx: StepContext) -> Verification:
        result = Verification(f"{self.id} {self.name}")
        expected, actual, diffs = self.differences(ctx)
        result.add(f"{expected.fqdn_listname} exists on Mailman 3", True, actual is not None)
        if actual is None:
            return result
        want, have = roster_counts(expected), roster_counts(actual)
        for what in want:
            unexpected = [d for d in diffs if d.unexpected and d.category == what]
            result.checks.append(_check(f"{what}s", want[what], have[what], unexpected))
        settings = [d for d in diffs if d.category == "setting"]
        result.checks.append(_check("settings", "equal", "equal" if not any(d.unexpected for d in settings)
                                    else "differ", [d for d in settings if d.unexpected]))
        for category in ("member", "owner", "moderator", "nonmember", "nonmember_pattern"):
            bad = [d for d in diffs if d.unexpected and d.category == category]
            if bad:
                result.checks.append(_check(f"{category} details", 0, len(bad), bad))
        for d in diffs:
            if d.lossy:
                result.checks.append(_expected_loss(d))
        return result


def _check(name: str, expected, actual, problems: list[Difference]):
    from ..core.step import Check

    detail = "; ".join(d.describe() for d in problems[:5])
    if len(problems) > 5:
        detail += f"; and {len(problems) - 5} more"
    return Check(name, expected == actual and not problems, expected, actual, detail)


def _expected_loss(diff: Difference):
    from ..core.step import Check

    return Check(f"expected loss: {diff.category} {diff.key}", True, diff.expected, diff.actual, diff.lossy)


class MigrateParams(ListParams):
    allow_pending: bool = Field(False, description="migrate even with held posts or pending requests")
    resync: bool = Field(False, description="import again into a list that already exists on Mailman 3")


class MigrateList(_ListStep):
    """Create the list on Mailman 3, import its Mailman 2 configuration and roster, and re-set
    the texts import21 may mangle. Rollback deletes the list, a domain the run created, and the
    Mailman 3 users the import brought in."""

    id = "mailman.migrate_list"
    title = "Migrate a Mailman 2 list"
    Params = MigrateParams

    def fail_for_pending_requests(self, ctx: StepContext) -> None:
        if self.params.allow_pending:
            return
        path = posixpath.join(list_dir(ctx.inventory, self.name), "request.pck")
        data = ctx.read_file(legacy_host(ctx.inventory).name, path)
        if data is None:
            return
        requests = mm2.load_requests(data, list_name=self.name)
        held, subs, unsubs = (len(requests.held_messages), len(requests.subscriptions),
                              len(requests.unsubscriptions))
        if held or subs or unsubs:
            fail(f"list {self.name}: {held} held post(s), {subs} pending subscription(s), "
                 f"{unsubs} pending unsubscription(s) on Mailman 2: handle them there first, "
                 "or pass --allow-pending")

    def fail_for_existing_list(self, ctx: StepContext) -> None:
        if not self.params.resync and get_list(self.reader(ctx), self.fqdn(ctx)) is not None:
            fail(f"list {self.fqdn(ctx)} already exists on Mailman 3 (use --resync to import again, "
                 "or `mailman.sync` for rosters)")

    def fail_for_missing_import_folder(self, ctx: StepContext) -> None:
        host = lists_host(ctx.inventory)
        folder = host.var("mailman3_import_dir", "/var/tmp")
        if not ctx.read(host.name, ["test", "-d", folder]).ok:
            fail(f"{host.name}: folder {folder} (mailman3_import_dir) does not exist")

    def plan(self, ctx: StepContext) -> list:
        host = lists_host(ctx.inventory)
        cfg = self.config(ctx)
        fqdn = self.fqdn(ctx)
        cleaned, _changes = convert.clean_config_for_import(cfg, list_name=self.name)
        expected = convert.expected_state(cfg, fqdn_listname=fqdn)
        reader = self.reader(ctx)
        if reader not in _known_addresses:
            _known_addresses[reader] = known_addresses(reader)
        roster = sorted({addr for (_, addr) in expected.roster})
        new = [a for a in roster if a not in _known_addresses[reader]]
        folder = host.var("mailman3_import_dir", "/var/tmp")
        path = posixpath.join(folder, f"migrate-{checked_name(self.name)}.pck")
        ops: list = []
        if not self.params.resync:
            ops += [CreateDomain(host.name, fqdn.partition("@")[2]),
                    CreateList(host.name, fqdn, new)]
        ops += [
            # import21 runs as mailman3_user when set: the copy is that user's, private to it
            # (Mailman 2 keeps member passwords in clear).
            WriteFile(host.name, path, cleaned, 0o600, owner=host.var("mailman3_user", None)),
            Import21(host.name, fqdn, path, convert.import_charset(cfg), mailman_command(host)),
            SetListSettings(host.name, fqdn, convert.rest_fixups(cfg, list_name=self.name)),
            RemoveFile(host.name, path),
        ]
        return ops


class SyncList(_ListStep):
    """Bring a migrated list's rosters and bans in line with Mailman 2's current state, through
    REST and without any welcome or goodbye mail. Running it twice changes nothing."""

    id = "mailman.sync_list"
    title = "Sync a list's roster"

    def fail_for_list_not_migrated(self, ctx: StepContext) -> None:
        if get_list(self.reader(ctx), self.fqdn(ctx)) is None:
            fail(f"list {self.fqdn(ctx)} does not exist on Mailman 3: migrate it first")

    def plan(self, ctx: StepContext) -> list:
        expected, actual, _ = self.differences(ctx)
        return sync_operations(lists_host(ctx.inventory).name, expected, actual)
