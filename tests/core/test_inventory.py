"""Inventory loading: the shipped inventories, precedence, secrets, and one test per malformed case."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrate.core.errors import InventoryError, MigrateError, SecretError
from migrate.core.inventory import (
    BUILT_IN,
    DEFAULT_VARS,
    MISSING,
    Role,
    SecretRef,
    load_inventory,
    looks_secret,
)
from migrate.core.secrets import REDACTED, Secret, redact

from ..helpers.bounded import run_bounded

INVENTORIES = Path(__file__).resolve().parents[2] / "inventories"
SHIPPED = sorted(INVENTORIES.glob("*.yaml"))

MINIMAL = """\
hosts:
  eugeni:
    address: 127.0.0.11
"""


def write(tmp_path: Path, text: str, name: str = "inv.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def load_error(tmp_path: Path, text: str) -> InventoryError:
    path = write(tmp_path, text)
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    return caught.value


def secret_file(tmp_path: Path, name: str, value: str, mode: int = 0o600) -> Path:
    path = tmp_path / name
    path.write_text(value + "\n")
    path.chmod(mode)
    return path


# -- the shipped inventories -----------------------------------------------------------------


def test_three_inventories_are_shipped() -> None:
    assert [p.name for p in SHIPPED] == ["lab.yaml", "production.yaml", "staging.yaml"]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_inventory_loads(path: Path) -> None:
    inventory = load_inventory(path)
    assert inventory.name == path.stem
    assert len(inventory.sha256) == 64
    for role in (Role.MAILMAN2, Role.MAILMAN3, Role.WEB, Role.MX, Role.DNS_PRIMARY, Role.LEGACY_MTA):
        inventory.one_with_role(role)
    assert inventory.with_role(Role.SRS) and inventory.with_role(Role.DNS_SECONDARY)
    assert inventory.one_with_role("schleuder", schleuder_side="source").has_role(Role.MAILMAN2)
    assert inventory.one_with_role("schleuder", schleuder_side="target")
    assert set(inventory.one_with_role(Role.MAILMAN3).vars) >= {
        "mailman3_rest_url",
        "mailman3_rest_user",
        "mailman3_rest_password",
        "mailman3_bin",
        "mailman3_config",
    }
    assert isinstance(inventory.one_with_role(Role.MAILMAN3).vars["mailman3_rest_password"], SecretRef)
    for host in inventory.hosts.values():
        assert host.var("maintenance_notice_path").startswith("/")
        assert host.known_hosts is not None and host.known_hosts.is_absolute()


@pytest.mark.parametrize("path", [p for p in SHIPPED if p.stem != "lab"], ids=lambda p: p.stem)
def test_example_inventories_use_documentation_addresses_only(path: Path) -> None:
    import ipaddress

    documentation = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")]
    for host in load_inventory(path).hosts.values():
        try:
            address = ipaddress.ip_address(host.address)
        except ValueError:
            assert host.address.endswith((".example.org", ".example.net", ".example.com")), host.address
        else:
            assert any(address in net for net in documentation), host.address


def test_example_inventories_run_as_unprivileged_user_with_sudo() -> None:
    staging = load_inventory(INVENTORIES / "staging.yaml")
    assert all(h.user != "root" and h.sudo and h.port == 22 for h in staging.hosts.values())
    assert all(isinstance(v, SecretRef) and v.kind == "env" for h in staging.hosts.values() for k, v in h.vars.items() if looks_secret(k))


LAB_HOSTS = {
    "eugeni": ("127.0.0.11", {"mailman2", "legacy_mta", "schleuder"}),
    "lists-01": ("127.0.0.12", {"mailman3"}),
    "web-01": ("127.0.0.13", {"web"}),
    "mx-new": ("127.0.0.14", {"mx"}),
    "srs-01": ("127.0.0.15", {"srs"}),
    "tails-schleuder": ("127.0.0.16", {"schleuder"}),
    "ns1": ("127.0.0.17", {"dns_primary"}),
    "ns2": ("127.0.0.18", {"dns_secondary"}),
}


def test_lab_inventory_matches_what_the_lab_builds() -> None:
    lab = load_inventory(INVENTORIES / "lab.yaml")
    assert {n: (h.address, set(h.roles)) for n, h in lab.hosts.items()} == LAB_HOSTS
    for name, host in lab.hosts.items():
        # As in production: root on the legacy host, the unprivileged `migrate` with sudo elsewhere.
        assert (host.port, host.user, host.sudo) == ((2222, "root", False) if name == "eugeni" else (2222, "migrate", True))
        assert host.known_hosts == Path("/var/lib/migrate-lab/ssh/known_hosts")
        assert host.identity_file == Path("/var/lib/migrate-lab/ssh/client_ed25519")
        assert host.var("maintenance_notice_path") == f"/var/lib/migrate-lab/hosts/{name}/root/etc/maintenance-notice"
    assert lab.host("eugeni").var("schleuder_side") == "source"
    assert lab.host("tails-schleuder").var("schleuder_side") == "target"
    assert lab.host("eugeni").var("mailman2_var_dir") == "/var/lib/migrate-lab/hosts/eugeni/root/var/lib/mailman"
    lists = lab.host("lists-01")
    assert lists.var("mailman3_rest_url") == "http://127.0.0.12:8001/3.1"
    assert lists.var("mailman3_rest_user") == "restadmin"
    assert lists.var("mailman3_rest_password") == SecretRef(
        "file", "/var/lib/migrate-lab/secrets/mailman3_rest", "hosts.lists-01.vars.mailman3_rest_password", lab.path
    )
    assert lists.var("mailman3_bin") == "/var/lib/migrate-lab/venvs/mailman3/bin/mailman"
    assert lists.var("mailman3_config") == "/var/lib/migrate-lab/hosts/lists-01/mailman3/mailman.cfg"
    # Groups take part: the legacy group overrides the new platform's release.
    assert lab.host("eugeni").var("debian_release") == "buster"
    assert lab.host("ns1").var("debian_release") == "bookworm"
    assert lab.host("tails-schleuder").var("admin_contact") != lab.host("lists-01").var("admin_contact")


# -- precedence ------------------------------------------------------------------------------

PRECEDENCE = """\
vars:
  level: top
  top_only: top
  ssh_port: 2222
