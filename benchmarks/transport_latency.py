"""Median per-command latency against a lab host, three ways, measured in the same run:

1. the toolkit's transport with one reused connection (TCP_NODELAY set),
2. the toolkit's transport with a new connection per command,
3. OpenSSH with ControlMaster (the usual fast baseline),

and their ratios. Goal: reuse <= 1.3 x OpenSSH mux.

    .venv/bin/python benchmarks/transport_latency.py [--host eugeni] [--runs 200]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from migrate.core.inventory import load_inventory  # noqa: E402
from migrate.core.transport import SSHTransport  # noqa: E402
from migrate.lab.sshd import SshdHosts  # noqa: E402

LAB = Path(__file__).resolve().parents[1] / "inventories" / "lab.yaml"


def timed(fn, runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="eugeni")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--new-connection-runs", type=int, default=30)
    args = parser.parse_args()

    SshdHosts(LAB).up()
    host = load_inventory(LAB).host(args.host)

    reused = SSHTransport(host)
    reused.run(["true"]).check()  # connect and warm up outside the measurement
    reuse = timed(lambda: reused.run(["true"]).check(), args.runs)
    reused.close()

    def fresh():
        t = SSHTransport(host)
        t.run(["true"]).check()
        t.close()

    fresh_samples = timed(fresh, args.new_connection_runs)

    with tempfile.TemporaryDirectory() as tmp:
        control = f"{tmp}/mux-%C"
        base = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", f"UserKnownHostsFile={host.known_hosts}", "-i", str(host.identity_file),
                "-o", "ControlMaster=auto", "-o", f"ControlPath={control}", "-o", "ControlPersist=60",
                "-p", str(host.port), f"{host.user}@{host.address}"]
        subprocess.run([*base, "true"], check=True)  # starts the master
        mux = timed(lambda: subprocess.run([*base, "true"], check=True), args.runs)
        subprocess.run([*base[:-2], "-O", "exit", "-p", str(host.port), f"{host.user}@{host.address}"],
                       capture_output=True)

    m_reuse, m_fresh, m_mux = (statistics.median(s) for s in (reuse, fresh_samples, mux))
    print(f"host {host.name} ({host.address}:{host.port}), median of {args.runs} commands (`true`)")
    print(f"  toolkit transport, reused connection : {m_reuse:7.2f} ms")
    print(f"  toolkit transport, new connection    : {m_fresh:7.2f} ms  ({args.new_connection_runs} runs)")
    print(f"  OpenSSH ControlMaster                : {m_mux:7.2f} ms")
    print(f"  ratio reuse / OpenSSH mux            : {m_reuse / m_mux:7.2f}  (goal <= 1.30)")
    print(f"  ratio new connection / reuse         : {m_fresh / m_reuse:7.1f}")


if __name__ == "__main__":
    main()
