"""PostgreSQL for the lab's HyperKitty, on lists-01's loopback address, as production runs it.

HyperKitty on SQLite loses messages when two `hyperkitty_import`s run at once ("database is
locked", logged and skipped per message), so parallel imports can only be shown on a database
that takes concurrent writers. The cluster is the lab's own, from Debian's `postgresql` package,
run by pg_ctl as the `postgres` system user (initdb refuses root).

Layout (under the lab root):

    secrets/postgres_mailmanweb              the mailmanweb role's password (0600)
    hosts/lists-01/postgresql/data/          the cluster (postgres, 0700)
    hosts/lists-01/postgresql/run/           its Unix socket (postgres)
    hosts/lists-01/postgresql/log/server.log the server's log (postgres)
    hosts/lists-01/postgresql/cluster-id     a token made when the cluster is created: whoever
                                             keeps state about the database (HyperKitty's
                                             "migrated" marker) compares it to notice a new one

Durability is traded for speed (fsync, full_page_writes and synchronous_commit off): a lab
database that a crash could lose is rebuilt by `lab.up` + `lab.seed`. The password reaches psql on
stdin, never on a command line.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import subprocess
from pathlib import Path

from .base import (assert_loopback, component_lock, lab_path, log_tail, pid_alive, port_open, read_or_none,
                   ServiceStatus)
from .mailman3 import ensure_secret

SYSTEM_USER = "postgres"
DATABASE = "mailmanweb"
ROLE = "mailmanweb"

_HBA = """\
# Written by the lab (migrate/lab/postgres.py); rewritten at every up.
local  all         postgres                 peer
host   mailmanweb  mailmanweb  127.0.0.0/8  scram-sha-256
"""


class PostgresLabError(RuntimeError):
    pass


def server_bin_dir() -> Path:
    """Debian's newest installed PostgreSQL server binaries (/usr/lib/postgresql/<major>/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if not found:
        raise PostgresLabError("PostgreSQL's server is not installed (Debian package `postgresql`); "
                               "`./run setup` installs it")
    return Path(found[-1]).parent