hosts:
  deep:
    address: deep.example.org
    vars:
      level: host
  mid:
    address: mid.example.org
  other:
    address: 192.0.2.3
groups:
  # Listed child-first and out of name order: the file order must not matter.
  child:
    hosts: [deep]
    vars: {level: child, child_only: child}
  parent:
    children: [child]
    hosts: [mid]
    vars: {level: parent, parent_only: parent, ssh_user: admin}
  zeta:
    hosts: [deep, mid]
    vars: {unrelated: zeta}
  alpha:
    hosts: [deep, mid]
    vars: {unrelated: alpha}
"""


def test_precedence_defaults_top_parent_child_host(tmp_path: Path) -> None:
    inventory = load_inventory(write(tmp_path, PRECEDENCE))
    deep, mid, other = inventory.host("deep"), inventory.host("mid"), inventory.host("other")

    assert deep.var("level") == "host"
    assert mid.var("level") == "parent"
    assert other.var("level") == "top"
    assert deep.var("child_only") == "child" and deep.var("parent_only") == "parent"
    assert deep.var("top_only") == "top"
    assert "child_only" not in mid.vars

    assert (other.port, other.user, other.sudo) == (2222, "root", False)
    assert (deep.port, deep.user) == (2222, "admin")
    assert other.var_origins["sudo"] == BUILT_IN
    assert deep.var_origins["level"] == "hosts.deep.vars.level"
    assert deep.var_origins["child_only"] == "groups.child.vars.child_only"
    assert deep.var_origins["ssh_user"] == "groups.parent.vars.ssh_user"


def test_child_group_wins_over_parent_without_host_vars(tmp_path: Path) -> None:
    text = PRECEDENCE.replace("    vars:\n      level: host\n", "")
    assert load_inventory(write(tmp_path, text)).host("deep").var("level") == "child"


def test_groups_apply_by_depth_then_name(tmp_path: Path) -> None:
    inventory = load_inventory(write(tmp_path, PRECEDENCE))
    # alpha, parent and zeta are all roots: name order; child is deeper, so last.
    assert inventory.host("deep").groups == ("alpha", "parent", "zeta", "child")
    assert inventory.host("deep").var("unrelated") == "zeta"
    assert inventory.host("other").groups == ()
    assert inventory.groups["parent"].members == ("deep", "mid")
    assert inventory.groups["child"].depth == 1


def test_deeper_group_wins_over_shallower_unrelated_group(tmp_path: Path) -> None:
    # b (depth 1, under a) wins over c (depth 0) although c sorts after b by name.
    inventory = load_inventory(
        write(
            tmp_path,
            """\
            hosts:
              h: {address: 192.0.2.1}
            groups:
              a: {children: [b]}
              b: {hosts: [h], vars: {x: b}}
              c: {hosts: [h], vars: {x: c}}
            """,
        )
    )
    assert inventory.host("h").groups == ("a", "c", "b")
    assert inventory.host("h").var("x") == "b"


def test_membership_through_nested_children(tmp_path: Path) -> None:
    inventory = load_inventory(
        write(
            tmp_path,
            """\
            hosts:
              h: {address: 192.0.2.1}
            groups:
              top: {children: [middle], vars: {x: top, y: top}}
              middle: {children: [bottom], vars: {x: middle}}
              bottom: {hosts: [h]}
            """,
        )
    )
    host = inventory.host("h")
    assert host.groups == ("top", "middle", "bottom")
    assert (host.var("x"), host.var("y")) == ("middle", "top")


def test_mapping_values_are_replaced_not_merged(tmp_path: Path) -> None:
    inventory = load_inventory(
        write(
            tmp_path,
            """\
            vars: {limits: {a: 1, b: 2}}
            hosts:
              h: {address: 192.0.2.1, vars: {limits: {a: 9}}}
            """,
        )
    )
    assert inventory.host("h").var("limits") == {"a": 9}


def test_builtin_defaults(tmp_path: Path) -> None:
    host = load_inventory(write(tmp_path, MINIMAL)).host("eugeni")
    assert {k: host.vars[k] for k in DEFAULT_VARS} == {"ssh_port": 22, "ssh_user": "root", "sudo": False}
    assert (host.port, host.user, host.sudo, host.known_hosts, host.identity_file) == (22, "root", False, None, None)
    assert host.roles == () and host.groups == ()


def test_relative_paths_resolve_against_the_inventory_folder(tmp_path: Path) -> None:
    folder = tmp_path / "site"
    folder.mkdir()
    path = write(
        folder,
        """\
        vars: {known_hosts: ssh/known_hosts, identity_file: /abs/key}
        hosts:
          h: {address: 192.0.2.1}
        """,
    )
    host = load_inventory(path).host("h")
    assert host.known_hosts == folder / "ssh" / "known_hosts"
    assert host.identity_file == Path("/abs/key")


def test_home_folder_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path = write(tmp_path, "vars: {identity_file: ~/.ssh/id_ed25519}\n" + MINIMAL)
    assert load_inventory(path).host("eugeni").identity_file == tmp_path / "home" / ".ssh" / "id_ed25519"


def test_name_defaults_to_file_stem_and_sha256_matches(tmp_path: Path) -> None:
    import hashlib

    path = write(tmp_path, MINIMAL, name="site-a.yaml")
    inventory = load_inventory(str(path))
    assert inventory.name == "site-a"
    assert inventory.path == path
    assert inventory.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_hosts_keep_file_order(tmp_path: Path) -> None:
    text = "hosts:\n" + "".join(f"  {n}: {{address: 192.0.2.{i}}}\n" for i, n in enumerate("zbxa", 1))
    assert list(load_inventory(write(tmp_path, text)).hosts) == ["z", "b", "x", "a"]


# -- lookups ---------------------------------------------------------------------------------

ROLES = """\
hosts:
  old: {address: 192.0.2.1, roles: [mailman2, schleuder], vars: {schleuder_side: source}}
  srs-a: {address: 192.0.2.2, roles: [srs]}
  srs-b: {address: 192.0.2.3, roles: [srs]}
  partner: {address: 192.0.2.4, roles: [schleuder], vars: {schleuder_side: target}}
