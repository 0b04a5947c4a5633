"""The lab's web server web-01: Debian's nginx (and Apache) with configuration files of their own.

web-01 serves what users reach after the migration: the old pipermail archive as static files,
the redirects the toolkit installs from old pipermail URLs to HyperKitty, and a proxy to
HyperKitty/Postorius on lists-01, so a redirect can be followed end to end on one host.

Layout (all under the lab root; the system's /etc/nginx and /etc/apache2 are never touched):

    hosts/web-01/nginx/nginx.conf        the main config (rendered by `render_nginx_config`)
    hosts/web-01/nginx/nginx.pid         pid of the master; error.log, access.log, tmp/
    hosts/web-01/apache2/apache2.conf    the main config (rendered by `render_apache_config`)
    hosts/web-01/apache2/apache2.pid     pid of the parent; error.log, access.log, run/
    hosts/web-01/component.lock          serialises up/down/reload between processes
    hosts/web-01/root/etc/nginx/migrate-http.d/*.conf   included at http level (maps)
    hosts/web-01/root/etc/nginx/migrate.d/*.conf        included in the server block
    hosts/web-01/root/etc/apache2/migrate.d/*.conf      included in the main server
    hosts/web-01/root/srv/pipermail/     the static pipermail copy, served at /pipermail/
    hosts/web-01/root/srv/www/           the document root for everything else (empty)

The include folders and the pipermail copy belong to the toolkit, which writes them over SSH and
then runs `check_command`/`reload_command` there; this module only creates them empty.

Snippets in migrate.d share the server with the built-in locations: `/pipermail/` is a plain
prefix location there, so a snippet redirects with a server-level `if ($var) { return 301 ...; }`
(fed by a map in migrate-http.d), an exact `location = ...` or a regex location, not with a
second `location /pipermail/`, which nginx refuses as a duplicate. The main config leaves
`map_hash_bucket_size` unset, as Debian's does: the default bucket (64 bytes here) is too small
for pipermail paths, so the map file itself sets it (once: nginx refuses a duplicate).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .base import (ServiceStatus, component_lock, assert_loopback, lab_path, pid_alive, running_pid, stop_pid,
                   wait_for_port)

NGINX = "/usr/sbin/nginx"
APACHE = "/usr/sbin/apache2"
NGINX_PACKAGE = "nginx"
APACHE_PACKAGE = "apache2"
APACHE_MODULES_DIR = "/usr/lib/apache2/modules"
# Debian builds only core, so, watchdog, http_core, log_config, logio, version and unixd into
# apache2; everything else our config uses is loaded here.
APACHE_MODULES = (
    ("mpm_event_module", "mod_mpm_event.so"),
    ("authz_core_module", "mod_authz_core.so"),
    ("mime_module", "mod_mime.so"),
    ("dir_module", "mod_dir.so"),
    ("alias_module", "mod_alias.so"),
    ("rewrite_module", "mod_rewrite.so"),
    ("proxy_module", "mod_proxy.so"),
    ("proxy_http_module", "mod_proxy_http.so"),
)
# What web-01 passes on to mailman-web on lists-01. /accounts/ is Django's login, which
# Postorius and HyperKitty link to.
PROXIED_PREFIXES = ("/hyperkitty/", "/postorius/", "/static/", "/accounts/")
# HyperKitty's archiving API is for Mailman core only (key and source address checked there);
# the public web server does not pass it on at all.
BLOCKED_PREFIX = "/hyperkitty/api/mailman/"

RELOAD_TIMEOUT = 15.0


class WebLabError(RuntimeError):
    """The lab web server could not be installed, configured, started, reloaded or stopped."""


@dataclass(frozen=True)
class WebConfigPaths:
    """Where the toolkit puts what web-01 serves; each folder's *.conf files are included."""

    nginx_http_include_dir: Path  # http level: map blocks
    nginx_include_dir: Path  # inside the server block: locations, returns
    apache_include_dir: Path  # main server context: RewriteMap, RewriteRule, Redirect
    pipermail_root: Path  # files here are served at /pipermail/
    document_root: Path


