"""Read-only facts about hosts: reachability, verified host key, OS release, latency."""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from .errors import HostKeyError, MigrateError
from .transport import Connections, SSHTransport


@dataclass
class HostCheck:
    host: str
    roles: list[str]
    address: str
    reachable: bool = False
    host_key_verified: bool = False
    host_key: str = ""
    os_release: str = ""
    latency_ms: float | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.reachable and self.host_key_verified and not self.error

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def parse_os_release(text: str) -> str:
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip().strip('"')
    return values.get("PRETTY_NAME") or values.get("NAME", "")


def check_host(connections: Connections, host, samples: int = 5) -> HostCheck:
    result = HostCheck(host.name, list(host.roles), host.endpoint)
    transport = connections.get(host.name)
    try:
        if isinstance(transport, SSHTransport):
            transport.connect()
            result.host_key = transport.server_key_fingerprint()
        result.reachable = result.host_key_verified = True
        release = transport.run(["cat", "/etc/os-release"])
        result.os_release = parse_os_release(release.stdout) if release.ok else "unknown"
        timings = []
        for _ in range(samples):
            started = time.perf_counter()
            transport.run(["true"])
            timings.append((time.perf_counter() - started) * 1000)
        result.latency_ms = round(statistics.median(timings), 1)
    except HostKeyError as exc:
        result.reachable = True
        result.error = str(exc)
    except MigrateError as exc:
        result.error = str(exc)
    return result


def check_hosts(inventory, hosts=None, samples: int = 5) -> list[HostCheck]:
    """Check hosts in parallel, each over its own verified connection."""
    targets = list(hosts if hosts is not None else inventory.hosts.values())
    with Connections(inventory) as connections:
        with ThreadPoolExecutor(max_workers=min(8, len(targets) or 1)) as pool:
            return list(pool.map(lambda h: check_host(connections, h, samples), targets))
