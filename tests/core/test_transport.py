"""Transport: host keys verified against real sshd, one quoting function, connection reuse."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from migrate.core.errors import HostKeyError
from migrate.core.inventory import load_inventory
from migrate.core.transport import Connections, LocalTransport, SSHTransport, build_command

from ..helpers import host_root, inventory_variant

NASTY = ["a b", "it's", 'say "hi"', "x;rm -rf /", "$(id)", "`id`", "*", "?[a]", "~", "a\nb", "$HOME",
         "-n", "--", "back\\slash", "tab\there", "", "'", '"', "&&", "|", ">out", "é ü ß 日本"]

# Any text without NUL, weighted towards shell metacharacters.
shell_text = st.one_of(
    st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=40),
    st.lists(st.sampled_from(list(" '\"\\$`;&|<>(){}[]*?~!#\n\t=-") + ["$(", "${", "'\\''"]), max_size=12).map("".join),
)


def run_in_bash(command: str) -> list[str]:
    """Run a command line the way sshd does (a login user's shell: bash -c) and split its output."""
    out = subprocess.run(["bash", "-c", command], capture_output=True, check=True).stdout
    return out.decode("utf-8", "surrogateescape").split("\x00")[:-1]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(shell_text, min_size=1, max_size=6))
def test_quoted_arguments_reach_the_command_unchanged(values):
    assert run_in_bash(build_command(["printf", "%s\\0", *values])) == values


@settings(max_examples=100, deadline=None)
@given(value=shell_text, cwd_name=shell_text.filter(lambda s: s not in ("", ".", "..") and "/" not in s))
def test_env_and_cwd_values_cannot_escape(tmp_path_factory, value, cwd_name):
    folder = tmp_path_factory.mktemp("cwd") / cwd_name
    folder.mkdir()
    line = build_command(["sh", "-c", 'printf "%s\\0%s\\0" "$V" "$PWD"'], env={"V": value}, cwd=str(folder))
    assert run_in_bash(line) == [value, str(folder)]


def test_bad_commands_are_refused():
    with pytest.raises(ValueError):
        build_command("ls -l")
    with pytest.raises(ValueError):
        build_command([])
    with pytest.raises(ValueError):
        build_command(["echo", "a\x00b"])
    with pytest.raises(ValueError):
        build_command(["env"], env={"BAD NAME": "x"})
    with pytest.raises(TypeError):
        build_command(["echo", 3])
    assert build_command(["id"], sudo=True) == "sudo -n -- id"


@pytest.mark.parametrize("name", ["NAME\n", "NAME\nOTHER", "N\u0663", "\u212aEY"])
def test_an_environment_name_is_matched_whole_and_in_ascii(name):
    # `$` in a pattern accepts a trailing newline; `[A-Za-z0-9]` stays ASCII only when matched whole.
    with pytest.raises(ValueError):
        build_command(["env"], env={name: "x"})


@pytest.mark.lab
def test_nasty_values_survive_a_real_ssh_round_trip(lab_hosts, lab_inventory):
    with Connections(lab_inventory) as connections:
        result = connections.get("eugeni").run(["printf", "%s\\0", *NASTY]).check()
    assert result.stdout.split("\x00")[:-1] == NASTY


def host_fingerprint(key_file: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-lf", str(key_file)], capture_output=True, text=True, check=True).stdout
    return out.split()[1]


@pytest.mark.lab
def test_a_changed_host_key_is_refused_naming_host_and_both_fingerprints(lab_hosts, lab_inventory, tmp_path):
    impostor = tmp_path / "impostor"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(impostor)], check=True)
    key_type, key_data = impostor.with_suffix(".pub").read_text().split()[:2]
    real = lab_inventory.host("eugeni").known_hosts
    lines = [f"[127.0.0.11]:2222 {key_type} {key_data}" if line.startswith("[127.0.0.11]:2222 ") else line
             for line in real.read_text().splitlines()]
    known = tmp_path / "known_hosts"
    known.write_text("\n".join(lines) + "\n")
    inv = load_inventory(inventory_variant(tmp_path, {"known_hosts": str(known)}))

    with pytest.raises(HostKeyError) as err:
        SSHTransport(inv.host("eugeni")).run(["touch", "/tmp/should-never-exist"])
    message = str(err.value)
    assert "eugeni" in message and "CHANGED" in message
    assert host_fingerprint(impostor.with_suffix(".pub")) in message
    assert host_fingerprint(lab_hosts.host_key(lab_hosts.host("eugeni")).with_suffix(".pub")) in message
    # Other hosts of the same known_hosts still connect: the check is per host, not a global switch.
    assert SSHTransport(inv.host("lists-01")).run(["true"]).ok


