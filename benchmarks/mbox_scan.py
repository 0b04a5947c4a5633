"""Speed of linting an mbox (`mbox.scan`), against `mailbox.mbox` merely finding its messages.

`mailbox.mbox` is what hyperkitty_import reads an archive with; it only looks for lines starting
with `From `. `scan` applies the separator rule, parses every header block and records every
finding. Two archives of the same number of messages are generated in a temporary folder:

- ordinary: messages with a few body lines, one obfuscated separator (`From a at example.org ...`)
  in ten;
- From-heavy: the same, and one message whose body is a run of `--run` lines starting with `From `
  (a pasted log), the case that once made reading quadratic.

    .venv/bin/python benchmarks/mbox_scan.py [--messages 20000] [--run 300000]

Goal: scan of the From-heavy archive within 3x the time per byte of the ordinary one (reading
stays linear); scan against mailbox.mbox is printed, with no goal.
"""

from __future__ import annotations

import argparse
import mailbox
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from migrate.archives.mbox import scan  # noqa: E402

ROUNDS = 3


def archive(messages: int, run: int) -> bytes:
    parts = []
    for number in range(messages):
        sender = "a at example.org " if number % 10 == 5 else "a@example.org"
        parts.append(
            f"From {sender} Mon Feb  8 10:00:00 2016\nFrom: a@example.org\n"
            f"Date: Mon, 08 Feb 2016 10:00:00 +0100\nSubject: message {number}\n"
            f"Message-ID: <m{number}@example.org>\n\nHello,\nthe meeting is at ten.\n\n-- \nA\n\n".encode())
    if run:
        parts.insert(messages // 2, b"From a@example.org Mon Feb  8 10:00:00 2016\nFrom: a@example.org\n"
                                    b"Message-ID: <log@example.org>\n\n"
                                    + b"From here on, the log says the job failed again\n" * run + b"\n")
    return b"".join(parts)


def best(function) -> tuple[float, object]:
    timings, result = [], None
    for _ in range(ROUNDS):
        started = time.perf_counter()
        result = function()
        timings.append(time.perf_counter() - started)
    return min(timings), result


def mailbox_count(path: Path) -> int:
    box = mailbox.mbox(str(path), create=False)
    try:
        return len(box.keys())
    finally:
        box.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--run", type=int, default=300_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mbox-scan-") as folder:
        rates = {}
        for name, run in (("ordinary", 0), ("From-heavy", args.run)):
            path = Path(folder) / f"{name}.mbox"
            path.write_bytes(archive(args.messages, run))
            size = path.stat().st_size
            seconds, report = best(lambda: scan(path))
            reader_seconds, found = best(lambda: mailbox_count(path))
            rates[name] = size / seconds
            print(f"{name:>10}: {size / 1e6:6.1f} MB, {report.messages} messages by the rule, {found} for "
                  f"mailbox.mbox; scan {seconds:6.2f} s ({size / seconds / 1e6:5.1f} MB/s), "
                  f"mailbox.mbox {reader_seconds:6.2f} s, ratio {seconds / reader_seconds:4.1f}x")
        ratio = rates["ordinary"] / rates["From-heavy"]
        print(f"time per byte, From-heavy / ordinary: {ratio:.2f}  (goal <= 3.00)")
        return 0 if ratio <= 3 else 1


if __name__ == "__main__":
    sys.exit(main())
