"""Inventory: an Ansible-shaped YAML file turned into typed hosts with roles and merged vars.

The file has four top-level keys, all but `hosts` optional::

    name: lab
    vars: {ssh_port: 2222}                 # every host
    hosts:
      eugeni: {address: 127.0.0.11, roles: [mailman2], vars: {...}}
    groups:
      legacy: {hosts: [eugeni], children: [...], vars: {...}}

Variable precedence, lowest first; a later layer replaces a whole value (mappings are not
merged key by key, as with Ansible's default `hash_behaviour`):

1. built-in defaults: ``ssh_port: 22``, ``ssh_user: root``, ``sudo: false``;
2. the top-level ``vars``;
3. the ``vars`` of every group the host belongs to, from the shallowest group to the deepest
   (a parent before its children, so the more specific group wins); groups at the same depth
   apply in name order, so the result never depends on the order of the file;
4. the host's own ``vars``.

A host belongs to a group when the group lists it under ``hosts`` or when it belongs to one of
the group's ``children``, at any depth.

Secrets are never written in an inventory. A var whose value is ``{env: NAME}`` or
``{file: PATH}`` is a `SecretRef`; `Host.secret()` resolves it only when a step needs it, so an
inventory loads on a machine that lacks the secrets. A secret file that exists but is open to
group or others is refused already at load time, and a var whose name looks like a secret
(``*password``, ``*token``, ``*_pass``, ...) holding a plain value is refused outright.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import re
import stat
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Callable, Final, Literal, NoReturn

import yaml

from .bounds import ShapeError, compose_yaml
from .errors import InventoryError, MigrateError, SecretError
from .secrets import Secret, check_secret_file, from_env, from_file


class Role(StrEnum):
    """What a host does in the migration; steps find their targets by role."""

    MAILMAN2 = "mailman2"
    MAILMAN3 = "mailman3"
    WEB = "web"
    MX = "mx"
    SRS = "srs"
    SCHLEUDER = "schleuder"
    DNS_PRIMARY = "dns_primary"
    DNS_SECONDARY = "dns_secondary"
    LEGACY_MTA = "legacy_mta"


ROLE_DESCRIPTIONS: Final[dict[Role, str]] = {
    Role.MAILMAN2: "legacy Mailman 2 list server",
    Role.MAILMAN3: "new Mailman 3 lists host (core, Postorius, HyperKitty)",
    Role.WEB: "serves list archives and the redirects from old archive URLs",
    Role.MX: "mail exchanger for the list domains",
    Role.SRS: "forwarder that rewrites envelope senders (SRS)",
    Role.SCHLEUDER: "Schleuder host; the var schleuder_side says source or target",
    Role.DNS_PRIMARY: "primary name server for the zones that change",
    Role.DNS_SECONDARY: "secondary name server that must follow the primary",
    Role.LEGACY_MTA: "the old mail server's MTA that delivers to the old lists",
}

_ROLE_NAMES: Final = frozenset(r.value for r in Role)

DEFAULT_VARS: Final[dict[str, Any]] = {"ssh_port": 22, "ssh_user": "root", "sudo": False}

SCHLEUDER_SIDES: Final = ("source", "target")

# Where a value came from when no inventory layer set it (see Host.var_origins).
BUILT_IN: Final = "built-in default"

_TOP_LEVEL_KEYS: Final = ("name", "vars", "hosts", "groups")
_HOST_KEYS: Final = ("address", "roles", "vars")
_GROUP_KEYS: Final = ("hosts", "children", "vars")

# Host and group names end up in file names (lab trees, journals), so they stay plain.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DNS_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_SECRET_SUFFIXES: Final = ("password", "passwd", "secret", "token", "api_key", "apikey", "tsig_key", "_pass")

# The line of the whole file, for problems that belong to no key.
FILE_KEY: Final = "(file)"


class _Missing:
    """Marks "no default given" for `Host.var`, since None is a legitimate default."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


