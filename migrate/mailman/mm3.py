"""Mailman 3 through its REST API, reached over the verified SSH connection to the lists host.

Production REST APIs listen only on the lists host's loopback, so the service forwards a local
port through the host's SSH connection and talks to it with mailmanclient. Reads use a client
whose request hook refuses anything but GET; operations (the only way to change Mailman 3) get
the full client from the executor.

Operations here capture what they change and build their inverse from it, so a rollback from a
later process removes exactly what a run created.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.error import HTTPError
from urllib.parse import quote, urlencode, urlsplit

from ..core import names
from ..core.errors import MigrateError, TransportError
from ..core.ops import Operation, register
from ..core.transport import register_service
from .model import COMPARED_SETTINGS, ListState, Membership

KIND = "mailman3"

# Rosters, bans, delivery statuses and case-preserved addresses are read in parallel: the
# lab's REST server has two workers, production ones usually more.
READ_WORKERS = 8


class Mailman3Error(MigrateError):
    """Mailman 3 refused or could not be reached; the message names the list or host."""


class ReadOnlyViolation(Mailman3Error):
    pass


REQUEST_TIMEOUT = 120  # seconds; mailmanclient sets none, and a stalled request would hang a run


def _with_timeout(params: dict) -> dict:
    params.setdefault("timeout", REQUEST_TIMEOUT)
    return params


def read_only(client):
    """Make a mailmanclient Client refuse every request but GET.

    mailmanclient's request hooks cannot do this (it catches and prints their exceptions), so
    the guard wraps the one method every request of the client and its objects goes through.
    """
    connection = client._connection
    call = connection.call

    def guarded(path, data=None, method=None):
        if data is not None or (method or "GET").upper() != "GET":
            raise ReadOnlyViolation(f"refused {method or 'POST'} {path}: this Mailman 3 client may only read")
        return call(path, data, method)

    connection.call = guarded
    return client


class Mailman3Service:
    """mailmanclient clients bound to one lists host through a port forward."""

    def __init__(self, connections, host):
        from mailmanclient import Client

        try:
            url = urlsplit(host.var("mailman3_rest_url"))
            user = host.var("mailman3_rest_user")
            password = host.secret("mailman3_rest_password").reveal()
        except MigrateError as exc:
            raise Mailman3Error(f"{host.name}: Mailman 3 REST settings: {exc}") from None
        if url.scheme != "http" or not url.hostname or not url.port:
            raise Mailman3Error(f"{host.name}: mailman3_rest_url must look like http://127.0.0.1:8001/3.1")
        self.host = host.name
        self.remote = f"{url.hostname}:{url.port}"
        transport = connections.get(host.name)
        self._forward = transport.forward(url.port, url.hostname)
        try:
            local_port = self._forward.__enter__()
        except TransportError as exc:
            raise Mailman3Error(f"Mailman 3 REST API at {self.remote} (through {host.name}) is not "
                                f"reachable: {exc}") from None
        except Exception as exc:
            raise Mailman3Error(f"{host.name}: cannot forward a port to {self.remote}: {exc}") from None
        base = f"http://127.0.0.1:{local_port}{url.path.rstrip('/')}"
        self.client = Client(base, user, password, request_hooks=[_with_timeout])
        self.reader = read_only(Client(base, user, password, request_hooks=[_with_timeout]))
        self._check()

    def _check(self) -> None:
        from mailmanclient import MailmanConnectionError

        try:
            self.reader.system
        except (MailmanConnectionError, HTTPError, OSError) as exc:
            self.close()
            raise Mailman3Error(f"Mailman 3 REST API at {self.remote} (through {self.host}) "
                                f"is not reachable: {_short(exc)}") from None

    def close(self) -> None:
        if self._forward is not None:
            try:
                self._forward.__exit__(None, None, None)
            except Exception:  # the tunnel may already be gone with its connection
                pass
            self._forward = None


register_service(KIND, Mailman3Service)


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:300] + "..."


def _status(exc: Exception) -> int | None:
    return getattr(exc, "code", None)


# -- paths ---------------------------------------------------------------------------------------
def rest_path(*segments: str) -> str:
    """The path (below the REST root) of a resource named by a list, a domain or an address.

    Every path requested by a name is built here, each segment percent-quoted: a value holding
    `/`, `?`, `#` or `%` stays one segment. `.` and `..`, which the client's URL joining would
    resolve to another resource, are refused.
    """
    for segment in segments:
        if not isinstance(segment, str) or segment in ("", ".", ".."):
            raise Mailman3Error(f"refused the REST path segment {segment!r} of {segments!r}")
    return "/".join(quote(segment, safe="@") for segment in segments)


def _resource(client, *segments: str) -> dict:
    """A resource's content, by path segments; HTTPError as mailmanclient raises it."""
    _, content = client._connection.call(rest_path(*segments))
    return content or {}