class LabPostgres:
    name = "postgres"

    def __init__(self, *, host: str = "lists-01", address: str = "127.0.0.12", port: int = 5432,
                 root: Path | None = None, start_timeout: int = 60):
        assert_loopback(address)
        root = root or lab_path()
        self.host = host
        self.address = address
        self.port = port
        self.start_timeout = start_timeout
        self.home = root / "hosts" / host / "postgresql"
        self.data = self.home / "data"
        self.run_dir = self.home / "run"
        self.log_dir = self.home / "log"
        self.log_file = self.log_dir / "server.log"
        self.cluster_id_file = self.home / "cluster-id"
        self.password_file = root / "secrets" / "postgres_mailmanweb"

    # -- what other components use ---------------------------------------------------------------

    def password(self) -> str:
        return ensure_secret(self.password_file)

    def cluster_id(self) -> str:
        return (read_or_none(self.cluster_id_file) or "").strip()

    def django_database(self) -> dict:
        """The `DATABASES["default"]` entry for Django."""
        return {"ENGINE": "django.db.backends.postgresql", "NAME": DATABASE, "USER": ROLE,
                "PASSWORD": self.password(), "HOST": self.address, "PORT": str(self.port)}

    # -- Component -------------------------------------------------------------------------------

    def up(self) -> None:
        with self._locked():
            self._up()

    def _up(self) -> None:
        bin_dir = server_bin_dir()
        if not (self.data / "PG_VERSION").exists():
            self._initdb(bin_dir)
        self._write_config()
        pid = self.pid()
        if pid is None:
            self._pg_ctl(bin_dir, "start", "-w", "-t", str(self.start_timeout), "-l", str(self.log_file))
        elif not port_open(self.address, self.port):
            raise PostgresLabError(f"postgres {pid} runs but {self.address}:{self.port} does not answer:\n"
                                   f"{log_tail(self.log_file)}")
        else:
            self._pg_ctl(bin_dir, "reload")
        self._ensure_database(bin_dir)

    def status(self) -> list[ServiceStatus]:
        pid = self.pid()
        running = pid is not None and port_open(self.address, self.port)
        version = read_or_none(self.data / "PG_VERSION")
        detail = f"PostgreSQL {version.strip()}" if version else "no cluster yet"
        if pid is not None and not running:
            detail += ", TCP does not answer"
        return [ServiceStatus(component=self.name, name=f"postgresql {self.host}", running=running,
                              address=f"{self.address}:{self.port}", pid=pid, detail=detail)]

    def down(self) -> None:
        with self._locked():
            if self.pid() is not None:
                self._pg_ctl(server_bin_dir(), "stop", "-w", "-m", "fast", "-t", "60")

    def pid(self) -> int | None:
        """The postmaster's pid from its pid file, if that process is alive."""
        text = read_or_none(self.data / "postmaster.pid")
        try:
            pid = int(text.split()[0]) if text else None
        except ValueError:
            return None
        return pid if pid_alive(pid) else None

    # -- setting up ----------------------------------------------------------------------------

    def _locked(self):
        return component_lock(self.home)


    def _as_postgres(self, argv: list[str], *, input: str | None = None, timeout: float = 120,
                     what: str) -> str:
        result = subprocess.run(["runuser", "-u", SYSTEM_USER, "--", *argv], input=input,
                                capture_output=True, text=True, timeout=timeout, cwd="/")
        if result.returncode != 0:
            raise PostgresLabError(f"{what} failed ({result.returncode}): {result.stderr.strip()[-2000:]}"
                                   f"\n{log_tail(self.log_file)}")
        return result.stdout

    def _owned_dir(self, path: Path, mode: int) -> None:
        account = pwd.getpwnam(SYSTEM_USER)
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, account.pw_uid, account.pw_gid)
        os.chmod(path, mode)

    def _initdb(self, bin_dir: Path) -> None:
        try:
            pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            raise PostgresLabError(f"no `{SYSTEM_USER}` user: install Debian's postgresql package") from None
        self.home.mkdir(parents=True, exist_ok=True)
        os.chmod(self.home, 0o755)
        self._owned_dir(self.data, 0o700)
        self._as_postgres([str(bin_dir / "initdb"), "-D", str(self.data), "-U", SYSTEM_USER, "-E", "UTF8",
                           "--locale=C", "--auth-local=peer", "--auth-host=scram-sha-256"],
                          timeout=300, what="initdb")
        self.cluster_id_file.write_text(secrets.token_hex(16) + "\n")

    def _write_config(self) -> None:
        self._owned_dir(self.run_dir, 0o755)
        self._owned_dir(self.log_dir, 0o755)
        settings = {
            "listen_addresses": f"'{self.address}'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.run_dir}'",
            "max_connections": "60",
            "fsync": "off",
            "full_page_writes": "off",
            "synchronous_commit": "off",
            "password_encryption": "'scram-sha-256'",
        }
        lab_conf = "# Written by the lab (migrate/lab/postgres.py).\n" + "".join(
            f"{key} = {value}\n" for key, value in settings.items())
        _write_as_postgres(self.data / "lab.conf", lab_conf)
        _write_as_postgres(self.data / "pg_hba.conf", _HBA)
        main = self.data / "postgresql.conf"
        text = main.read_text()
        if "include_if_exists = 'lab.conf'" not in text:
            _write_as_postgres(main, text + "\ninclude_if_exists = 'lab.conf'\n")

    def _pg_ctl(self, bin_dir: Path, *args: str) -> None:
        self._as_postgres([str(bin_dir / "pg_ctl"), "-D", str(self.data), *args], what=f"pg_ctl {args[0]}")

    def _ensure_database(self, bin_dir: Path) -> None:
        password = self.password()
        if "'" in password or "\\" in password:
            raise PostgresLabError(f"unexpected characters in {self.password_file}")
        script = "\n".join([
            "\\set ON_ERROR_STOP on",
            f"SELECT 'CREATE ROLE {ROLE} LOGIN' WHERE NOT EXISTS "
            f"(SELECT FROM pg_roles WHERE rolname = '{ROLE}') \\gexec",
            f"ALTER ROLE {ROLE} PASSWORD '{password}';",
            f"SELECT 'CREATE DATABASE {DATABASE} OWNER {ROLE}' WHERE NOT EXISTS "
            f"(SELECT FROM pg_database WHERE datname = '{DATABASE}') \\gexec",
        ]) + "\n"
        self._as_postgres([str(bin_dir / "psql"), "-X", "-q", "-h", str(self.run_dir), "-p", str(self.port),
                           "-d", "postgres", "-f", "-"], input=script, what="creating the mailmanweb database")


def _write_as_postgres(path: Path, text: str) -> None:
    """Replace a file of the cluster (owned by postgres, 0600) when its text differs."""
    if read_or_none(path) == text:
        return
    account = pwd.getpwnam(SYSTEM_USER)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chown(tmp, account.pw_uid, account.pw_gid)
    os.replace(tmp, path)