"""


def test_with_role_and_one_with_role(tmp_path: Path) -> None:
    inventory = load_inventory(write(tmp_path, ROLES))
    assert [h.name for h in inventory.with_role("srs")] == ["srs-a", "srs-b"]
    assert [h.name for h in inventory.with_role(Role.SCHLEUDER)] == ["old", "partner"]
    assert inventory.with_role(Role.MX) == []
    assert inventory.one_with_role("mailman2").name == "old"
    assert inventory.one_with_role(Role.SCHLEUDER, schleuder_side="target").name == "partner"
    assert inventory.host("old").has_role("mailman2") and not inventory.host("old").has_role(Role.SRS)


def test_one_with_role_refuses_several_or_none(tmp_path: Path) -> None:
    path = write(tmp_path, ROLES)
    inventory = load_inventory(path)
    with pytest.raises(InventoryError, match=r"2 hosts have role srs \(srs-a, srs-b\)") as several:
        inventory.one_with_role(Role.SRS)
    assert str(several.value).startswith(str(path))
    with pytest.raises(InventoryError, match="no host has role mx"):
        inventory.one_with_role("mx")


def test_unknown_role_in_a_lookup_is_an_error(tmp_path: Path) -> None:
    inventory = load_inventory(write(tmp_path, ROLES))
    with pytest.raises(MigrateError, match=r"unknown role 'mailman'.*did you mean"):
        inventory.with_role("mailman")
    with pytest.raises(MigrateError, match="unknown role"):
        inventory.host("old").has_role("lists")


def test_unknown_host(tmp_path: Path) -> None:
    path = write(tmp_path, ROLES)
    with pytest.raises(InventoryError) as caught:
        load_inventory(path).host("srs-c")
    assert str(caught.value).startswith(f"{path}: hosts.srs-c: no such host")
    assert "srs-a, srs-b" in str(caught.value)


def test_var_missing_names_host_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, ROLES)
    host = load_inventory(path).host("srs-a")
    assert host.var("nope", None) is None
    assert host.var("nope", "fallback") == "fallback"
    with pytest.raises(InventoryError) as caught:
        host.var("mailman3_bin")
    assert str(caught.value).startswith(f"{path}: hosts.srs-a.vars.mailman3_bin: is not set")
    assert repr(MISSING) == "MISSING"


def test_host_is_frozen_and_hashable(tmp_path: Path) -> None:
    host = load_inventory(write(tmp_path, MINIMAL)).host("eugeni")
    with pytest.raises(AttributeError):
        host.address = "192.0.2.9"  # type: ignore[misc]
    assert host in {host}


# -- secrets ---------------------------------------------------------------------------------


def test_secret_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, MINIMAL + "    vars: {rest_password: {env: TEST_INV_REST_PASSWORD}}\n")
    host = load_inventory(path).host("eugeni")
    monkeypatch.setenv("TEST_INV_REST_PASSWORD", "s3cret-from-env")
    secret = host.secret("rest_password")
    assert isinstance(secret, Secret)
    assert secret.reveal() == "s3cret-from-env"
    assert secret.source == "env:TEST_INV_REST_PASSWORD"


def test_unset_env_secret_fails_only_when_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_INV_UNSET", raising=False)
    path = write(tmp_path, MINIMAL + "    vars: {api_token: {env: TEST_INV_UNSET}}\n")
    host = load_inventory(path).host("eugeni")
    with pytest.raises(SecretError) as caught:
        host.secret("api_token")
    assert str(caught.value) == (
        f"{path}: hosts.eugeni.vars.api_token: environment variable TEST_INV_UNSET is not set"
    )


def test_empty_secret_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_INV_EMPTY", "")
    host = load_inventory(write(tmp_path, MINIMAL + "    vars: {x_token: {env: TEST_INV_EMPTY}}\n")).host("eugeni")
    with pytest.raises(SecretError, match="is empty"):
        host.secret("x_token")


def test_secret_from_relative_file(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    secret_file(tmp_path / "secrets", "rest", "s3cret-from-file")
    path = write(tmp_path, MINIMAL + "    vars: {rest_password: {file: secrets/rest}}\n")
    ref = load_inventory(path).host("eugeni").vars["rest_password"]
    assert ref == SecretRef("file", str(tmp_path / "secrets" / "rest"), "hosts.eugeni.vars.rest_password", path)
    secret = load_inventory(path).host("eugeni").secret("rest_password")
    assert secret.reveal() == "s3cret-from-file"


def test_missing_secret_file_fails_only_when_resolved(tmp_path: Path) -> None:
    path = write(tmp_path, "vars: {rest_password: {file: nowhere}}\n" + MINIMAL)
    host = load_inventory(path).host("eugeni")
    with pytest.raises(SecretError) as caught:
        host.secret("rest_password")
    # The top-level vars set it, so that is where the message points.
    assert str(caught.value).startswith(f"{path}: vars.rest_password: secret file {tmp_path / 'nowhere'} does not exist")


def test_secret_file_made_world_readable_after_loading_is_refused_when_resolved(tmp_path: Path) -> None:
    file = secret_file(tmp_path, "rest", "value-1234")
    path = write(tmp_path, MINIMAL + "    vars: {rest_password: {file: rest}}\n")
    host = load_inventory(path).host("eugeni")
    file.chmod(0o644)
    with pytest.raises(SecretError, match="chmod 600"):
        host.secret("rest_password")


def test_secret_of_a_plain_var_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "    vars: {mailman3_bin: /usr/bin/mailman}\n")
    host = load_inventory(path).host("eugeni")
    with pytest.raises(InventoryError) as caught:
        host.secret("mailman3_bin")
    assert str(caught.value).startswith(f"{path}: hosts.eugeni.vars.mailman3_bin: is not a secret reference")
    with pytest.raises(InventoryError, match="hosts.eugeni.vars.absent: is not set"):
        host.secret("absent")


def test_resolved_secret_never_shows_its_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    value = "hunter2-do-not-print"
    monkeypatch.setenv("TEST_INV_SHOWN", value)
    host = load_inventory(write(tmp_path, MINIMAL + "    vars: {db_password: {env: TEST_INV_SHOWN}}\n")).host("eugeni")
    secret = host.secret("db_password")
    for shown in (repr(secret), str(secret), f"{secret}", repr(host), str(host), repr(host.vars)):
        assert value not in shown
    assert str(secret) == REDACTED
    assert redact(f"login with {secret.reveal()}") == f"login with {REDACTED}"


def test_secret_refs_inside_nested_values(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "    vars: {smtp: {user: lists, password: {env: SMTP_PW}}}\n")
    smtp = load_inventory(path).host("eugeni").var("smtp")
    assert smtp["password"] == SecretRef("env", "SMTP_PW", "hosts.eugeni.vars.smtp.password", path)


@pytest.mark.parametrize(
    "name, secret",
    [
        ("mailman3_rest_password", True),
        ("db_passwd", True),
        ("django_secret", True),
        ("api_token", True),
        ("hyperkitty_api_key", True),
        ("schleuder_apikey", True),
        ("dns_tsig_key", True),
        ("smtp_pass", True),
        ("ADMIN_PASSWORD", True),
        ("bypass", False),
        ("mailman3_rest_user", False),
        ("password_file_mode", False),
        ("schleuder_side", False),
    ],
)
def test_looks_secret(name: str, secret: bool) -> None:
    assert looks_secret(name) is secret


# -- malformed inventories: one clear message naming the file and the key --------------------


def test_bad_yaml_syntax_reports_line_and_column(tmp_path: Path) -> None:
    error = load_error(
        tmp_path,
        """\
        hosts:
          eugeni:
            address: 127.0.0.11
           roles: [mailman2]
        """,
    )
    assert error.key == "line 4, column 4"
    assert "not valid YAML" in error.problem


def test_bad_yaml_message_does_not_quote_the_line(tmp_path: Path) -> None:
    error = load_error(tmp_path, "hosts:\n  h: {address: 192.0.2.1, vars: {x: hunter2-leaked: y}}\n")
    assert "hunter2" not in str(error)


def test_unknown_role(tmp_path: Path) -> None:
    error = load_error(tmp_path, MINIMAL + "    roles: [mailman2, mailman4]\n")
    assert error.key == "hosts.eugeni.roles[1]"
    assert "unknown role 'mailman4'" in error.problem
    assert "known roles: mailman2, mailman3," in error.problem
    assert "(line 4)" in error.problem


def test_missing_address(tmp_path: Path) -> None:
    error = load_error(tmp_path, "hosts:\n  eugeni:\n    roles: [mailman2]\n")
    assert error.key == "hosts.eugeni.address"
    assert error.problem.startswith("missing; every host needs an address")
    assert "(line 2)" in error.problem


def test_host_without_settings_is_missing_its_address(tmp_path: Path) -> None:
    assert load_error(tmp_path, "hosts:\n  eugeni:\n").key == "hosts.eugeni.address"


def test_duplicate_host(tmp_path: Path) -> None:
    error = load_error(
        tmp_path,
        """\
        hosts:
          eugeni:
            address: 127.0.0.11
          lists-01:
            address: 127.0.0.12
          eugeni:
            address: 127.0.0.99
        """,
    )
    assert error.key == "hosts.eugeni"
    assert "defined twice (lines 2 and 6)" in error.problem


def test_duplicate_key_in_nested_vars(tmp_path: Path) -> None:
    error = load_error(tmp_path, MINIMAL + "    vars:\n      ssh_port: 22\n      ssh_port: 2222\n")
    assert error.key == "hosts.eugeni.vars.ssh_port"


def test_inline_secret(tmp_path: Path) -> None:
    error = load_error(tmp_path, MINIMAL + "    vars:\n      mailman3_rest_password: hunter2-inline\n")
    assert error.key == "hosts.eugeni.vars.mailman3_rest_password"
    assert "{env: VARIABLE} or {file: PATH}" in error.problem
    assert "hunter2" not in str(error)


@pytest.mark.parametrize("value", ["12345", "[a, b]", "{value: x}"])
def test_inline_secret_of_any_plain_shape(tmp_path: Path, value: str) -> None:
    error = load_error(tmp_path, f"vars:\n  api_token: {value}\n" + MINIMAL)
    assert error.key == "vars.api_token"


def test_inline_secret_nested_in_a_mapping(tmp_path: Path) -> None:
    error = load_error(tmp_path, MINIMAL + "    vars: {smtp: {user: lists, password: hunter2}}\n")
    assert error.key == "hosts.eugeni.vars.smtp.password"


@pytest.mark.parametrize("value, expected", [("null", None), ("false", False)])
def test_secret_named_var_may_be_null_or_boolean(tmp_path: Path, value: str, expected: bool | None) -> None:
    path = write(tmp_path, MINIMAL + f"    vars: {{use_api_token: {value}}}\n")
    assert load_inventory(path).host("eugeni").var("use_api_token") is expected


def test_world_readable_secret_file(tmp_path: Path) -> None:
    file = secret_file(tmp_path, "rest", "value-1234", mode=0o644)
    error = load_error(tmp_path, MINIMAL + "    vars:\n      rest_password: {file: rest}\n")
    assert error.key == "hosts.eugeni.vars.rest_password"
    assert f"secret file {file} is accessible by group or others (mode 0644)" in error.problem
    assert "chmod 600" in error.problem


def test_group_readable_secret_file(tmp_path: Path) -> None:
    secret_file(tmp_path, "rest", "value-1234", mode=0o640)
    error = load_error(tmp_path, "groups:\n  g:\n    vars: {x_secret: {file: rest}}\n" + MINIMAL)
    assert error.key == "groups.g.vars.x_secret"


def test_secret_file_that_is_a_folder(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir(mode=0o700)
    error = load_error(tmp_path, MINIMAL + "    vars: {x_secret: {file: dir}}\n")
    assert "is not a regular file" in error.problem


@pytest.mark.parametrize(
    "ref, key",
    [
        ("{env: A, file: b}", "hosts.eugeni.vars.x_token"),
        ("{env: A, default: b}", "hosts.eugeni.vars.x_token"),
        ("{env: 'not a name'}", "hosts.eugeni.vars.x_token.env"),
        ("{env: [A]}", "hosts.eugeni.vars.x_token.env"),
        ("{file: ''}", "hosts.eugeni.vars.x_token.file"),
        ("{file: 12}", "hosts.eugeni.vars.x_token.file"),
    ],
)
def test_malformed_secret_reference(tmp_path: Path, ref: str, key: str) -> None:
    assert load_error(tmp_path, MINIMAL + f"    vars: {{x_token: {ref}}}\n").key == key


def test_unknown_child_group(tmp_path: Path) -> None:
    groups = """\
    groups:
      legacy:
        hosts: [eugeni]
      new_platform:
        children: [legacy, dsn]
      dns: {}
    """
    error = load_error(tmp_path, MINIMAL + textwrap.dedent(groups))
    assert error.key == "groups.new_platform.children[1]"
    assert "no group 'dsn' is defined under `groups`" in error.problem
    assert "did you mean 'dns'?" in error.problem
    assert "(line 8)" in error.problem


def test_unknown_host_in_group(tmp_path: Path) -> None:
    error = load_error(tmp_path, MINIMAL + "groups:\n  legacy:\n    hosts: [eugeni, eugenie]\n")
    assert error.key == "groups.legacy.hosts[1]"
    assert "no host 'eugenie' is defined under `hosts`" in error.problem


@pytest.mark.parametrize(
    "text, key, expected",
    [
        (MINIMAL + "    vars: {ssh_port: abc}\n", "hosts.eugeni.vars.ssh_port", "must be a port number"),
        ("vars: {ssh_port: '2222'}\n" + MINIMAL, "vars.ssh_port", "got the text '2222'"),
        ("vars: {ssh_port: 70000}\n" + MINIMAL, "vars.ssh_port", "from 1 to 65535"),
        ("vars: {ssh_port: true}\n" + MINIMAL, "vars.ssh_port", "must be a port number"),
        (MINIMAL + "    roles: mailman2\n", "hosts.eugeni.roles", "must be a list, e.g. roles: [mailman2]"),
        (MINIMAL + "    roles: {a: b}\n", "hosts.eugeni.roles", "must be a list of role names"),
        ("hosts:\n  eugeni:\n    address: [1]\n", "hosts.eugeni.address", "got a list"),
        ("hosts:\n  eugeni:\n    address: 10\n", "hosts.eugeni.address", "got the number 10"),
        ("hosts:\n  eugeni:\n    address: 127.0.0.300\n", "hosts.eugeni.address", "neither an IP address"),
        ("hosts:\n  eugeni:\n    address: bad_name.example.org\n", "hosts.eugeni.address", "neither"),
        ("hosts:\n  eugeni: 127.0.0.11\n", "hosts.eugeni", "must be a mapping with at least `address:`"),
        (MINIMAL + "    vars: {sudo: 'yes'}\n", "hosts.eugeni.vars.sudo", "must be true or false"),
        (MINIMAL + "    vars: {ssh_user: ''}\n", "hosts.eugeni.vars.ssh_user", "must be a user name"),
        (MINIMAL + "    vars: {known_hosts: 5}\n", "hosts.eugeni.vars.known_hosts", "must be a file path"),
        (MINIMAL + "    vars: [a]\n", "hosts.eugeni.vars", "must be a mapping of variable names"),
        (MINIMAL + "    vars: {9lives: x}\n", "hosts.eugeni.vars.9lives", "variable names use"),
        ("hosts: [eugeni]\n", "hosts", "must be a mapping of host names"),
        ("groups: [legacy]\n" + MINIMAL, "groups", "must be a mapping of group names"),
        (MINIMAL + "groups:\n  legacy: [eugeni]\n", "groups.legacy", "must be a mapping with hosts"),
        (MINIMAL + "groups:\n  legacy: {hosts: eugeni}\n", "groups.legacy.hosts", "e.g. [eugeni]"),
        ("name: [x]\n" + MINIMAL, "name", "must be a non-empty text"),
        ("hosts:\n  'bad name': {address: 192.0.2.1}\n", "hosts.bad name", "host names use"),
        ("hosts:\n  yes: {address: 192.0.2.1}\n", "hosts.True", "quote names"),
    ],
)
def test_wrong_type(tmp_path: Path, text: str, key: str, expected: str) -> None:
    error = load_error(tmp_path, text)
    assert error.key == key
    assert expected in error.problem


def test_schleuder_host_needs_its_side(tmp_path: Path) -> None:
    error = load_error(tmp_path, MINIMAL + "    roles: [schleuder]\n")
    assert error.key == "hosts.eugeni.vars.schleuder_side"
    assert "source or target" in error.problem
    error = load_error(tmp_path, MINIMAL + "    roles: [schleuder]\n    vars: {schleuder_side: both}\n")
    assert error.key == "hosts.eugeni.vars.schleuder_side"


def test_schleuder_side_may_come_from_a_group(tmp_path: Path) -> None:
    text = MINIMAL + "    roles: [schleuder]\ngroups:\n  src: {hosts: [eugeni], vars: {schleuder_side: source}}\n"
    assert load_inventory(write(tmp_path, text)).one_with_role("schleuder", schleuder_side="source")


def test_unknown_top_level_key(tmp_path: Path) -> None:
    error = load_error(tmp_path, MINIMAL + "group:\n  legacy: {hosts: [eugeni]}\n")
    assert error.key == "group"
    assert "unknown top-level key (did you mean 'groups'?)" in error.problem
    assert "allowed: name, vars, hosts, groups" in error.problem


def test_unknown_host_key_points_to_vars(tmp_path: Path) -> None:
    error = load_error(tmp_path, MINIMAL + "    ssh_port: 2222\n")
    assert error.key == "hosts.eugeni.ssh_port"
    assert "host variables go under hosts.eugeni.vars" in error.problem


def test_unknown_group_key(tmp_path: Path) -> None:
    error = load_error(tmp_path, MINIMAL + "groups:\n  legacy: {members: [eugeni]}\n")
    assert error.key == "groups.legacy.members"


def test_group_cycle(tmp_path: Path) -> None:
    error = load_error(
        tmp_path,
        MINIMAL + "groups:\n  a: {children: [b]}\n  b: {children: [a]}\n",
    )
    assert error.key == "groups.b.children[0]"
    assert "makes a cycle (a -> b -> a)" in error.problem


def test_group_containing_itself(tmp_path: Path) -> None:
    error = load_error(tmp_path, MINIMAL + "groups:\n  a: {children: [a]}\n")
    assert error.key == "groups.a.children[0]"
    assert "(a -> a)" in error.problem


def test_diamond_of_groups_is_not_a_cycle(tmp_path: Path) -> None:
    text = MINIMAL + "groups:\n  a: {children: [b, c]}\n  b: {children: [d]}\n  c: {children: [d]}\n  d: {hosts: [eugeni]}\n"
    inventory = load_inventory(write(tmp_path, text))
    assert inventory.host("eugeni").groups == ("a", "b", "c", "d")
    assert inventory.groups["d"].depth == 2


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n", "---\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    error = load_error(tmp_path, text)
    assert error.key == "(file)"
    assert error.problem.startswith("is empty")


@pytest.mark.parametrize("text", ["hosts:\n", "hosts: {}\n", "name: x\n"])
def test_no_hosts(tmp_path: Path, text: str) -> None:
    error = load_error(tmp_path, text)
    assert error.key == "hosts"
    assert "needs at least one host" in error.problem


def test_top_level_not_a_mapping(tmp_path: Path) -> None:
    error = load_error(tmp_path, "- eugeni\n- lists-01\n")
    assert error.key == "(file)"
    assert "got a list" in error.problem


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match=r"inv\.yaml: \(file\): no such file"):
        load_inventory(tmp_path / "inv.yaml")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    path.write_bytes(b"hosts:\n  h: {address: \xff}\n")
    with pytest.raises(InventoryError, match="is not UTF-8 text"):
        load_inventory(path)


def test_python_tags_are_refused(tmp_path: Path) -> None:
    error = load_error(tmp_path, "hosts: !!python/object/apply:os.system ['true']\n")
    assert "not valid YAML" in error.problem


def test_several_documents_are_refused(tmp_path: Path) -> None:
    error = load_error(tmp_path, MINIMAL + "---\n" + MINIMAL)
    assert "not valid YAML" in error.problem


def test_anchors_and_merge_keys_work(tmp_path: Path) -> None:
    text = """\
    hosts:
      a: {address: 192.0.2.1, vars: &common {mailman2_var_dir: /var/lib/mailman, x: 1}}
      b: {address: 192.0.2.2, vars: {<<: *common, x: 2}}
    """
    inventory = load_inventory(write(tmp_path, text))
    assert inventory.host("b").vars["mailman2_var_dir"] == "/var/lib/mailman"
    assert inventory.host("b").vars["x"] == 2


# -- robustness: whatever the file holds, the only failure is an InventoryError ----------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 70000),
    st.sampled_from(["", "eugeni", "127.0.0.11", "mailman2", "schleuder", "source", "a b", "env", "file"]),
)
_keys = st.sampled_from(
    ["hosts", "groups", "vars", "name", "address", "roles", "children", "env", "file", "eugeni", "ssh_port",
     "sudo", "x_token", "schleuder_side", "known_hosts", "legacy"]
)
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=4), max_leaves=20)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=st.dictionaries(_keys, _values, max_size=4))
def test_any_document_loads_or_raises_inventory_error(tmp_path: Path, document: dict) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(document))
    try:
        inventory = load_inventory(path)
    except InventoryError as exc:
        assert str(exc).startswith(f"{path}: ")
    else:
        assert inventory.hosts



# -- YAML that stands for far more than it holds --------------------------------------------------

# Each level refers nine times to the one above: 9**9 (387 million) strings from about 500 bytes.
BILLION_LAUGHS = """\
vars:
  a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
  d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
  e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
  f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
  g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
  h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
  i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