def _domain(client, mail_host: str):
    from mailmanclient import Domain

    return Domain(client._connection, _resource(client, "domains", names.domain(mail_host))["self_link"])


# -- reads ---------------------------------------------------------------------------------------
def _rest_errors(function):
    """Turn mailmanclient's HTTP and connection errors into a message naming what was read."""
    import functools

    @functools.wraps(function)
    def wrapper(client, *args, **kwargs):
        from mailmanclient import MailmanConnectionError

        try:
            return function(client, *args, **kwargs)
        except HTTPError as exc:
            what = " ".join(str(a) for a in args) or function.__name__
            raise Mailman3Error(f"Mailman 3 answered {exc.code} while reading {what}: {_short(exc)}") from None
        except (MailmanConnectionError, OSError) as exc:
            raise Mailman3Error(f"Mailman 3 could not be reached while reading: {_short(exc)}") from None

    return wrapper


@_rest_errors
def get_list(client, fqdn: str):
    """The list `fqdn` on Mailman 3, or None; its address is checked before it becomes a URL."""
    from mailmanclient import MailingList

    try:
        content = _resource(client, "lists", names.list_address(fqdn))
    except HTTPError as exc:
        if _status(exc) == 404:
            return None
        raise
    if str(content.get("fqdn_listname", "")).lower() != fqdn.lower():
        raise Mailman3Error(f"asked Mailman 3 for list {fqdn}, it answered with {content.get('fqdn_listname')!r}")
    return MailingList(client._connection, content["self_link"], content)


@_rest_errors
def domain_exists(client, mail_host: str) -> bool:
    try:
        _domain(client, mail_host)
        return True
    except HTTPError as exc:
        if _status(exc) == 404:
            return False
        raise


@_rest_errors
def list_names(client) -> set[str]:
    return {m.fqdn_listname for m in client.lists}


@_rest_errors
def known_addresses(client, page_size: int = 2000) -> set[str]:
    """Every address Mailman 3 knows (lowercased): what a run must not delete on rollback."""
    found: set[str] = set()
    page = 1
    while True:
        # mailmanclient has no accessor for the /addresses collection; the REST call is plain.
        _, content = client._connection.call(f"addresses?count={page_size}&page={page}")
        entries = (content or {}).get("entries", [])
        found.update(e["email"].lower() for e in entries)
        if len(entries) < page_size:
            return found
        page += 1


def _original_email(member) -> str:
    """The address as first subscribed: roster entries only carry the lowercased form."""
    try:
        return str(member.address.rest_data.get("original_email") or member.rest_data.get("email"))
    except HTTPError:
        return str(member.rest_data.get("email"))


def _membership(member, role: str, status: str | None, original: str | None = None) -> Membership:
    data = member.rest_data
    is_member = role == "member"
    return Membership(
        address=original or str(data.get("email") or member.address),
        role=role,
        display_name=data.get("display_name") or "",
        delivery_mode=data.get("delivery_mode") if is_member else None,
        delivery_status=(status or "enabled") if is_member else None,
        moderation_action=data.get("moderation_action"),
    )