def render_nginx_config(*, address: str, port: int, home: Path, server_name: str,
                        paths: WebConfigPaths, upstream: str, worker_user: str = "www-data",
                        workers: int = 2) -> str:
    """The text of our nginx.conf: one server on address:port, includes for the toolkit."""
    proxies = "\n".join(f"""\
        location {prefix} {{
            proxy_pass {upstream};
            include {home / 'proxy_params'};
        }}""" for prefix in PROXIED_PREFIXES)
    return f"""\
# Written by migrate.lab.web; changes are overwritten on the next up.
user {worker_user};
worker_processes {workers};
pid {home / 'nginx.pid'};
error_log {home / 'error.log'};

events {{
    worker_connections 256;
}}

http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    access_log {home / 'access.log'};
    # Every temporary path inside our prefix: the compiled-in ones are the system's.
    client_body_temp_path {home / 'tmp' / 'client_body'};
    proxy_temp_path {home / 'tmp' / 'proxy'};
    fastcgi_temp_path {home / 'tmp' / 'fastcgi'};
    uwsgi_temp_path {home / 'tmp' / 'uwsgi'};
    scgi_temp_path {home / 'tmp' / 'scgi'};

    include {paths.nginx_http_include_dir}/*.conf;

    server {{
        listen {address}:{port} default_server;
        server_name {server_name} _;
        root {paths.document_root};

        location /pipermail/ {{
            root {paths.pipermail_root.parent};
        }}

        location {BLOCKED_PREFIX} {{
            return 403;
        }}

{proxies}

        include {paths.nginx_include_dir}/*.conf;
    }}
}}
"""


def render_proxy_params() -> str:
    # $http_host keeps the name (and port) the visitor used, which Django checks against
    # ALLOWED_HOSTS and uses in the links it writes.
    return """\
# Written by migrate.lab.web; changes are overwritten on the next up.
proxy_set_header Host $http_host;
proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
proxy_set_header X-Forwarded-Proto $scheme;
proxy_set_header X-Real-IP $remote_addr;
"""


def render_apache_config(*, address: str, port: int, home: Path, server_name: str,
                         paths: WebConfigPaths, upstream: str,
                         worker_user: str = "www-data") -> str:
    """The text of our apache2.conf: the main server on address:port, includes for the toolkit."""
    modules = "\n".join(f"LoadModule {name} {APACHE_MODULES_DIR}/{so}"
                        for name, so in APACHE_MODULES)
    proxies = "\n".join(f"ProxyPass {prefix} {upstream}{prefix}\n"
                        f"ProxyPassReverse {prefix} {upstream}{prefix}"
                        for prefix in PROXIED_PREFIXES)
    return f"""\
# Written by migrate.lab.web; changes are overwritten on the next up.
{modules}

ServerName {server_name}
Listen {address}:{port}
PidFile {home / 'apache2.pid'}
DefaultRuntimeDir {home / 'run'}
ErrorLog {home / 'error.log'}
LogFormat "%h %l %u %t \\"%r\\" %>s %b" common
CustomLog {home / 'access.log'} common
User {worker_user}
Group {worker_user}
TypesConfig /etc/mime.types
# Old children of a graceful reload wait for idle keep-alive connections; keep that short.
KeepAliveTimeout 2
StartServers 1
ServerLimit 4
ThreadsPerChild 10
MaxRequestWorkers 40
MinSpareThreads 5
MaxSpareThreads 20

DocumentRoot {paths.document_root}
<Directory />
    Require all denied
    AllowOverride None
</Directory>
<Directory {paths.document_root.parent}>
    Require all granted
</Directory>
Alias /pipermail/ {paths.pipermail_root}/

<Location {BLOCKED_PREFIX}>
    Require all denied
</Location>
ProxyPass {BLOCKED_PREFIX} !
ProxyPreserveHost On
{proxies}

IncludeOptional {paths.apache_include_dir}/*.conf
"""