@dataclass(frozen=True)
class SecretRef:
    """Where a secret lives. Holds no value; `resolve()` reads it when a step needs it."""

    kind: Literal["env", "file"]
    target: str  # the variable name, or the absolute path of the file
    origin: str  # the key path that holds the reference, e.g. hosts.lists-01.vars.x
    inventory: Path = field(compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}"

    def resolve(self) -> Secret:
        """Read the secret now; a SecretError names the inventory and the key."""
        where = f"{self.inventory}: {self.origin}"
        try:
            secret = from_env(self.target) if self.kind == "env" else from_file(Path(self.target))
        except SecretError as exc:
            raise SecretError(f"{where}: {exc}") from None
        except OSError as exc:
            raise SecretError(f"{where}: cannot read secret file {self.target}: {exc.strerror}") from None
        if not secret.reveal():
            raise SecretError(f"{where}: the secret in {self} is empty")
        return secret


@dataclass(frozen=True)
class Group:
    name: str
    hosts: tuple[str, ...]  # listed directly under the group's `hosts`
    children: tuple[str, ...]
    vars: dict[str, Any] = field(hash=False)
    members: tuple[str, ...]  # every host in the group, directly or through children; file order
    depth: int  # 0 for a group that is nobody's child; a child is deeper than all its parents


@dataclass(frozen=True)
class Host:
    """One target host with its variables merged from every layer (see the module docstring).

    `vars` is meant to be read only; secret references in it stay `SecretRef` objects, and paths
    stay as written: `known_hosts` and `identity_file` are the resolved forms of those two.
    """

    name: str
    address: str
    roles: tuple[Role, ...]
    groups: tuple[str, ...]  # in the order their vars were applied
    vars: dict[str, Any] = field(hash=False)
    port: int
    user: str
    sudo: bool
    known_hosts: Path | None
    identity_file: Path | None
    inventory_path: Path = field(repr=False)
    # For each var, the key path of the layer that set it, e.g. "groups.legacy.vars.ssh_port".
    var_origins: dict[str, str] = field(hash=False, repr=False, compare=False)

    def var(self, key: str, default: Any = MISSING) -> Any:
        if key in self.vars:
            return self.vars[key]
        if default is not MISSING:
            return default
        groups = f", one of its groups ({', '.join(self.groups)})" if self.groups else ""
        raise InventoryError(
            self.inventory_path,
            f"hosts.{self.name}.vars.{key}",
            f"is not set; define it for this host{groups} or in the top-level vars",
        )

    def secret(self, key: str) -> Secret:
        """Resolve the secret reference held by var `key`."""
        value = self.var(key)
        if not isinstance(value, SecretRef):
            raise InventoryError(
                self.inventory_path,
                self.var_origins.get(key, f"hosts.{self.name}.vars.{key}"),
                "is not a secret reference; write {env: VARIABLE} or {file: PATH}",
            )
        return value.resolve()

    def has_role(self, role: Role | str) -> bool:
        return _known_role(role) in self.roles

    @property
    def endpoint(self) -> str:
        """Address and SSH port, as printed to operators (`[2001:db8::2]:22`, `192.0.2.31:22`)."""
        return endpoint(self.address, self.port)