# Every DeliveryStatus but `enabled`: a member found under none of them receives mail.
DISABLED_STATUSES = ("by_user", "by_moderator", "by_bounces", "unknown")


def _disabled_members(client, list_id: str, status: str) -> list[tuple[str, str]]:
    """(lowercased address, status) of the list's members whose effective delivery status is
    `status`: one request per status instead of one preferences request per member."""
    query = urlencode({"list_id": list_id, "role": "member", "delivery_status": status})
    _, content = client._connection.call(f"members/find?{query}")
    return [(str(e.get("email", "")).lower(), status) for e in (content or {}).get("entries", [])]


@_rest_errors
def read_list_state(client, fqdn: str, case_of: set[str] | None = None) -> ListState | None:
    """What Mailman 3 holds for a list, in the shape `convert.expected_state` produces.

    Roster entries carry addresses lowercased; the case-preserved form costs one more request
    per entry, so `case_of` (lowercased addresses) limits those requests to where case matters.
    Delivery status is the member's effective one (member, address, user preferences, then the
    system default), read in bulk per status.
    """
    mlist = get_list(client, fqdn)
    if mlist is None:
        return None
    settings = mlist.settings
    state = ListState(fqdn, settings={k: settings.get(k) for k in COMPARED_SETTINGS})
    for key in ("accept_these_nonmembers", "hold_these_nonmembers", "reject_these_nonmembers",
                "discard_these_nonmembers"):
        values = settings.get(key) or []
        if values:
            state.nonmember_patterns[key] = list(values)
    roles = ("member", "owner", "moderator", "nonmember")
    with ThreadPoolExecutor(max_workers=READ_WORKERS) as pool:
        roster_jobs = {role: pool.submit(mlist.get_roster, role) for role in roles}
        status_jobs = [pool.submit(_disabled_members, client, mlist.list_id, status)
                       for status in DISABLED_STATUSES]
        bans_job = pool.submit(lambda: {str(b.email) for b in mlist.bans})
        rosters = {role: job.result() for role, job in roster_jobs.items()}
        statuses = dict(pair for job in status_jobs for pair in job.result())

        def original(member) -> str | None:
            email = str(member.rest_data.get("email") or "")
            return _original_email(member) if case_of is None or email.lower() in case_of else None

        items = [(role, m) for role, members in rosters.items() for m in members]
        originals = list(pool.map(original, [m for _, m in items]))
        state.bans = bans_job.result()
    for (role, member), address in zip(items, originals):
        email = str(member.rest_data.get("email") or "").lower()
        status = statuses.get(email, "enabled") if role == "member" else None
        state.add(_membership(member, role, status, address))
    return state


# -- operations ----------------------------------------------------------------------------------
def _service(effects, host: str) -> Mailman3Service:
    return effects.service(KIND, host)


def _reader(reader, host: str):
    return reader.service(KIND, host)


def _list_or_fail(client, fqdn: str):
    mlist = get_list(client, fqdn)
    if mlist is None:
        raise Mailman3Error(f"list {fqdn} does not exist on Mailman 3")
    return mlist


@dataclass
class _DomainOperation(Operation):
    mail_host: str = ""

    def state_key(self) -> tuple:
        return ("mailman3-domain", self.host, self.mail_host)


@dataclass
class _ListOperation(Operation):
    fqdn_listname: str = ""

    def state_key(self) -> tuple:
        # Everything about one list: once a run created it, its removal is the whole story.
        return ("mailman3-list", self.host, self.fqdn_listname)


@register
@dataclass
class CreateDomain(_DomainOperation):

    def describe(self) -> str:
        return f"create Mailman 3 domain {self.mail_host}"

    def capture(self, reader):
        return {"existed": domain_exists(_reader(reader, self.host), self.mail_host)}

    def perform(self, effects):
        client = _service(effects, self.host).client
        if not domain_exists(client, self.mail_host):
            client.create_domain(self.mail_host)

    def inverse(self, pre_state):
        if pre_state and pre_state.get("existed"):
            return None
        return DeleteDomain(self.host, self.mail_host)