@pytest.mark.lab
def test_an_unknown_host_is_refused(lab_hosts, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    inv = load_inventory(inventory_variant(tmp_path, {"known_hosts": str(empty)}))
    with pytest.raises(HostKeyError) as err:
        SSHTransport(inv.host("web-01")).run(["true"])
    message = str(err.value)
    assert "web-01" in message and "UNKNOWN" in message
    assert host_fingerprint(lab_hosts.host_key(lab_hosts.host("web-01")).with_suffix(".pub")) in message


@pytest.mark.lab
def test_a_missing_known_hosts_file_is_refused(lab_hosts, tmp_path):
    inv = load_inventory(inventory_variant(tmp_path, {"known_hosts": str(tmp_path / "nope")}))
    with pytest.raises(HostKeyError, match="does not exist"):
        SSHTransport(inv.host("ns1")).run(["true"])


@pytest.mark.lab
def test_one_connection_per_host_is_reused_with_nodelay(lab_hosts, lab_inventory):
    # eugeni is logged into as root: sudo would reset the SSH_CLIENT the server reports.
    with Connections(lab_inventory) as connections:
        transport = connections.get("eugeni")
        assert connections.get("eugeni") is transport
        first = transport.connect()
        ports = set()
        for _ in range(5):
            # The client port seen by the server stays the same: one TCP connection.
            ports.add(transport.run(["sh", "-c", "echo ${SSH_CLIENT}"]).stdout.split()[1])
        assert transport.connect() is first and len(ports) == 1
        sock = first.client.get_transport().sock
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


@pytest.mark.lab
def test_the_sudo_login_reuses_its_connection_too(lab_hosts, lab_inventory):
    with Connections(lab_inventory) as connections:
        transport = connections.get("lists-01")
        first = transport.connect()
        before = first.client.get_transport().sock.getsockname()
        for _ in range(5):
            transport.run(["true"]).check()
        transport.read_file("/etc/hostname")
        assert transport.connect() is first and first.client.get_transport().sock.getsockname() == before


@pytest.mark.lab
def test_files_are_written_atomically_read_and_removed(lab_hosts, lab_inventory):
    target = host_root(lab_inventory, "srs-01") / "etc" / "transport-test"
    try:
        with Connections(lab_inventory) as connections:
            t = connections.get("srs-01")
            t.write_file(str(target), b"one\x00two\n", 0o640)
            assert target.read_bytes() == b"one\x00two\n" and (target.stat().st_mode & 0o777) == 0o640
            assert t.read_file(str(target)) == b"one\x00two\n" and t.stat_mode(str(target)) == 0o640
            assert not [p for p in target.parent.iterdir() if ".migrate-" in p.name]
            t.remove_file(str(target))
            assert t.read_file(str(target)) is None and t.stat_mode(str(target)) is None
            t.remove_file(str(target))  # removing what is gone is not an error
    finally:
        target.unlink(missing_ok=True)


def test_local_transport_runs_without_a_shell(tmp_path):
    local = LocalTransport()
    result = local.run(["printf", "%s", "$(id)"])
    assert result.stdout == "$(id)"
    local.write_file(str(tmp_path / "f"), b"x", 0o600)
    assert local.read_file(str(tmp_path / "f")) == b"x" and local.stat_mode(str(tmp_path / "f")) == 0o600
    assert local.run(["no-such-command-here"]).exited == 127
