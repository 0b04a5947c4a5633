"""Mailman 3 core as a lab component: its own venv, a config, the master process and its REST API.

Layout (all under the lab root):

    venvs/mailman3/                      mailman 3.3.10 with its pinned dependencies
    venvs/mailman3-install.log           pip's output of the last install
    secrets/mailman3_rest                the REST admin password (0600, generated on first up)
    secrets/hyperkitty_archiver_key      shared with HyperKitty's MAILMAN_ARCHIVER_KEY (0600)
    hosts/lists-01/mailman3/mailman.cfg  rendered by `render_config` (0600: it holds the password)
    hosts/lists-01/mailman3/gunicorn.cfg options for the REST runner's gunicorn
    hosts/lists-01/mailman3/mailman-hyperkitty.cfg  the archiver's HyperKitty URL and key (0600)
    hosts/lists-01/mailman3/start.log    output of `mailman start` and of the master it forks
    hosts/lists-01/mailman3/component.lock  serialises up/down between processes
    hosts/lists-01/mailman3/var/         var_dir: master.pid, data/mailman.db, logs/, queue/, ...

`mailman start` forks the master and returns; the master writes `var/master.pid`, forks one
process per runner, and the REST runner forks its gunicorn workers. All of them run with
`var/` as their working directory, which is how `daemon_pids` recognises them.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import secrets
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import quote

from .base import (ServiceStatus, component_lock, assert_loopback, clean_env, lab_path, log_tail, pid_alive, port_open,
                   read_or_none, running_pid, stop_pid, terminate_all, wait_for_port, write_if_changed)

MAILMAN_VERSION = "3.3.10"
# SQLAlchemy 2.1 breaks reading rosters over REST (HTTP 500); 2.0.x works with Mailman 3.3.10.
# mailman-hyperkitty is the archiver plugin core loads to hand posts to HyperKitty.
MAILMAN_REQUIREMENTS = (f"mailman=={MAILMAN_VERSION}", "sqlalchemy<2.1",
                        "mailman-hyperkitty==1.2.1")
SYSTEM_PYTHON = "/usr/bin/python3"
# Where core's archiver reaches HyperKitty (migrate.lab.hyperkitty serves it there).
HYPERKITTY_ARCHIVER_URL = "http://127.0.0.12:8000/hyperkitty/"

# The runners Mailman 3.3.10 knows (schema.cfg and mailman/config/mailman.cfg), in its order.
# `bad` and `shunt` only name queues; `nntp` is off in Mailman's own defaults.
KNOWN_RUNNERS = ("archive", "bad", "bounces", "command", "in", "lmtp", "nntp", "out",
                 "pipeline", "rest", "retry", "shunt", "task", "virgin", "digest")
# Enough for REST and the CLI (create, import21): the CLI works on the database directly.
REST_RUNNERS = ("rest",)
# Live posting and archiving: LMTP in -> in -> pipeline -> out (delivery) and archive;
# virgin carries Mailman's own notices (welcome, held-post notices) to out.
LIVE_RUNNERS = ("rest", "lmtp", "in", "pipeline", "out", "archive", "virgin")
# What `mailman start` runs with Mailman's defaults.
ALL_RUNNERS = ("archive", "bounces", "command", "in", "lmtp", "out", "pipeline", "rest",
               "retry", "task", "virgin", "digest")

# Environment variables that would make the Mailman venv's python load the wrong code or config.
_FOREIGN_ENV = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "MAILMAN_CONFIG_FILE")


class MailmanLabError(RuntimeError):
    """Mailman 3 core could not be installed, started or stopped."""


def render_config(*, var_dir: Path, database_path: Path, rest_host: str, rest_port: int,
                  rest_user: str, rest_password: str, lmtp_host: str, lmtp_port: int,
                  smtp_host: str, smtp_port: int, runners: Sequence[str], gunicorn_config: Path,
                  site_owner: str, rest_workers: int = 2,
                  extra_sections: Mapping[str, Mapping[str, str]] | None = None) -> str:
    """The text of mailman.cfg for one lab instance.

    `extra_sections` adds whole sections, e.g. {"archiver.hyperkitty": {"class": ..., ...}},
    so later components (HyperKitty) extend the config without editing this function.
    """
    unknown = sorted(set(runners) - set(KNOWN_RUNNERS))
    if unknown:
        raise ValueError(f"unknown Mailman runners: {', '.join(unknown)}")
    if "rest" not in runners:
        raise ValueError("the lab needs the rest runner: readiness and status use the REST API")
    sections: dict[str, dict[str, str]] = {
        "mailman": {"layout": "lab", "site_owner": site_owner},
        # A layout of our own: Mailman's built-in ones put data in /var/tmp or the cwd.
        "paths.lab": {"var_dir": str(var_dir), "pid_file": "$var_dir/master.pid"},
        "database": {"class": "mailman.database.sqlite.SQLiteDatabase",
                     "url": f"sqlite:///{database_path}"},
        "webservice": {"hostname": rest_host, "port": str(rest_port), "use_https": "no",
                       "admin_user": rest_user, "admin_pass": rest_password,
                       "workers": str(rest_workers), "configuration": str(gunicorn_config)},
        # NullMTA: no Postfix maps to write; delivery goes to smtp_host:smtp_port.
        "mta": {"incoming": "mailman.mta.null.NullMTA",
                "outgoing": "mailman.mta.deliver.deliver",
                "lmtp_host": lmtp_host, "lmtp_port": str(lmtp_port),
                "smtp_host": smtp_host, "smtp_port": str(smtp_port)},
    }
    for runner in KNOWN_RUNNERS:
        sections[f"runner.{runner}"] = {"start": "yes" if runner in runners else "no"}
    for name, values in (extra_sections or {}).items():
        sections.setdefault(name, {}).update(values)
    lines = ["# Written by migrate.lab.mailman3; changes are overwritten on the next up."]
    for name, values in sections.items():
        lines.append("")
        lines.append(f"[{name}]")
        lines.extend(f"{key}: {value}" for key, value in values.items())
    return "\n".join(lines) + "\n"


def render_gunicorn_config(*, graceful_timeout: int = 2, timeout: int = 360) -> str:
    """Options for the REST runner's gunicorn (read by mailman.rest.gunicorn)."""
    # graceful_timeout: gunicorn's 30 s default is what makes a TERM slow to finish.
    # control_socket_disable: gunicorn >= 25.1 otherwise opens $HOME/.gunicorn/gunicorn.ctl,
    # one path shared by every instance run by the same user.
    return (
        "[gunicorn]\n"
        f"graceful_timeout = {graceful_timeout}\n"
        f"timeout = {timeout}\n"
        "control_socket_disable = true\n"
    )