@register
@dataclass
class DeleteDomain(_DomainOperation):
    """Only ever the inverse of CreateDomain: deleting a domain deletes its lists."""

    reversible = False

    def describe(self) -> str:
        return f"delete Mailman 3 domain {self.mail_host} (and any list in it)"

    def perform(self, effects):
        client = _service(effects, self.host).client
        if domain_exists(client, self.mail_host):
            client._connection.call(rest_path("domains", self.mail_host), None, "DELETE")


@register
@dataclass
class CreateList(_ListOperation):
    """Create a list. Its inverse deletes the list and then the Mailman 3 users of the
    addresses that were new to Mailman 3 when the run planned (and that no list uses now)."""

    new_addresses: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return f"create list {self.fqdn_listname}"

    def capture(self, reader):
        return {"existed": get_list(_reader(reader, self.host), self.fqdn_listname) is not None}

    def perform(self, effects):
        client = _service(effects, self.host).client
        local, _, domain = self.fqdn_listname.partition("@")
        if get_list(client, self.fqdn_listname) is None:
            _domain(client, domain).create_list(local)

    def inverse(self, pre_state):
        if pre_state and pre_state.get("existed"):
            return None
        return DeleteList(self.host, self.fqdn_listname, list(self.new_addresses))


@register
@dataclass
class DeleteList(_ListOperation):
    forget_addresses: list[str] = field(default_factory=list)
    reversible = False

    def describe(self) -> str:
        extra = f", then forget {len(self.forget_addresses)} address(es) it brought" if self.forget_addresses else ""
        return f"delete list {self.fqdn_listname}{extra}"

    def perform(self, effects):
        client = _service(effects, self.host).client
        mlist = get_list(client, self.fqdn_listname)
        if mlist is not None:
            mlist.delete()
        forget_unused_addresses(client, self.forget_addresses)


def forget_unused_addresses(client, addresses: list[str]) -> int:
    """Delete the users of these addresses when none of their addresses is subscribed anywhere."""
    from mailmanclient import User

    removed = 0
    for email in addresses:
        try:
            content = _resource(client, "users", email)
            user = User(client._connection, content["self_link"], content)
        except HTTPError as exc:
            if _status(exc) == 404:
                continue
            raise
        if not any(_has_memberships(client, str(address.email)) for address in user.addresses):
            user.delete()
            removed += 1
    return removed


def _address_known(client, email: str) -> bool:
    try:
        _resource(client, "addresses", email)
        return True
    except HTTPError as exc:
        if _status(exc) == 404:
            return False
        raise


def _has_memberships(client, email: str) -> bool:
    # mailmanclient has no accessor for an address's memberships; the REST resource is plain.
    return bool(_resource(client, "addresses", email, "memberships").get("total_size"))


@register
@dataclass
class SetListSettings(_ListOperation):
    values: dict = field(default_factory=dict)

    def describe(self) -> str:
        return f"set {', '.join(sorted(self.values))} of {self.fqdn_listname}"

    def capture(self, reader):
        mlist = get_list(_reader(reader, self.host), self.fqdn_listname)
        if mlist is None:
            return {"list_existed": False}
        settings = mlist.settings
        return {"list_existed": True, "values": {k: settings.get(k) for k in self.values}}

    def perform(self, effects):
        mlist = _list_or_fail(_service(effects, self.host).client, self.fqdn_listname)
        settings = mlist.settings
        for key, value in self.values.items():
            settings[key] = value
        settings.save()

    def inverse(self, pre_state):
        if not pre_state or not pre_state.get("list_existed"):
            return None  # the list itself is removed by CreateList's inverse
        return SetListSettings(self.host, self.fqdn_listname, dict(pre_state["values"]))


def _find(mlist, role: str, address: str):
    for member in mlist.get_roster(role):
        if str(member.rest_data.get("email") or member.address).lower() == address.lower():
            return member
    return None


