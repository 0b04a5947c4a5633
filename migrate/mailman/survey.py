"""What the legacy Mailman 2 tree holds, read over SSH/SFTP (the legacy host needs no Python).

Archive messages are counted on the controller, by the separator rule of `archives.mbox` that
`archives.check` uses, so both show the same number: the survey reads each list's mbox once.
"""

from __future__ import annotations

import posixpath
from dataclasses import asdict, dataclass, field

from ..archives import mbox
from ..core.errors import MigrateError
from . import convert, mm2
from .mm3 import KIND, list_names
from .reconcile import roster_counts
from .steps import checked_name, legacy_host, list_address, lists_host

# One remote command lists every list folder with its archive mbox's size, so selecting lists
# costs one round trip. Values come in as arguments. Each field ends with NUL, which no file name
# holds: a folder name with a tab or a newline stays one name and cannot pass for another list's.
_ARCHIVE_STATS = r'''
cd "$1" || exit 3
for d in lists/*/; do
  [ -d "$d" ] || continue
  n=${d#lists/}; n=${n%/}
  m="archives/private/$n.mbox/$n.mbox"
  if [ -f "$m" ]; then s=$(stat -c %s "$m"); else s=0; fi
  printf '%s\0%s\0' "$n" "$s"
done
'''


@dataclass
class ListSurvey:
    name: str
    fqdn: str = ""
    members: int = 0
    digest: int = 0
    nomail: int = 0
    owners: int = 0
    moderators: int = 0
    nonmembers: int = 0
    bans: int = 0
    held: int = 0
    pending: int = 0
    charset: str = ""
    archive_policy: str = ""
    archive_bytes: int = 0
    archive_messages: int = 0
    on_mailman3: bool = False
    error: str = ""
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def list_folders(executor, inventory) -> dict[str, int]:
    """List names with the size of their archive mbox in bytes (0: none) from the Mailman 2 host."""
    host = legacy_host(inventory)
    result = executor.read(host.name, ["sh", "-c", _ARCHIVE_STATS, "sh", host.var("mailman2_var_dir")])
    if result.exited == 3:
        raise MigrateError(f"{host.name}: Mailman 2 folder {host.var('mailman2_var_dir')} does not exist")
    result.check()
    fields = result.stdout.split("\0")
    if len(fields) % 2 != 1 or fields[-1]:
        raise MigrateError(f"{host.name}: the list folder survey ended in the middle of a record: "
                           f"{result.stdout[-80:]!r}")
    return {fields[i]: int(fields[i + 1]) for i in range(0, len(fields) - 1, 2)}


def archive_messages(executor, inventory, name: str) -> int:
    """How many messages a list's archive mbox holds, by the separator rule `archives.check` counts
    with (`grep -c '^From '` would count every body line starting with `From ` too)."""
    host = legacy_host(inventory)
    path = posixpath.join(host.var("mailman2_var_dir"), "archives", "private", f"{name}.mbox", f"{name}.mbox")
    data = executor.read_file(host.name, path)
    return mbox.count_messages(data) if data else 0


def survey(executor, inventory, names: list[str] | None = None) -> list[ListSurvey]:
    host = legacy_host(inventory)
    folders = list_folders(executor, inventory)
    try:
        on_mm3 = list_names(executor.service(KIND, lists_host(inventory).name))
    except MigrateError:
        on_mm3 = None
    rows = []
    for name in names or sorted(folders):
        row = ListSurvey(name)
        rows.append(row)
        if name not in folders:
            row.error = "no such list folder on Mailman 2"
            continue
        row.archive_bytes = folders[name]
        try:
            base = posixpath.join(host.var("mailman2_var_dir"), "lists", checked_name(name))
            if row.archive_bytes:
                row.archive_messages = archive_messages(executor, inventory, name)
            data = executor.read_file(host.name, f"{base}/config.pck")
            if data is None:
                raise mm2.Mailman2DataError(name, "config.pck is missing")
            config = mm2.load_config(data, list_name=name)
            summary = mm2.summarize_config(config, list_name=name)
            requests_data = executor.read_file(host.name, f"{base}/request.pck")
            requests = mm2.load_requests(requests_data, list_name=name) if requests_data else None
        except MigrateError as exc:
            row.error = str(exc)
            continue
        row.members = len(summary.members) + len(summary.digest_members)
        row.digest = len(summary.digest_members)
        row.nomail = len(summary.nomail)
        row.owners, row.moderators = len(summary.owners), len(summary.moderators)
        row.bans = len(summary.bans)
        row.charset = summary.charset
        row.archive_policy = ("none" if not summary.archive else "private" if summary.archive_private else "public")
        row.problems = [str(p) for p in summary.problems]
        if requests is not None:
            row.held = len(requests.held_messages)
            row.pending = len(requests.subscriptions) + len(requests.unsubscriptions)
        try:
            row.fqdn = list_address(name, None, config)
        except MigrateError as exc:  # the counts still show; the list needs mail_host to migrate
            row.error = str(exc)
        # What verification counts: the distinct nonmember addresses import21 keeps (lowercased,
        # each once, no ^regexp or @list, none banned); the domain plays no part in the count.
        row.nonmembers = roster_counts(convert.expected_state(config, fqdn_listname=row.fqdn or name))["nonmember"]
        row.on_mailman3 = bool(on_mm3) and row.fqdn in on_mm3
    return rows