def ensure_venv(venv: Path, requirements: Sequence[str] = MAILMAN_REQUIREMENTS, *,
                python: str = SYSTEM_PYTHON) -> bool:
    """Create venv and install requirements unless its marker already names them. True if it did.

    The marker is written only after pip succeeded, so an interrupted install is retried.
    """
    marker = venv / "migrate-lab-requirements.txt"
    wanted = "\n".join(requirements) + "\n"
    if (venv / "bin" / "mailman").exists() and _read(marker) == wanted:
        return False
    log = venv.parent / f"{venv.name}-install.log"
    venv.parent.mkdir(parents=True, exist_ok=True)
    steps = [[python, "-m", "venv", str(venv)]] if not (venv / "bin" / "python").exists() else []
    steps.append([str(venv / "bin" / "pip"), "install", *requirements])
    with open(log, "wb") as out:
        for argv in steps:
            result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, env=_clean_env())
            if result.returncode != 0:
                raise MailmanLabError(f"{' '.join(argv)} failed ({result.returncode}):\n"
                                      f"{_tail(log)}")
    marker.write_text(wanted)
    return True


def ensure_secret(path: Path, nbytes: int = 24) -> str:
    """The secret in path (0600 in a 0700 folder), generated first if the file does not exist.

    The file appears with its content in one step (link of a finished temporary file), so a
    component reading it while another creates it never sees it empty.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    if not path.exists():
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(nbytes) + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()


def render_archiver_config(*, base_url: str, api_key: str) -> str:
    """mailman-hyperkitty.cfg: where HyperKitty is and the key it expects."""
    return f"[general]\nbase_url: {base_url}\napi_key: {api_key}\n"


class Mailman3Core:
    """Mailman 3 core on a lab host: the master, its runners and the REST API on loopback."""

    name = "mailman3"

    def __init__(self, *, host: str = "lists-01", address: str = "127.0.0.12",
                 rest_port: int = 8001, lmtp_port: int = 8024, smtp_port: int = 8025,
                 rest_user: str = "restadmin", runners: Sequence[str] = LIVE_RUNNERS,
                 rest_workers: int = 2, site_owner: str = "mailman-owner@lists-01.lab.example",
                 extra_sections: Mapping[str, Mapping[str, str]] | None = None,
                 hyperkitty_url: str | None = HYPERKITTY_ARCHIVER_URL,
                 requirements: Sequence[str] = MAILMAN_REQUIREMENTS,
                 lab_root: Path | None = None,
                 start_timeout: float = 90.0, stop_timeout: float = 20.0) -> None:
        assert_loopback(address)
        root = lab_root if lab_root is not None else lab_path()
        self.host = host
        self.address = address
        self.rest_port = rest_port
        self.lmtp_port = lmtp_port
        self.smtp_port = smtp_port
        self.rest_user = rest_user
        self.runners = tuple(runners)
        self.rest_workers = rest_workers
        self.site_owner = site_owner
        self.extra_sections = extra_sections or {}
        self.hyperkitty_url = hyperkitty_url
        self.requirements = tuple(requirements)
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout

        self.venv = root / "venvs" / "mailman3"
        self.secret_file = root / "secrets" / "mailman3_rest"
        self.archiver_key_file = root / "secrets" / "hyperkitty_archiver_key"
        self.home = root / "hosts" / host / "mailman3"
        self.config_file = self.home / "mailman.cfg"
        self.gunicorn_config_file = self.home / "gunicorn.cfg"
        self.archiver_config_file = self.home / "mailman-hyperkitty.cfg"
        self.start_log = self.home / "start.log"
        self.var_dir = self.home / "var"
        self.pid_file = self.var_dir / "master.pid"
        self.database = self.var_dir / "data" / "mailman.db"
        self.mailman_log = self.var_dir / "logs" / "mailman.log"

    # -- what tests and other components use --------------------------------------------------

    @property
    def mailman_bin(self) -> Path:
        return self.venv / "bin" / "mailman"

    @property
    def rest_url(self) -> str:
        return f"http://{self.address}:{self.rest_port}/3.1"

    def rest_password(self) -> str:
        try:
            return self.secret_file.read_text().strip()
        except FileNotFoundError:
            raise MailmanLabError(
                f"no REST password yet in {self.secret_file}: run up() first") from None

    def client(self):
        """A mailmanclient.Client logged in as the REST admin."""
        from mailmanclient import Client

        return Client(self.rest_url, self.rest_user, self.rest_password())

    def mailman_command(self, *args: str) -> list[str]:
        """argv for the mailman CLI on this instance, e.g. mailman_command("import21", ...)."""
        # Mailman refuses to run as root without --run-as-root, and only the top-level command
        # reads it: placed after the subcommand it is ignored and Mailman still refuses.
        # Careful with output: `mailman info` prints the REST password ("REST credentials").
        return [str(self.mailman_bin), "--run-as-root", "-C", str(self.config_file), *args]

    def master_pid(self) -> int | None:
        """The running master's pid, if the pid file names a live process of this instance."""
        pid = running_pid(self.pid_file)
        return pid if pid is not None and self._is_daemon(pid) else None

    def daemon_pids(self) -> list[int]:
        """Every live process of this instance: master, runners, gunicorn workers.

        Found by working directory, so runners orphaned by a killed master are found too.
        """
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and self._is_daemon(int(entry.name)):
                found.append(int(entry.name))
        return sorted(found)

    def versions(self, timeout: float = 2.0) -> dict:
        """GET /system/versions; raises OSError or MailmanLabError when it does not answer."""
        status, body = self._request("GET", "/system/versions", timeout=timeout)
        if status != 200:
            raise MailmanLabError(f"GET {self.rest_url}/system/versions answered {status}")
        return json.loads(body)

    # -- Component -----------------------------------------------------------------------------

    def up(self) -> None:
        with self._locked():
            ensure_venv(self.venv, self.requirements)
            password = self._ensure_password()
            changed = self._write_config(password)
            if self.master_pid() is not None:
                if not changed:
                    self._wait_ready()
                    return
                # Mailman reads its config at start only: a changed runner set or port needs a
                # restart to take effect.
                self._stop()
            self._start()

    def status(self) -> list[ServiceStatus]:
        pid = self.master_pid()
        running, detail = False, "not running"
        orphans = self.daemon_pids() if pid is None else []
        if orphans:
            detail = f"master gone, {len(orphans)} orphaned processes left (up or down stops them)"
        if pid is not None:
            try:
                info = self.versions()
                running = True
                detail = f"{info['mailman_version']}, REST API {info['api_version']}"
                if "lmtp" in self.runners and not _port_open(self.address, self.lmtp_port):
                    detail += f", LMTP {self.address}:{self.lmtp_port} not listening"
            except (OSError, ValueError, KeyError, MailmanLabError) as exc:
                detail = f"master runs, REST API does not answer: {exc}"
        return [ServiceStatus(component=self.name, name=f"mailman3 core {self.host}",
                              running=running, address=f"{self.address}:{self.rest_port}",
                              pid=pid, detail=detail)]

    def down(self) -> None:
        with self._locked():
            self._stop()

    def reset(self) -> None:
        """Delete every mailing list and domain through REST, so a test starts from nothing."""
        # Deleting a domain deletes its lists (Mailman's DomainDeletingEvent handler), so one
        # request per domain is enough; the list pass only catches what a domain did not take.
        for domain in self._entries("/domains"):
            self._delete(f"/domains/{quote(domain['mail_host'], safe='')}")
        for mlist in self._entries("/lists"):
            self._delete(f"/lists/{quote(mlist['list_id'], safe='')}")

    # -- starting and stopping -----------------------------------------------------------------

    def _start(self) -> None:
        self._kill_strays()
        if _port_open(self.address, self.rest_port):
            raise MailmanLabError(f"{self.address}:{self.rest_port} is taken by another process")
        self.start_log.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with open(self.start_log, "ab") as log:
            log.write(f"--- mailman start at {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
            log.flush()
            # --force: a master that was killed leaves its lock behind; Mailman then refuses to
            # start unless told to check whether the lock's owner still lives.
            # stdin from /dev/null and output to a file: the master inherits both, and a pipe
            # would never be closed.
            result = subprocess.run(self.mailman_command("start", "--force"),
                                    stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, env=_clean_env(), cwd=self.home,
                                    timeout=60)
        if result.returncode != 0:
            raise MailmanLabError(f"mailman start failed ({result.returncode}):\n"
                                  f"{self._log_tails()}")
        self._wait_ready(started)

    def _wait_ready(self, started: float | None = None) -> None:
        started = time.monotonic() if started is None else started
        deadline = started + self.start_timeout
        seen_master = False
        while time.monotonic() < deadline:
            pid = self.master_pid()
            seen_master = seen_master or pid is not None
            if seen_master and pid is None:
                raise MailmanLabError(f"the Mailman master exited during start:\n"
                                      f"{self._log_tails()}")
            if pid is not None:
                try:
                    self.versions(timeout=1.0)
                except (OSError, ValueError, MailmanLabError):
                    pass
                else:
                    # REST answers before the other runners have finished starting: wait for
                    # LMTP too, so a test can post as soon as up() returns.
                    if "lmtp" not in self.runners or wait_for_port(
                            self.address, self.lmtp_port,
                            timeout=max(deadline - time.monotonic(), 0.1), pid=pid):
                        return
            time.sleep(0.1)
        raise MailmanLabError(f"Mailman's REST API did not answer on {self.rest_url} within "
                              f"{self.start_timeout:.0f} s:\n{self._log_tails()}")

    def _stop(self) -> None:
        # The master passes TERM on to its runners and waits for them, so this is normally all.
        if self.master_pid() is not None:
            stop_pid(self.pid_file, timeout=self.stop_timeout)
        else:
            # A stale file, or a pid reused by an unrelated process: leave that process alone.
            self.pid_file.unlink(missing_ok=True)
        self._kill_strays()

    def _kill_strays(self) -> None:
        """Stop processes of this instance that have no master (it was killed or crashed)."""
        terminate_all(self.daemon_pids())

    def _is_daemon(self, pid: int) -> bool:
        # The master chdirs to var_dir before it execs, and runners and gunicorn workers inherit
        # it; the CLI (`mailman create`, `import21`) keeps its caller's directory. Matching the
        # interpreter too leaves out a shell someone opened in var_dir.
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
            exe = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
        except OSError:
            return False
        return cwd == str(self.var_dir) and exe.startswith("python") and pid_alive(pid)

    # -- files ---------------------------------------------------------------------------------

    def _ensure_password(self) -> str:
        return ensure_secret(self.secret_file)

    def config_text(self, password: str) -> str:
        sections: dict[str, dict[str, str]] = {}
        if self.hyperkitty_url:
            sections["archiver.hyperkitty"] = {
                "class": "mailman_hyperkitty.Archiver", "enable": "yes",
                "configuration": str(self.archiver_config_file)}
        for name, values in self.extra_sections.items():
            sections.setdefault(name, {}).update(values)
        return render_config(
            var_dir=self.var_dir, database_path=self.database,
            rest_host=self.address, rest_port=self.rest_port,
            rest_user=self.rest_user, rest_password=password,
            lmtp_host=self.address, lmtp_port=self.lmtp_port,
            smtp_host=self.address, smtp_port=self.smtp_port,
            runners=self.runners, gunicorn_config=self.gunicorn_config_file,
            site_owner=self.site_owner, rest_workers=self.rest_workers,
            extra_sections=sections,
        )

    def _write_config(self, password: str) -> bool:
        """Write both config files where they differ; True if either changed."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.database.parent.mkdir(parents=True, exist_ok=True)
        changed = _write_if_changed(self.gunicorn_config_file, render_gunicorn_config(), 0o644)
        if self.hyperkitty_url:
            # 0600: it holds the archiver key. Runners read it once, at start.
            archiver = render_archiver_config(base_url=self.hyperkitty_url,
                                              api_key=ensure_secret(self.archiver_key_file))
            changed = _write_if_changed(self.archiver_config_file, archiver, 0o600) or changed
        # 0600: the file holds the REST password.
        return _write_if_changed(self.config_file, self.config_text(password), 0o600) or changed

    def _log_tails(self) -> str:
        return (f"== {self.start_log} ==\n{_tail(self.start_log)}\n"
                f"== {self.mailman_log} ==\n{_tail(self.mailman_log)}")

    def _locked(self):
        return component_lock(self.home)


    # -- REST ----------------------------------------------------------------------------------

    def _request(self, method: str, path: str, timeout: float = 30.0) -> tuple[int, bytes]:
        token = base64.b64encode(f"{self.rest_user}:{self.rest_password()}".encode()).decode()
        conn = http.client.HTTPConnection(self.address, self.rest_port, timeout=timeout)
        try:
            conn.request(method, f"/3.1{path}", headers={"Authorization": f"Basic {token}"})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def _entries(self, path: str) -> list[dict]:
        status, body = self._request("GET", path)
        if status != 200:
            raise MailmanLabError(f"GET {self.rest_url}{path} answered {status}")
        return json.loads(body).get("entries", [])

    def _delete(self, path: str) -> None:
        status, _ = self._request("DELETE", path)
        # 404: gone already, e.g. a list removed with its domain.
        if status not in (204, 404):
            raise MailmanLabError(f"DELETE {self.rest_url}{path} answered {status}")


def _clean_env() -> dict[str, str]:
    return clean_env(_FOREIGN_ENV)


_port_open, _read, _write_if_changed, _tail = port_open, read_or_none, write_if_changed, log_tail