@dataclass(frozen=True)
class Inventory:
    path: Path
    name: str
    sha256: str  # of the file's bytes, so a journal can tell which inventory a run used
    vars: dict[str, Any] = field(hash=False)  # the top-level vars only
    hosts: dict[str, Host] = field(hash=False)  # in the order of the file
    groups: dict[str, Group] = field(hash=False)

    def host(self, name: str) -> Host:
        try:
            return self.hosts[name]
        except KeyError:
            raise InventoryError(
                self.path, f"hosts.{name}", f"no such host{_suggest(name, self.hosts)}; hosts: {', '.join(self.hosts)}"
            ) from None

    def with_role(self, role: Role | str, **var_filters: Any) -> list[Host]:
        """Hosts with `role` in file order; keyword arguments keep those whose vars equal them,
        e.g. ``with_role("schleuder", schleuder_side="target")``."""
        wanted = _known_role(role)
        return [
            h
            for h in self.hosts.values()
            if wanted in h.roles and all(h.vars.get(k, MISSING) == v for k, v in var_filters.items())
        ]

    def one_with_role(self, role: Role | str, **var_filters: Any) -> Host:
        """The single host with `role` (and matching `var_filters`); an error if none or several."""
        found = self.with_role(role, **var_filters)
        if len(found) == 1:
            return found[0]
        what = f"role {_known_role(role)}" + "".join(f", {k}={v}" for k, v in var_filters.items())
        if not found:
            raise InventoryError(self.path, "hosts", f"no host has {what}; exactly one is needed")
        names = ", ".join(h.name for h in found)
        raise InventoryError(self.path, "hosts", f"{len(found)} hosts have {what} ({names}); exactly one is needed")


def load_inventory(path: str | Path) -> Inventory:
    """Read and validate an inventory file; every problem is an InventoryError naming the key."""
    return _Reader(Path(path).expanduser().absolute()).read()


def looks_secret(name: str) -> bool:
    """Whether a var name says it holds a secret, so its value must be a reference."""
    return name.lower().endswith(_SECRET_SUFFIXES)


def _known_role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise MigrateError(
            f"unknown role {role!r}{_suggest(str(role), list(Role))}; known roles: {', '.join(Role)}"
        ) from None