hosts:
  eugeni: {address: 127.0.0.11}
"""


def refused_quickly(path: Path) -> str:
    """The message of the InventoryError load_inventory(path) raises, within seconds."""
    outcome = run_bounded(load_inventory, path, seconds=20)
    assert outcome.raised == "InventoryError", outcome
    assert outcome.message.startswith(f"{path}: "), outcome.message
    return outcome.message


def test_a_billion_laughs_inventory_is_refused_quickly(tmp_path: Path) -> None:
    path = write(tmp_path, BILLION_LAUGHS)
    assert path.stat().st_size < 600

    message = refused_quickly(path)

    assert re.search(r": vars\.[a-i]\[\d\]: refers to shared values", message) and "(line " in message


@pytest.mark.parametrize(("value", "where"), [
    ("&a [*a]", "vars.loop"),
    ("&m {x: *m}", "vars.loop"),
    ("[1, &b [2, {y: *b}]]", "vars.loop[1]"),
])
def test_an_alias_inside_its_own_anchor_is_refused(tmp_path: Path, value: str, where: str) -> None:
    path = write(tmp_path, f"vars:\n  loop: {value}\nhosts:\n  eugeni: {{address: 127.0.0.11}}\n")

    message = refused_quickly(path)

    assert f": {where}: " in message and "contains itself" in message and "line 2" in message


@pytest.mark.parametrize("levels", [60, 3000])
def test_nesting_deeper_than_any_inventory_needs_is_refused(tmp_path: Path, levels: int) -> None:
    path = write(tmp_path, "vars:\n  deep: " + "[" * levels + "]" * levels + "\nhosts:\n  eugeni: {address: 127.0.0.11}\n")

    assert "nested too deeply" in refused_quickly(path)


def test_aliases_that_repeat_a_block_for_many_hosts_still_load(tmp_path: Path) -> None:
    hosts = "".join(f"  h{i}: {{address: 127.0.0.{i + 20}, vars: *common}}\n" for i in range(200))
    path = write(tmp_path, "vars:\n  common: &common {" + ", ".join(f"v{i}: [x, y, z]" for i in range(40))
                 + "}\nhosts:\n" + hosts)

    inventory = load_inventory(path)

    assert len(inventory.hosts) == 200 and inventory.host("h199").var("v39") == ["x", "y", "z"]


# -- duplicate keys YAML reads as the same key --------------------------------------------------


@pytest.mark.parametrize(("first", "second"), [
    ("yes", "true"), ("on", "True"), ("Yes", "ON"), ("no", "false"), ("off", "FALSE"),  # booleans (YAML 1.1)
    ("1", "0x1"), ("8", "010"), ("1", "+1"), ("1000", "1_000"),  # the same integer
    ("1", "true"), ("0", "no"), ("1", "1.0"),  # equal in the mapping PyYAML builds (True == 1 == 1.0)
    ("~", "null"), (".nan", ".NaN"), (".inf", "+.Inf"), ("2001-02-03t04:05:06Z", "2001-2-3 4:05:06Z"),
])
def test_duplicate_keys_spelled_differently_are_refused(tmp_path: Path, first: str, second: str) -> None:
    error = load_error(tmp_path, MINIMAL + f"    vars:\n      flags:\n        {first}: a\n        {second}: b\n")

    assert error.key == f"hosts.eugeni.vars.flags.{second}"
    assert "defined twice (lines 6 and 7" in error.problem and first in error.problem


@pytest.mark.parametrize(("first", "second"), [("yes", "'yes'"), ("1", "'1'"), ("1", "2"), ("a", "A"),
                                               ("2001-02-03", "2001-2-3")])
def test_keys_yaml_reads_as_different_keys_may_both_appear(tmp_path: Path, first: str, second: str) -> None:
    path = write(tmp_path, MINIMAL + f"    vars:\n      flags:\n        {first}: a\n        {second}: b\n")

    assert len(load_inventory(path).host("eugeni").var("flags")) == 2
