"""HyperKitty and Postorius (the `mailman-web` Django project) as a lab component on lists-01.

Layout (all under the lab root):

    venvs/mailman-web/                       mailman-web, HyperKitty, Postorius, gunicorn (pinned)
    venvs/mailman-web-install.log            pip's output of the last install
    secrets/mailman_web_secret_key           Django's SECRET_KEY (0600, generated on first up)
    secrets/hyperkitty_archiver_key          shared with Mailman core's archiver (0600)
    secrets/mailman3_rest                    core's REST password (written by Mailman3Core)
    hosts/lists-01/mailman-web/settings.py   rendered by `render_settings` (0600: secrets)
    hosts/lists-01/mailman-web/lab_urls.py   mailman-web's URLs plus /static/ (see below)
    hosts/lists-01/mailman-web/fulltext_index/ Whoosh search index
    hosts/lists-01/mailman-web/static/       collectstatic output, served at /static/
    hosts/lists-01/mailman-web/logs/         mailmanweb.log (Django's own log)
    hosts/lists-01/mailman-web/gunicorn.log  gunicorn's output; gunicorn.pid its master
    hosts/lists-01/mailman-web/component.lock  serialises up/down between processes

The Django database is PostgreSQL (the `postgres` component, migrate/lab/postgres.py), as in
production: on SQLite two imports at once lose messages to "database is locked".

Lists reach HyperKitty three ways: `hyperkitty_import` creates the list and syncs its settings
(archive policy included) from core before importing; the first message core's archiver hands
over creates it too; and `sync_lists()` (HyperKitty's hourly `new_lists_from_mailman` job,
which nothing schedules in the lab) picks up lists that have no message yet.
"""

from __future__ import annotations

import http.client
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from .base import (ServiceStatus, component_lock, assert_loopback, clean_env, lab_path, log_tail, pid_alive, port_open,
                   read_or_none, running_pid, spawn, stop_pid, terminate_all, write_if_changed)
from .mailman3 import SYSTEM_PYTHON, ensure_secret
from .postgres import LabPostgres

HYPERKITTY_VERSION = "1.3.12"
WEB_REQUIREMENTS = (
    "mailman-web==0.0.9",
    f"hyperkitty=={HYPERKITTY_VERSION}",
    "postorius==1.3.13",
    "Django>=4.2,<4.3",
    "whoosh==2.7.4",
    "libsass==0.23.0",
    "gunicorn==27.0.1",
    "psycopg2-binary==2.9.10",
)

# A DJANGO_SETTINGS_MODULE in the environment makes mailman-web ignore MAILMAN_WEB_CONFIG.
_FOREIGN_ENV = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "DJANGO_SETTINGS_MODULE",
                "MAILMAN_WEB_CONFIG")

# The settings file is imported as a top-level module named after its file (mailman-web puts its
# folder on sys.path), so the URLconf next to it must not be called `urls` or it may shadow one.
URLCONF_MODULE = "lab_urls"

# With DEBUG off Django serves no static files, and gunicorn serves none either; the lab has no
# separate static server on lists-01, so Django serves STATIC_ROOT itself (fine at lab scale).
URLCONF_TEXT = '''\
"""Written by migrate.lab.hyperkitty: mailman-web's URLs plus STATIC_ROOT at /static/."""

from django.conf import settings
from django.urls import re_path
from django.views.static import serve
from mailman_web.urls import urlpatterns as web_urlpatterns

urlpatterns = [
    *web_urlpatterns,
    re_path(r"^static/(?P<path>.*)$", serve, {"document_root": settings.STATIC_ROOT}),
]
'''


class HyperKittyLabError(RuntimeError):
    """mailman-web could not be installed, set up, started or stopped."""