def _suggest(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _kind(value: Any) -> str:
    """How a YAML value reads to someone who wrote it."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (true/false)"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


def endpoint(address: str, port: int) -> str:
    """`address:port` as OpenSSH and URLs write it: an IPv6 address goes in brackets, or its last
    group would read as the port (`2001:db8::2:22`)."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        pass
    name = text[:-1] if text.endswith(".") else text
    labels = name.split(".")
    # An all-digit last label is a mistyped IPv4 address (127.0.0.300), not a name.
    return (
        0 < len(name) <= 253
        and all(_DNS_LABEL.fullmatch(label) for label in labels)
        and not labels[-1].isdigit()
    )


def _check_port(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535:
        return None
    return f"must be a port number from 1 to 65535, got {_kind(value)}"


def _check_user(value: Any) -> str | None:
    if isinstance(value, str) and value and not any(c.isspace() for c in value):
        return None
    return f"must be a user name, got {_kind(value)}"


def _check_bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"must be true or false, got {_kind(value)}"


def _check_path(value: Any) -> str | None:
    return None if isinstance(value, str) and value.strip() else f"must be a file path, got {_kind(value)}"


def _check_schleuder_side(value: Any) -> str | None:
    if value in SCHLEUDER_SIDES:
        return None
    return f"must be one of {', '.join(SCHLEUDER_SIDES)}, got {_kind(value)}"


# Vars the engine itself reads; their types are checked where they are written, so the message
# points at the right layer.
_TYPED_VARS: Final[dict[str, Callable[[Any], str | None]]] = {
    "ssh_port": _check_port,
    "ssh_user": _check_user,
    "sudo": _check_bool,
    "known_hosts": _check_path,
    "identity_file": _check_path,
    "schleuder_side": _check_schleuder_side,
}


class _YAMLLoader(yaml.SafeLoader):
    """Safe loading only: an inventory never constructs Python objects."""


class _Reader:
    """Validates one file; holds the path and the line of every key for error messages."""

    def __init__(self, path: Path):
        self.path = path
        self.folder = path.parent
        self.lines: dict[str, int] = {}

    def fail(self, key: str, problem: str) -> NoReturn:
        line = self._line_of(key)
        raise InventoryError(self.path, key, problem + (f" (line {line})" if line else ""))

    def _line_of(self, key: str) -> int | None:
        # A missing key has no line of its own: point at the nearest enclosing key instead.
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[: max(key.rfind("."), key.rfind("["), 0)]
        return None

    def read(self) -> Inventory:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            raise InventoryError(self.path, FILE_KEY, "no such file") from None
        except OSError as exc:
            raise InventoryError(self.path, FILE_KEY, f"cannot be read: {exc.strerror}") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InventoryError(self.path, FILE_KEY, f"is not UTF-8 text (byte {exc.start})") from None
        top = self._parse(text)
        if top is None:
            self.fail(FILE_KEY, "is empty; an inventory needs at least a `hosts:` mapping")
        if not isinstance(top, dict):
            self.fail(FILE_KEY, f"must be a mapping with `hosts:` at the top, got {_kind(top)}")
        for key in top:
            if key not in _TOP_LEVEL_KEYS:
                self.fail(
                    str(key),
                    f"unknown top-level key{_suggest(str(key), _TOP_LEVEL_KEYS)}; "
                    f"allowed: {', '.join(_TOP_LEVEL_KEYS)}",
                )
        name = top.get("name", self.path.stem)
        if not isinstance(name, str) or not name.strip():
            self.fail("name", f"must be a non-empty text, got {_kind(name)}")
        top_vars = self._read_vars(top.get("vars"), "vars")

        raw_hosts = top.get("hosts")
        if raw_hosts is None or raw_hosts == {}:
            self.fail("hosts", "missing or empty; an inventory needs at least one host")
        if not isinstance(raw_hosts, dict):
            self.fail("hosts", f"must be a mapping of host names to their settings, got {_kind(raw_hosts)}")
        hosts = {self._check_name(n, "hosts", "host"): self._read_host(n, raw) for n, raw in raw_hosts.items()}

        groups = self._read_groups(top.get("groups"), hosts)
        built = {
            n: self._build_host(n, address, roles, host_vars, top_vars, groups)
            for n, (address, roles, host_vars) in hosts.items()
        }
        return Inventory(
            path=self.path,
            name=name,
            sha256=hashlib.sha256(data).hexdigest(),
            vars=top_vars,
            hosts=built,
            groups=groups,
        )

    # -- YAML --------------------------------------------------------------------------------

    def _parse(self, text: str) -> Any:
        loader = _YAMLLoader(text)
        try:
            node = compose_yaml(loader, size=len(text.encode("utf-8")))
            if node is None:
                return None
            self._index(loader, node, "", set())
            return loader.construct_document(node)
        except ShapeError as shape:
            # A document that contains itself, nests too deeply or whose aliases make it vast
            # would hang or crash every task that loads the inventory.
            line = f" (line {shape.at.start_mark.line + 1})" if isinstance(shape.at, yaml.Node) else ""
            advice = "no inventory nests that deep" if shape.kind == "depth" else \
                "check the anchors (&name) and aliases (*name) there"
            raise InventoryError(self.path, shape.path or FILE_KEY, f"{shape.problem}{line}; {advice}") from None
        except yaml.MarkedYAMLError as exc:
            # Only the problem and position: PyYAML's snippet of the line could show a secret
            # someone pasted by mistake.
            mark = exc.problem_mark or exc.context_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else FILE_KEY
            detail = "; ".join(p for p in (exc.context, exc.problem) if p)
            raise InventoryError(self.path, where, f"not valid YAML: {detail}") from None
        except yaml.YAMLError as exc:
            raise InventoryError(self.path, FILE_KEY, f"not valid YAML: {exc}") from None
        finally:
            loader.dispose()

    def _index(self, loader: yaml.SafeLoader, node: yaml.Node, key_path: str, seen: set[int]) -> None:
        """Record the line of every key and refuse duplicate keys, which PyYAML would silently
        resolve by keeping the last one (a second `eugeni:` would replace the first)."""
        if id(node) in seen:  # an alias points at a node already indexed
            return
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, tuple[int, str]] = {}  # key as the mapping will hold it → (line, spelling)
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
                child = f"{key_path}.{key}" if key_path else str(key)
                line = key_node.start_mark.line + 1
                identity = self._key_identity(loader, key_node)
                if identity in first:
                    first_line, spelling = first[identity]
                    same = "" if spelling == key else f", as {spelling!r} and {key!r}, which YAML reads as one key"
                    raise InventoryError(
                        self.path,
                        child,
                        f"defined twice (lines {first_line} and {line}{same}); "
                        "YAML would silently keep only the last one",
                    )
                first[identity] = (line, key)
                self.lines.setdefault(child, line)
                self._index(loader, value_node, child, seen)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                child = f"{key_path}[{i}]"
                self.lines.setdefault(child, item.start_mark.line + 1)
                self._index(loader, item, child, seen)

    @staticmethod
    def _key_identity(loader: yaml.SafeLoader, key_node: yaml.Node) -> Any:
        """What the mapping will be keyed by. YAML 1.1 reads `yes`, `true` and `on` as True and
        `1`, `0x1` and `+1` as 1, and a Python dict then also takes True, 1 and 1.0 for one key: two
        keys are the same when the dict PyYAML builds would merge them."""
        if isinstance(key_node, yaml.ScalarNode):
            value = loader.construct_object(key_node)
            try:
                hash(value)
            except TypeError:
                pass
            else:
                return value
        return ("node", id(key_node))

    # -- names and vars ----------------------------------------------------------------------

    def _check_name(self, name: Any, section: str, what: str) -> str:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            self.fail(
                f"{section}.{name}",
                f"{what} names use letters, digits, '.', '_' and '-' and start with a letter or "
                f"digit (quote names YAML reads as numbers or true/false)",
            )
        return name

    def _read_vars(self, raw: Any, key_path: str) -> dict[str, Any]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.fail(key_path, f"must be a mapping of variable names to values, got {_kind(raw)}")
        result: dict[str, Any] = {}
        for name, value in raw.items():
            var_path = f"{key_path}.{name}"
            if not isinstance(name, str) or not _VAR_NAME.fullmatch(name):
                self.fail(var_path, "variable names use letters, digits and '_' and do not start with a digit")
            value = self._read_value(name, value, var_path)
            check = _TYPED_VARS.get(name)
            problem = check(value) if check else None
            if problem:
                self.fail(var_path, problem)
            result[name] = value
        return result

    def _read_value(self, name: Any, value: Any, key_path: str) -> Any:
        """Turn secret references into SecretRef at any depth and refuse inline secrets."""
        if isinstance(value, dict) and ("env" in value or "file" in value):
            value = self._secret_ref(value, key_path)
        elif isinstance(value, dict):
            value = {k: self._read_value(k, v, f"{key_path}.{k}") for k, v in value.items()}
        elif isinstance(value, list):
            value = [self._read_value(None, v, f"{key_path}[{i}]") for i, v in enumerate(value)]
        # true/false and null cannot hold a secret (e.g. `use_api_token: false`), so they pass.
        if isinstance(name, str) and looks_secret(name) and not isinstance(value, (SecretRef, bool, type(None))):
            # The value is deliberately left out of the message: it may be the secret itself.
            self.fail(
                key_path,
                "looks like a secret but holds a plain value; never write secrets in an inventory, "
                "refer to them with {env: VARIABLE} or {file: PATH} (a file only its owner can read)",
            )
        return value

    def _secret_ref(self, value: dict[Any, Any], key_path: str) -> SecretRef:
        if len(value) != 1:
            self.fail(key_path, "a secret reference has exactly one key: {env: VARIABLE} or {file: PATH}")
        ((kind, target),) = value.items()
        if kind == "env":
            if not isinstance(target, str) or not _ENV_NAME.fullmatch(target):
                self.fail(f"{key_path}.env", f"must be an environment variable name, got {_kind(target)}")
            return SecretRef("env", target, key_path, self.path)
        if not isinstance(target, str) or not target.strip():
            self.fail(f"{key_path}.file", f"must be a file path, got {_kind(target)}")
        file = self._resolve_path(target, f"{key_path}.file")
        self._refuse_open_secret_file(file, key_path)
        return SecretRef("file", str(file), key_path, self.path)

    def _refuse_open_secret_file(self, file: Path, key_path: str) -> None:
        try:
            mode = file.stat().st_mode
        except OSError:
            return  # missing here, or in a folder we may not enter: resolving will say so
        if not stat.S_ISREG(mode):
            self.fail(key_path, f"secret file {file} is not a regular file")
        try:
            check_secret_file(file)
        except SecretError as exc:
            self.fail(key_path, str(exc))

    def _resolve_path(self, text: str, key_path: str) -> Path:
        """Relative paths are relative to the inventory's folder, so an inventory and its files
        can move together; `~` is the home of whoever runs the migration, as for ssh."""
        try:
            path = Path(text).expanduser()
        except RuntimeError:
            self.fail(key_path, f"cannot expand {text!r}: the home folder is unknown")
        return self.folder / path

    # -- hosts -------------------------------------------------------------------------------

    def _read_host(self, name: str, raw: Any) -> tuple[str, tuple[Role, ...], dict[str, Any]]:
        key = f"hosts.{name}"
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            self.fail(key, f"must be a mapping with at least `address:`, got {_kind(raw)}")
        for unknown in (k for k in raw if k not in _HOST_KEYS):
            hint = f"; host variables go under {key}.vars" if isinstance(unknown, str) and _VAR_NAME.fullmatch(unknown) else ""
            self.fail(f"{key}.{unknown}", f"unknown key; a host has {', '.join(_HOST_KEYS)}{hint}")

        address = raw.get("address")
        if address is None:
            self.fail(f"{key}.address", "missing; every host needs an address (an IP address or a DNS name)")
        if not isinstance(address, str):
            self.fail(f"{key}.address", f"must be an IP address or a DNS name, got {_kind(address)}")
        if not _is_address(address):
            self.fail(f"{key}.address", f"{address!r} is neither an IP address nor a valid DNS name")

        return address, self._read_roles(raw.get("roles"), f"{key}.roles"), self._read_vars(raw.get("vars"), f"{key}.vars")

    def _read_roles(self, raw: Any, key: str) -> tuple[Role, ...]:
        if raw is None:
            return ()
        if isinstance(raw, str):
            self.fail(key, f"must be a list, e.g. roles: [{raw}]")
        if not isinstance(raw, list):
            self.fail(key, f"must be a list of role names, got {_kind(raw)}")
        roles: list[Role] = []
        for i, role in enumerate(raw):
            if not isinstance(role, str) or role not in _ROLE_NAMES:
                self.fail(
                    f"{key}[{i}]",
                    f"unknown role {role!r}{_suggest(str(role), list(Role))}; known roles: {', '.join(Role)}",
                )
            roles.append(Role(role))
        return tuple(dict.fromkeys(roles))

    def _build_host(
        self,
        name: str,
        address: str,
        roles: tuple[Role, ...],
        host_vars: dict[str, Any],
        top_vars: dict[str, Any],
        groups: dict[str, Group],
    ) -> Host:
        own_groups = sorted((g for g in groups.values() if name in g.members), key=lambda g: (g.depth, g.name))
        layers = [(BUILT_IN, DEFAULT_VARS), ("vars", top_vars)]
        layers += [(f"groups.{g.name}.vars", g.vars) for g in own_groups]
        layers.append((f"hosts.{name}.vars", host_vars))
        merged: dict[str, Any] = {}
        origins: dict[str, str] = {}
        for origin, layer in layers:
            for key, value in layer.items():
                merged[key] = value
                origins[key] = origin if origin == BUILT_IN else f"{origin}.{key}"

        if Role.SCHLEUDER in roles and "schleuder_side" not in merged:
            self.fail(
                f"hosts.{name}.vars.schleuder_side",
                f"missing; a host with role schleuder needs schleuder_side: {' or '.join(SCHLEUDER_SIDES)}",
            )

        def path_var(key: str) -> Path | None:
            value = merged.get(key)
            return None if value is None else self._resolve_path(value, origins[key])

        return Host(
            name=name,
            address=address,
            roles=roles,
            groups=tuple(g.name for g in own_groups),
            vars=merged,
            port=merged["ssh_port"],
            user=merged["ssh_user"],
            sudo=merged["sudo"],
            known_hosts=path_var("known_hosts"),
            identity_file=path_var("identity_file"),
            inventory_path=self.path,
            var_origins=origins,
        )

    # -- groups ------------------------------------------------------------------------------

    def _read_groups(self, raw: Any, hosts: dict[str, Any]) -> dict[str, Group]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.fail("groups", f"must be a mapping of group names to their settings, got {_kind(raw)}")
        names = [self._check_name(n, "groups", "group") for n in raw]
        direct: dict[str, tuple[str, ...]] = {}
        children: dict[str, tuple[str, ...]] = {}
        group_vars: dict[str, dict[str, Any]] = {}
        for name in names:
            key = f"groups.{name}"
            settings = raw[name] if raw[name] is not None else {}
            if not isinstance(settings, dict):
                self.fail(key, f"must be a mapping with hosts, children or vars, got {_kind(settings)}")
            for unknown in (k for k in settings if k not in _GROUP_KEYS):
                self.fail(f"{key}.{unknown}", f"unknown key; a group has {', '.join(_GROUP_KEYS)}")
            direct[name] = self._read_refs(settings.get("hosts"), f"{key}.hosts", hosts, "host", "hosts")
            children[name] = self._read_refs(settings.get("children"), f"{key}.children", names, "group", "groups")
            group_vars[name] = self._read_vars(settings.get("vars"), f"{key}.vars")

        self._refuse_cycles(names, children)
        depth: dict[str, int] = {}

        def depth_of(name: str) -> int:
            if name not in depth:
                parents = [p for p in names if name in children[p]]
                depth[name] = 1 + max(map(depth_of, parents)) if parents else 0
            return depth[name]

        members: dict[str, set[str]] = {}

        def members_of(name: str) -> set[str]:
            if name not in members:
                members[name] = set(direct[name]).union(*(members_of(c) for c in children[name]))
            return members[name]

        return {
            name: Group(
                name=name,
                hosts=direct[name],
                children=children[name],
                vars=group_vars[name],
                members=tuple(h for h in hosts if h in members_of(name)),
                depth=depth_of(name),
            )
            for name in names
        }

    def _read_refs(self, raw: Any, key: str, defined: Any, what: str, section: str) -> tuple[str, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list):
            example = f"[{raw}]" if isinstance(raw, str) else "[a, b]"
            self.fail(key, f"must be a list of {what} names, e.g. {example}; got {_kind(raw)}")
        for i, ref in enumerate(raw):
            if not isinstance(ref, str) or ref not in defined:
                self.fail(
                    f"{key}[{i}]",
                    f"no {what} {ref!r} is defined under `{section}`{_suggest(str(ref), defined)}",
                )
        return tuple(dict.fromkeys(raw))

    def _refuse_cycles(self, names: list[str], children: dict[str, tuple[str, ...]]) -> None:
        done: set[str] = set()

        def visit(name: str, trail: list[str]) -> None:
            if name in done:
                return
            path = [*trail, name]
            for i, child in enumerate(children[name]):
                if child in path:
                    cycle = " -> ".join([*path[path.index(child):], child])
                    self.fail(f"groups.{name}.children[{i}]", f"makes a cycle ({cycle}); a group cannot contain itself")
                visit(child, path)
            done.add(name)

        for name in names:
            visit(name, [])