def _member_state(mlist, role: str, address: str) -> dict | None:
    member = _find(mlist, role, address)
    if member is None:
        return None
    status = member.preferences.get("delivery_status") if role == "member" else None
    return _membership(member, role, status).to_dict()


@dataclass
class _MemberOperation(Operation):
    """A change to one roster entry (role, address) of one list."""

    fqdn_listname: str = ""
    address: str = ""
    role: str = "member"

    def state_key(self) -> tuple:
        return ("mailman3-member", self.host, self.fqdn_listname, self.role, self.address.lower())

    def capture(self, reader):
        mlist = get_list(_reader(reader, self.host), self.fqdn_listname)
        return {"membership": _member_state(mlist, self.role, self.address) if mlist else None}


@register
@dataclass
class Subscribe(_MemberOperation):
    """Add an address to a roster without any mail to it (pre-approved, no welcome)."""

    display_name: str = ""
    delivery_mode: str | None = None
    delivery_status: str | None = None
    moderation_action: str | None = None

    def describe(self) -> str:
        extras = [v for v in (self.delivery_mode, self.delivery_status, self.moderation_action)
                  if v and v not in ("regular", "enabled")]
        return f"add {self.address} as {self.role} of {self.fqdn_listname}" + (f" ({', '.join(extras)})" if extras else "")

    def capture(self, reader):
        state = super().capture(reader)
        # Subscribing an unknown address creates a site-wide user: rollback must remove it too.
        state["address_known"] = _address_known(_reader(reader, self.host), self.address)
        return state

    def perform(self, effects):
        mlist = _list_or_fail(_service(effects, self.host).client, self.fqdn_listname)
        if _find(mlist, self.role, self.address) is not None:
            return
        if self.role == "member":
            member = mlist.subscribe(self.address, self.display_name or None, pre_verified=True,
                                     pre_confirmed=True, pre_approved=True, send_welcome_message=False,
                                     delivery_mode=self.delivery_mode, delivery_status=self.delivery_status)
        else:
            member = mlist.add_role(self.role, self.address, self.display_name or None)
        if self.moderation_action and not isinstance(member, dict):
            member = _find(mlist, self.role, self.address)
            member.moderation_action = self.moderation_action
            member.save()

    def inverse(self, pre_state):
        before = (pre_state or {}).get("membership")
        if before is None:
            return Unsubscribe(self.host, self.fqdn_listname, self.address, self.role,
                               forget_if_unused=not (pre_state or {}).get("address_known", True))
        return SetMember(self.host, self.fqdn_listname, before["address"], self.role,
                         {k: before[k] for k in ("delivery_mode", "delivery_status", "moderation_action")})


@register
@dataclass
class Unsubscribe(_MemberOperation):
    """Remove an address from a roster without a goodbye mail."""

    # Set on the inverse of a Subscribe that brought a new address: forget its user as well.
    forget_if_unused: bool = False

    def describe(self) -> str:
        return f"remove {self.address} as {self.role} of {self.fqdn_listname}"

    def perform(self, effects):
        client = _service(effects, self.host).client
        mlist = get_list(client, self.fqdn_listname)
        member = _find(mlist, self.role, self.address) if mlist else None
        if member is not None:
            # DELETE on the member resource: Mailman 3 sends no goodbye message for it.
            member.unsubscribe()
        if self.forget_if_unused:
            forget_unused_addresses(client, [self.address])

    def inverse(self, pre_state):
        before = (pre_state or {}).get("membership")
        if before is None:
            return None
        return Subscribe(self.host, self.fqdn_listname, before["address"], self.role, before.get("display_name") or "",
                         before.get("delivery_mode"), before.get("delivery_status"), before.get("moderation_action"))