class WebServer:
    """nginx on web-01:80 and Apache on web-01:8080, both on the host's loopback address only."""

    name = "web"

    def __init__(self, *, host: str = "web-01", address: str = "127.0.0.13", port: int = 80,
                 apache_port: int | None = 8080, upstream: str = "http://127.0.0.12:8000",
                 install_missing: bool = True, lab_root: Path | None = None) -> None:
        assert_loopback(address)
        root = lab_root if lab_root is not None else lab_path()
        self.host = host
        self.address = address
        self.port = port
        self.apache_port = apache_port
        self.upstream = upstream.rstrip("/")
        self.install_missing = install_missing

        self.home = root / "hosts" / host
        self.host_root = self.home / "root"
        self.nginx_home = self.home / "nginx"
        self.nginx_conf = self.nginx_home / "nginx.conf"
        self.nginx_pid_file = self.nginx_home / "nginx.pid"
        self.nginx_error_log = self.nginx_home / "error.log"
        self.apache_home = self.home / "apache2"
        self.apache_conf = self.apache_home / "apache2.conf"
        self.apache_pid_file = self.apache_home / "apache2.pid"
        self.apache_error_log = self.apache_home / "error.log"
        self.config_paths = WebConfigPaths(
            nginx_http_include_dir=self.host_root / "etc" / "nginx" / "migrate-http.d",
            nginx_include_dir=self.host_root / "etc" / "nginx" / "migrate.d",
            apache_include_dir=self.host_root / "etc" / "apache2" / "migrate.d",
            pipermail_root=self.host_root / "srv" / "pipermail",
            document_root=self.host_root / "srv" / "www",
        )

    # -- what tests and the toolkit use --------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.address}" + ("" if self.port == 80 else f":{self.port}")

    @property
    def apache_base_url(self) -> str | None:
        return None if self.apache_port is None else f"http://{self.address}:{self.apache_port}"

    def nginx_command(self, *args: str) -> list[str]:
        """argv for nginx with our config and prefix, e.g. nginx_command("-s", "reload")."""
        return [NGINX, "-c", str(self.nginx_conf), "-p", f"{self.nginx_home}/", *args]

    def apache_command(self, *args: str) -> list[str]:
        """argv for apache2 with our config and server root, e.g. apache_command("-t")."""
        return [APACHE, "-f", str(self.apache_conf), "-d", str(self.apache_home), *args]

    def check_command(self, server: str = "nginx") -> list[str]:
        """argv of the syntax check of `server` ("nginx" or "apache")."""
        return self.nginx_command("-t") if server == "nginx" else self.apache_command("-t")

    def reload_command(self, server: str = "nginx") -> list[str]:
        """argv of a graceful reload of `server` ("nginx" or "apache")."""
        return (self.nginx_command("-s", "reload") if server == "nginx"
                else self.apache_command("-k", "graceful"))

    @property
    def servers(self) -> tuple[str, ...]:
        return ("nginx",) if self.apache_port is None else ("nginx", "apache")

    def check_config(self) -> dict[str, str]:
        """Run every server's syntax check; its output by server. Raises WebLabError on failure."""
        return {server: self._run(self.check_command(server), f"{server} config check")
                for server in self.servers}

    def reload(self) -> None:
        """Check, then reload every running server, and wait until the new config serves."""
        with self._locked():
            self._reload()

    def nginx_pid(self) -> int | None:
        return self._master_pid(self.nginx_pid_file, self.nginx_conf)

    def apache_pid(self) -> int | None:
        return self._master_pid(self.apache_pid_file, self.apache_conf)

    def daemon_pids(self) -> list[int]:
        """Every live process of our nginx and Apache: masters and their children."""
        masters = [pid for pid in (self.nginx_pid(), self.apache_pid()) if pid is not None]
        return sorted({*masters, *(child for pid in masters for child in _children(pid))})

    # -- Component -----------------------------------------------------------------------------

    def up(self) -> None:
        with self._locked():
            self._ensure_packages()
            changed = self._write_files()
            self.check_config()
            if self.nginx_pid() is None:
                self._start_nginx()
            elif changed:
                self._reload_one("nginx")
            if self.apache_port is not None:
                if self.apache_pid() is None:
                    self._start_apache(self.apache_port)
                elif changed:
                    self._reload_one("apache")

    def status(self) -> list[ServiceStatus]:
        result = [self._status_of("nginx", self.nginx_pid(), self.port)]
        if self.apache_port is not None:
            result.append(self._status_of("apache", self.apache_pid(), self.apache_port))
        return result

    def down(self) -> None:
        with self._locked():
            for pid_file, conf in ((self.apache_pid_file, self.apache_conf),
                                   (self.nginx_pid_file, self.nginx_conf)):
                if self._master_pid(pid_file, conf) is not None:
                    stop_pid(pid_file, timeout=10.0)
                else:
                    # A stale file, or a pid reused by an unrelated process: leave that alone.
                    pid_file.unlink(missing_ok=True)

    # -- setting up ----------------------------------------------------------------------------

    def _ensure_packages(self) -> None:
        wanted = [(NGINX, NGINX_PACKAGE)]
        if self.apache_port is not None:
            wanted.append((APACHE, APACHE_PACKAGE))
        missing = [package for binary, package in wanted if not Path(binary).exists()]
        if not missing:
            return
        if not self.install_missing:
            raise WebLabError(f"not installed: {', '.join(missing)}")
        # Debian's policy-rc.d on these machines keeps the packages' own services from starting
        # (they would listen on every address, port 80 included).
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
        first = subprocess.run(install, stdin=subprocess.DEVNULL, capture_output=True,
                               text=True, env=env)
        if first.returncode == 0:
            return
        # A fresh machine has no package lists yet.
        self._run(["apt-get", "update"], "apt-get update", env=env)
        self._run(install, f"apt-get install {' '.join(missing)}", env=env)

    def _write_files(self) -> bool:
        """Create the folders and write both configs where they differ; True if any changed."""
        for folder in (self.nginx_home / "tmp", self.apache_home / "run",
                       self.config_paths.nginx_http_include_dir,
                       self.config_paths.nginx_include_dir, self.config_paths.apache_include_dir,
                       self.config_paths.pipermail_root, self.config_paths.document_root):
            folder.mkdir(parents=True, exist_ok=True)
        changed = _write_if_changed(self.nginx_home / "proxy_params", render_proxy_params())
        changed = _write_if_changed(self.nginx_conf, render_nginx_config(
            address=self.address, port=self.port, home=self.nginx_home,
            server_name=self.host, paths=self.config_paths,
            upstream=self.upstream)) or changed
        if self.apache_port is not None:
            changed = _write_if_changed(self.apache_conf, render_apache_config(
                address=self.address, port=self.apache_port, home=self.apache_home,
                server_name=self.host, paths=self.config_paths,
                upstream=self.upstream)) or changed
        return changed

    # -- starting, reloading -------------------------------------------------------------------

    def _start_nginx(self) -> None:
        self.nginx_pid_file.unlink(missing_ok=True)
        self._kill_orphans(self.port, "nginx")
        self._fail_if_port_taken(self.port)
        # nginx binds its sockets before it daemonizes, so a bind error shows here.
        self._run(self.nginx_command(), "nginx start")
        self._wait_started(self.nginx_pid_file, self.nginx_conf, self.port, self.nginx_error_log)

    def _start_apache(self, port: int) -> None:
        self.apache_pid_file.unlink(missing_ok=True)
        self._kill_orphans(port, "apache2")
        self._fail_if_port_taken(port)
        self._run(self.apache_command("-k", "start"), "apache2 start")
        self._wait_started(self.apache_pid_file, self.apache_conf, port, self.apache_error_log)

    def _wait_started(self, pid_file: Path, conf: Path, port: int, log: Path) -> None:
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            pid = self._master_pid(pid_file, conf)
            if pid is not None and wait_for_port(self.address, port, timeout=0.5, pid=pid):
                return
            time.sleep(0.05)
        raise WebLabError(f"{conf.name}: nothing serves {self.address}:{port} after start:\n"
                          f"{_tail(log)}")

    def _reload(self) -> None:
        self.check_config()
        for server in self.servers:
            self._reload_one(server)

    def _reload_one(self, server: str) -> None:
        """Reload one server if it runs, and wait until only workers with the new config serve.

        Both reloads are asynchronous: the master re-reads the config, starts new workers and
        tells the old ones to finish. Old workers stop accepting at once, so a request after
        this returns is answered with the new config.
        """
        master = self.nginx_pid() if server == "nginx" else self.apache_pid()
        if master is None:
            return
        old = _children(master)
        self._run(self.reload_command(server), f"{server} reload")
        deadline = time.monotonic() + RELOAD_TIMEOUT
        while time.monotonic() < deadline:
            now = _children(master)
            if now - old and not now & old:
                return
            if not pid_alive(master):
                break
            time.sleep(0.05)
        log = self.nginx_error_log if server == "nginx" else self.apache_error_log
        raise WebLabError(f"{server} did not replace its workers within {RELOAD_TIMEOUT:.0f} s "
                          f"after a reload:\n{_tail(log)}")

    def _kill_orphans(self, port: int, program: str) -> None:
        """Stop workers left by a killed master of ours: they keep our socket open.

        nginx workers outlive a master killed with SIGKILL. Only processes of the same program
        listening on exactly our address and port are taken as ours.
        """
        orphans = [pid for pid in _listeners(self.address, port) if _program(pid) == program]
        for pid in orphans:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and any(pid_alive(pid) for pid in orphans):
            time.sleep(0.05)

    def _fail_if_port_taken(self, port: int) -> None:
        if wait_for_port(self.address, port, timeout=0.05):
            raise WebLabError(f"{self.address}:{port} is taken by another process (a system "
                              f"web server listening on every address takes it too)")

    def _status_of(self, server: str, pid: int | None, port: int) -> ServiceStatus:
        running = pid is not None and wait_for_port(self.address, port, timeout=1.0, pid=pid)
        detail = "not running" if pid is None else ("serving" if running else
                                                     f"runs, {self.address}:{port} not listening")
        return ServiceStatus(component=self.name, name=f"{server} {self.host}", running=running,
                             address=f"{self.address}:{port}", pid=pid, detail=detail)

    def _master_pid(self, pid_file: Path, conf: Path) -> int | None:
        # A pid file names our master only if that process was started with our config file;
        # nginx rewrites its master's title but keeps the original arguments in it.
        pid = running_pid(pid_file)
        if pid is None:
            return None
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = fh.read()
        except OSError:
            return None
        return pid if str(conf).encode() in cmdline else None

    def _run(self, argv: Sequence[str], what: str, env: dict[str, str] | None = None) -> str:
        result = subprocess.run(list(argv), stdin=subprocess.DEVNULL, capture_output=True,
                                text=True, env=env, timeout=600)
        output = (result.stdout + result.stderr).strip()
        if result.returncode != 0:
            raise WebLabError(f"{what} failed ({result.returncode}): {' '.join(argv)}\n{output}")
        return output

    def _locked(self):
        return component_lock(self.home)



def _listeners(address: str, port: int) -> set[int]:
    """Pids of the processes holding a listening TCP socket on exactly address:port."""
    out = subprocess.run(["ss", "-ltnpH", "src", f"{address}:{port}"], capture_output=True,
                         text=True, check=True).stdout
    return {int(pid) for pid in re.findall(r"pid=(\d+)", out)}


def _program(pid: int) -> str | None:
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return None


def _children(pid: int) -> set[int]:
    """Live child processes of pid (from /proc/*/stat)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name in parentheses may contain spaces; the fields after it do not.
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[1]) == pid:
            found.add(int(entry.name))
    return found


def _write_if_changed(path: Path, text: str) -> bool:
    try:
        if path.read_text() == text:
            return False
    except FileNotFoundError:
        pass
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return True


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