def render_settings(*, secret_key: str, allowed_hosts: Sequence[str],
                    trusted_origins: Sequence[str], database: dict, rest_url: str,
                    rest_user: str, rest_password: str, archiver_key: str,
                    archiver_from: Sequence[str], index_dir: Path, static_root: Path,
                    log_file: Path, pysassc: Path, site_url: str) -> str:
    """The text of the mailman-web settings module (Python; values quoted with repr)."""
    values = {
        "SECRET_KEY": secret_key,
        "DEBUG": False,
        "ALLOWED_HOSTS": list(allowed_hosts),
        # Django 4 checks the Origin of POSTs (logins, Postorius forms) against this list.
        "CSRF_TRUSTED_ORIGINS": list(trusted_origins),
        "DATABASES": {"default": dict(database)},
        "MAILMAN_REST_API_URL": rest_url,
        "MAILMAN_REST_API_USER": rest_user,
        "MAILMAN_REST_API_PASS": rest_password,
        "MAILMAN_ARCHIVER_KEY": archiver_key,
        # Core connects to 127.0.0.12 from 127.0.0.1: the kernel picks lo's primary address as
        # the source for any 127.0.0.0/8 destination, so both must be accepted.
        "MAILMAN_ARCHIVER_FROM": tuple(archiver_from),
        # Core fetches list templates from here.
        "POSTORIUS_TEMPLATE_BASE_URL": site_url,
        "HAYSTACK_CONNECTIONS": {"default": {
            "ENGINE": "haystack.backends.whoosh_backend.WhooshEngine",
            "PATH": str(index_dir)}},
        # Without compression the {% compress %} tags still run the SCSS precompiler on first
        # use; mailman-web's default `sassc` binary does not exist here, and pages that need
        # it (messages, threads) then answer 500. libsass ships `pysassc` in the venv.
        "COMPRESS_ENABLED": False,
        "COMPRESS_OFFLINE": False,
        "COMPRESS_PRECOMPILERS": (
            ("text/x-scss", f"{pysassc} -t compressed {{infile}} {{outfile}}"),
            ("text/x-sass", f"{pysassc} -t compressed {{infile}} {{outfile}}"),
        ),
        "EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend",
        "STATIC_ROOT": str(static_root),
        "ROOT_URLCONF": URLCONF_MODULE,
        # Gravatar URLs point browsers at an outside service; the lab stays on loopback.
        "HYPERKITTY_ENABLE_GRAVATAR": False,
        # The lab serves plain HTTP, so links in account e-mails must not say https.
        "ACCOUNT_DEFAULT_HTTP_PROTOCOL": "http",
    }
    lines = [
        "# Written by migrate.lab.hyperkitty; changes are overwritten on the next up.",
        "from mailman_web.settings.base import *  # noqa: F401,F403",
        "from mailman_web.settings.mailman import *  # noqa: F401,F403",
        "",
    ]
    lines.extend(f"{name} = {value!r}" for name, value in values.items())
    lines.extend([
        # sync: queued tasks (list syncs, cache rebuilds) run in the request that queued them;
        # otherwise they wait for a `qcluster` process the lab does not run.
        "Q_CLUSTER = {**Q_CLUSTER, 'sync': True}",
        # The base settings log to /opt/mailman/web/logs, which does not exist here.
        f"LOGGING['handlers']['file']['filename'] = {str(log_file)!r}",
    ])
    return "\n".join(lines) + "\n"


def ensure_web_venv(venv: Path, requirements: Sequence[str] = WEB_REQUIREMENTS, *,
                    python: str = SYSTEM_PYTHON) -> bool:
    """Create venv and install requirements unless its marker already names them. True if it did.

    The marker is written only after pip succeeded, so an interrupted install is retried.
    """
    marker = venv / "migrate-lab-requirements.txt"
    wanted = "\n".join(requirements) + "\n"
    if (venv / "bin" / "mailman-web").exists() and _read(marker) == wanted:
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
                raise HyperKittyLabError(f"{' '.join(argv)} failed ({result.returncode}):\n"
                                         f"{_tail(log)}")
    marker.write_text(wanted)
    return True