@register
@dataclass
class SetMember(_MemberOperation):
    """Change delivery mode, delivery status or moderation action of a roster entry."""

    values: dict = field(default_factory=dict)

    def describe(self) -> str:
        changes = ", ".join(f"{k}={v}" for k, v in sorted(self.values.items()))
        return f"set {changes} for {self.address} ({self.role}) of {self.fqdn_listname}"


    def perform(self, effects):
        mlist = _list_or_fail(_service(effects, self.host).client, self.fqdn_listname)
        member = _find(mlist, self.role, self.address)
        if member is None:
            raise Mailman3Error(f"{self.address} is not a {self.role} of {self.fqdn_listname}")
        changed = False
        for key in ("delivery_mode", "moderation_action"):
            if key in self.values and member.rest_data.get(key) != self.values[key]:
                if self.values[key] is None:
                    continue  # no REST call resets an action to the list default; left as is
                setattr(member, key, self.values[key])
                changed = True
        if changed:
            member.save()
        if "delivery_status" in self.values and self.values["delivery_status"]:
            prefs = member.preferences
            if prefs.get("delivery_status") != self.values["delivery_status"]:
                prefs["delivery_status"] = self.values["delivery_status"]
                prefs.save()

    def inverse(self, pre_state):
        before = (pre_state or {}).get("membership")
        if before is None:
            return None
        return SetMember(self.host, self.fqdn_listname, self.address, self.role,
                         {k: before.get(k) for k in self.values})


@dataclass
class _BanOperation(Operation):
    fqdn_listname: str = ""
    pattern: str = ""

    def state_key(self) -> tuple:
        return ("mailman3-ban", self.host, self.fqdn_listname, self.pattern)

    def capture(self, reader):
        mlist = get_list(_reader(reader, self.host), self.fqdn_listname)
        return {"banned": bool(mlist) and self.pattern in {str(b.email) for b in mlist.bans}}


@register
@dataclass
class Ban(_BanOperation):
    def describe(self) -> str:
        return f"ban {self.pattern} on {self.fqdn_listname}"

    def perform(self, effects):
        mlist = _list_or_fail(_service(effects, self.host).client, self.fqdn_listname)
        if self.pattern not in {str(b.email) for b in mlist.bans}:
            mlist.bans.add(self.pattern)

    def inverse(self, pre_state):
        return None if (pre_state or {}).get("banned") else Unban(self.host, self.fqdn_listname, self.pattern)


@register
@dataclass
class Unban(_BanOperation):
    def describe(self) -> str:
        return f"lift the ban of {self.pattern} on {self.fqdn_listname}"

    def perform(self, effects):
        mlist = _list_or_fail(_service(effects, self.host).client, self.fqdn_listname)
        for ban in mlist.bans:
            if str(ban.email) == self.pattern:
                ban.delete()

    def inverse(self, pre_state):
        return Ban(self.host, self.fqdn_listname, self.pattern) if (pre_state or {}).get("banned") else None


@register
@dataclass
class Import21(_ListOperation):
    """`mailman import21` of a cleaned config.pck into an existing list.

    Nothing separate undoes it: the list it imports into is removed by CreateList's inverse (a
    list migrated with --resync is not created by the run, so its rollback restores only what
    other operations captured). import21 reports problems on stderr and carries on; the runner
    journals that output and the conversion report shows it.
    """

    pickle_path: str = ""
    charset: str = "utf-8"
    mailman_command: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return f"mailman import21 -c {self.charset} {self.fqdn_listname} {self.pickle_path}"

    def perform(self, effects):
        return effects.run(self.host, [*self.mailman_command, "import21", "-c", self.charset,
                                       names.list_address(self.fqdn_listname), self.pickle_path]).check()


def mailman_command(host) -> list[str]:
    """The argv prefix that runs the Mailman 3 CLI on the lists host, from the inventory.

    `mailman3_user` runs it as Mailman's own user (runuser); `mailman3_run_as_root` passes
    --run-as-root, which Mailman wants before the subcommand.
    """
    argv: list[str] = []
    user = host.var("mailman3_user", None)
    if user:
        argv += ["runuser", "-u", str(user), "--"]
    argv.append(str(host.var("mailman3_bin", "mailman")))
    if host.var("mailman3_run_as_root", False):
        argv.append("--run-as-root")
    config = host.var("mailman3_config", None)
    if config:
        argv += ["-C", str(config)]
    return argv
