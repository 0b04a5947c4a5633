"""The lab's PostgreSQL (HyperKitty's database): a real cluster on lists-01's loopback address."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from migrate.lab.postgres import DATABASE, ROLE, LabPostgres, server_bin_dir

pytestmark = [pytest.mark.lab]


@pytest.fixture(scope="module")
def postgres():
    server = LabPostgres()
    server.up()  # never stopped here: the lab is shared
    return server


def psql(server: LabPostgres, password: str, sql: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PGPASSWORD": password, "PGCONNECT_TIMEOUT": "5"}
    return subprocess.run([str(server_bin_dir() / "psql"), "-X", "-At", "-h", server.address, "-p",
                           str(server.port), "-U", ROLE, "-d", DATABASE, "-c", sql],
                          capture_output=True, text=True, env=env, timeout=30)


def test_up_is_idempotent_and_status_reports_the_running_server(postgres):
    pid = postgres.pid()
    postgres.up()
    assert postgres.pid() == pid
    (status,) = postgres.status()
    assert status.running and status.pid == pid and status.address == "127.0.0.12:5432"
    assert status.detail.startswith("PostgreSQL ")


def test_hyperkittys_role_logs_in_over_tcp_with_its_password_only(postgres):
    result = psql(postgres, postgres.password(), "SELECT current_user, current_database()")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{ROLE}|{DATABASE}"
    wrong = psql(postgres, "not-the-password", "SELECT 1")
    assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr


def test_it_listens_on_the_lab_address_only(postgres):
    with socket.create_connection((postgres.address, postgres.port), timeout=2):
        pass
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.11", postgres.port), timeout=2).close()


def test_the_password_is_in_no_log_and_on_no_command_line(postgres):
    secret = postgres.password()
    postgres.up()  # sets the password again
    assert secret not in postgres.log_file.read_text(errors="replace")
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    assert secret.encode() not in fh.read()
            except OSError:
                continue


def test_django_settings_name_the_database_on_loopback(postgres):
    settings = postgres.django_database()
    assert settings["ENGINE"] == "django.db.backends.postgresql"
    assert (settings["HOST"], settings["PORT"], settings["NAME"], settings["USER"]) == (
        "127.0.0.12", "5432", DATABASE, ROLE)
    assert postgres.cluster_id()