class HyperKittyWeb:
    """HyperKitty and Postorius served by gunicorn on a lab host, talking to Mailman 3 core."""

    name = "hyperkitty"

    def __init__(self, *, host: str = "lists-01", address: str = "127.0.0.12", port: int = 8000,
                 core_rest_url: str = "http://127.0.0.12:8001", rest_user: str = "restadmin",
                 archiver_from: Sequence[str] = ("127.0.0.12", "127.0.0.1"),
                 allowed_hosts: Sequence[str] = ("127.0.0.12", "127.0.0.13", "localhost"),
                 requirements: Sequence[str] = WEB_REQUIREMENTS, workers: int = 2,
                 lab_root: Path | None = None,
                 start_timeout: float = 90.0, stop_timeout: float = 10.0) -> None:
        assert_loopback(address)
        root = lab_root if lab_root is not None else lab_path()
        self.host = host
        self.address = address
        self.port = port
        self.core_rest_url = core_rest_url
        self.rest_user = rest_user
        self.archiver_from = tuple(archiver_from)
        self.allowed_hosts = tuple(allowed_hosts)
        self.requirements = tuple(requirements)
        self.workers = workers
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout

        self.venv = root / "venvs" / "mailman-web"
        self.rest_password_file = root / "secrets" / "mailman3_rest"
        self.archiver_key_file = root / "secrets" / "hyperkitty_archiver_key"
        self.secret_key_file = root / "secrets" / "mailman_web_secret_key"
        self.home = root / "hosts" / host / "mailman-web"
        self.settings_file = self.home / "settings.py"
        self.urlconf_file = self.home / f"{URLCONF_MODULE}.py"
        self.postgres = LabPostgres(host=host, address=address, root=root)
        self.index_dir = self.home / "fulltext_index"
        self.static_root = self.home / "static"
        self.log_dir = self.home / "logs"
        self.django_log = self.log_dir / "mailmanweb.log"
        self.gunicorn_log = self.home / "gunicorn.log"
        self.pid_file = self.home / "gunicorn.pid"
        self._migrated_marker = self.home / "migrated-with.txt"
        self._static_marker = self.static_root / "collected-with.txt"

    # -- what tests, other components and the toolkit use --------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.address}:{self.port}"

    @property
    def mailman_web_bin(self) -> Path:
        return self.venv / "bin" / "mailman-web"

    def manage_command(self, *args: str) -> list[str]:
        """argv for `mailman-web` on this instance, e.g. manage_command("hyperkitty_import", ...).

        Goes through `env` so the same argv works locally and as a remote command over SSH.
        """
        return ["env", "-u", "DJANGO_SETTINGS_MODULE", f"MAILMAN_WEB_CONFIG={self.settings_file}",
                str(self.mailman_web_bin), *args]

    def sync_lists(self, list_addresses: Sequence[str] | None = None) -> None:
        """Import lists from core that HyperKitty does not know yet; all of them by default.

        All: HyperKitty's hourly `new_lists_from_mailman` job (it skips lists whose archive
        policy is `never`). Named lists: fetched one by one, settings included.
        """
        if list_addresses is None:
            self._manage("runjob", "new_lists_from_mailman", timeout=300)
            return
        code = ("from hyperkitty.lib.mailman import import_list_from_mailman\n"
                f"for address in {sorted(list_addresses)!r}:\n"
                "    import_list_from_mailman(address)\n")
        self._manage("shell", "-c", code, timeout=300)

    def delete_archives(self, list_addresses: Sequence[str]) -> None:
        """Delete these lists and every message of theirs from HyperKitty's database.

        Deleting a list (or its domain) in core leaves HyperKitty's copy behind, and every
        `hyperkitty_import` then syncs each stale list with core again.
        """
        if not list_addresses:
            return
        code = ("from hyperkitty.models import MailingList; "
                f"MailingList.objects.filter(name__in={sorted(list_addresses)!r}).delete()")
        self._manage("shell", "-c", code, timeout=300)

    def gunicorn_pid(self) -> int | None:
        """The running gunicorn master's pid, if the pid file names one of this instance."""
        pid = running_pid(self.pid_file)
        return pid if pid is not None and self._is_daemon(pid) else None

    def daemon_pids(self) -> list[int]:
        """Every live gunicorn process (master and workers) serving this instance."""
        return sorted(int(entry.name) for entry in Path("/proc").iterdir()
                      if entry.name.isdigit() and self._is_daemon(int(entry.name)))

    def get(self, path: str, timeout: float = 30.0) -> tuple[int, dict[str, str], bytes]:
        """An anonymous GET against gunicorn directly: (status, headers, body); no redirects."""
        conn = http.client.HTTPConnection(self.address, self.port, timeout=timeout)
        try:
            conn.request("GET", path, headers={"Host": self.address})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    # -- Component -----------------------------------------------------------------------------

    def up(self) -> None:
        with self._locked():
            self.postgres.up()  # its database first (idempotent; the components list starts it too)
            installed = ensure_web_venv(self.venv, self.requirements)
            changed = self._write_files()
            self._migrate_if_needed()
            self._collectstatic_if_needed()
            if self.gunicorn_pid() is not None:
                if not (installed or changed):
                    self._wait_ready()
                    return
                # Django reads its settings at start only.
                self._stop()
            self._start()

    def status(self) -> list[ServiceStatus]:
        pid = self.gunicorn_pid()
        running, detail = False, "not running"
        if pid is None and self.daemon_pids():
            detail = "master gone, workers left (up or down stops them)"
        if pid is not None:
            try:
                code, _, _ = self.get("/hyperkitty/", timeout=5.0)
            except OSError as exc:
                detail = f"gunicorn runs, HTTP does not answer: {exc}"
            else:
                running = code == 200
                detail = f"HyperKitty {HYPERKITTY_VERSION}, GET /hyperkitty/ {code}"
        return [ServiceStatus(component=self.name, name=f"hyperkitty+postorius {self.host}",
                              running=running, address=f"{self.address}:{self.port}",
                              pid=pid, detail=detail)]

    def down(self) -> None:
        with self._locked():
            self._stop()

    # -- setting up ----------------------------------------------------------------------------

    def _write_files(self) -> bool:
        """Write the settings module and URLconf where they differ; True if either changed."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            rest_password = self.rest_password_file.read_text().strip()
        except FileNotFoundError:
            raise HyperKittyLabError(f"no Mailman REST password in {self.rest_password_file}: "
                                     f"start the mailman3 component first") from None
        text = render_settings(
            secret_key=ensure_secret(self.secret_key_file, nbytes=48),
            allowed_hosts=self.allowed_hosts,
            trusted_origins=[f"http://{host}" for host in self.allowed_hosts]
            + [self.base_url],
            database=self.postgres.django_database(), rest_url=self.core_rest_url, rest_user=self.rest_user,
            rest_password=rest_password, archiver_key=ensure_secret(self.archiver_key_file),
            archiver_from=self.archiver_from, index_dir=self.index_dir,
            static_root=self.static_root, log_file=self.django_log,
            pysassc=self.venv / "bin" / "pysassc", site_url=self.base_url,
        )
        changed = _write_if_changed(self.urlconf_file, URLCONF_TEXT, 0o644)
        # 0600: SECRET_KEY, the REST password and the archiver key are in it.
        return _write_if_changed(self.settings_file, text, 0o600) or changed

    def _migrate_if_needed(self) -> None:
        # `migrate` costs a Django start-up (seconds) even when there is nothing to do, so it
        # runs only for a new database (a new cluster id) or after the installed versions changed.
        wanted = "\n".join([*self.requirements, f"cluster {self.postgres.cluster_id()}"]) + "\n"
        if _read(self._migrated_marker) == wanted:
            return
        self._manage("migrate", "--no-input", timeout=600)
        self._migrated_marker.write_text(wanted)

    def _collectstatic_if_needed(self) -> None:
        wanted = "\n".join(self.requirements) + "\n"
        if _read(self._static_marker) == wanted:
            return
        self._manage("collectstatic", "--no-input", "--clear", timeout=600)
        self._static_marker.write_text(wanted)

    def _manage(self, *args: str, timeout: float) -> str:
        result = subprocess.run(self.manage_command(*args), stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, env=_clean_env(),
                                cwd=self.home, timeout=timeout)
        if result.returncode != 0:
            raise HyperKittyLabError(f"mailman-web {' '.join(args)} failed "
                                     f"({result.returncode}):\n{result.stdout[-2000:]}"
                                     f"{result.stderr[-4000:]}")
        return result.stdout

    # -- starting and stopping -----------------------------------------------------------------

    def _start(self) -> None:
        self._kill_strays()
        if _port_open(self.address, self.port):
            raise HyperKittyLabError(f"{self.address}:{self.port} is taken by another process")
        env = _clean_env()
        env["MAILMAN_WEB_CONFIG"] = str(self.settings_file)
        argv = [
            str(self.venv / "bin" / "gunicorn"),
            "--bind", f"{self.address}:{self.port}",
            "--workers", str(self.workers),
            # gunicorn's 30 s default is what makes a TERM slow to finish.
            "--graceful-timeout", "2",
            # An import of a large mbox is not served by gunicorn, but first page views compile
            # SCSS and can take a while on a cold cache.
            "--timeout", "120",
            # Otherwise every instance run by root shares $HOME/.gunicorn/gunicorn.ctl.
            "--no-control-socket",
            "--access-logfile", "-",
            "mailman_web.wsgi:application",
        ]
        with open(self.gunicorn_log, "ab") as log:
            log.write(f"--- gunicorn start at {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        spawn(argv, log_file=self.gunicorn_log, pid_file=self.pid_file, env=env, cwd=self.home)
        self._wait_ready()

    def _wait_ready(self) -> None:
        """Poll GET /hyperkitty/ until it answers 200 (the first one compiles SCSS)."""
        deadline = time.monotonic() + self.start_timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if running_pid(self.pid_file) is None:
                raise HyperKittyLabError(f"gunicorn exited during start:\n"
                                         f"{_tail(self.gunicorn_log)}")
            try:
                code, _, _ = self.get("/hyperkitty/", timeout=max(deadline - time.monotonic(), 1))
            except OSError as exc:
                last = str(exc)
            else:
                if code == 200:
                    return
                last = f"HTTP {code}"
            time.sleep(0.1)
        raise HyperKittyLabError(f"GET {self.base_url}/hyperkitty/ did not answer 200 within "
                                 f"{self.start_timeout:.0f} s ({last}):\n"
                                 f"{_tail(self.gunicorn_log)}\n{_tail(self.django_log)}")

    def _stop(self) -> None:
        if self.gunicorn_pid() is not None:
            stop_pid(self.pid_file, timeout=self.stop_timeout)
        else:
            # A stale file, or a pid reused by an unrelated process: leave that process alone.
            self.pid_file.unlink(missing_ok=True)
        self._kill_strays()

    def _kill_strays(self) -> None:
        """Stop workers whose master is gone (it was killed): they hold the port."""
        terminate_all(self.daemon_pids())

    def _is_daemon(self, pid: int) -> bool:
        # gunicorn's master and its forked workers share the command line we started it with;
        # the venv path and the bind address together name this instance.
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
        except OSError:
            return False
        gunicorn = str(self.venv / "bin" / "gunicorn").encode()
        bind = f"{self.address}:{self.port}".encode()
        return gunicorn in argv and bind in argv and pid_alive(pid)

    def _locked(self):
        return component_lock(self.home)



def _clean_env() -> dict[str, str]:
    return clean_env(_FOREIGN_ENV)


_port_open, _read, _write_if_changed, _tail = port_open, read_or_none, write_if_changed, log_tail
