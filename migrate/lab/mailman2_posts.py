"""New posts reaching the lab's Mailman 2 while a migration is under way.

Each post is appended to the list's archive mbox the way Mailman 2.1 archives a message:
ArchRunner hands it to `Mailbox.AppendMessage`, which writes a newline first when the file does
not end with one, then the message with its unix From line (the one the MTA gave it: "From
SENDER  DATE", two spaces, asctime), then one empty line. Body lines starting with "From " are
written escaped (">From "), as Mailman's Generator does with mangle_from_. Pipermail's HTML is
not updated: the migration reads the mbox only.
"""

from __future__ import annotations

import random
import time
from email.utils import format_datetime, formataddr
from datetime import datetime, timezone
from pathlib import Path

from ..mailman import mm2

_PEOPLE = (("Alice Martin", "alice@example.net"), ("Bogdan Nowak", "bogdan@example.pl"),
           ("Chen Wei", "chen@example.cn"), ("Dolores Ruiz", "dolores@example.es"),
           ("Emeka Obi", "emeka@example.ng"), ("Frida Berg", "frida@example.se"))
_SUBJECTS = ("Agenda for the next meeting", "Re: Server move this weekend", "Minutes of Tuesday",
             "Question about the archive", "Re: Re: Budget draft", "Volunteers needed")
_LINES = ("Thanks for the update, that works for me.",
          "I will bring the printed copies on Thursday.",
          "From what I heard, the old address keeps working for a while.",
          "Could someone check the numbers before we send them out?",
          "Let us talk about it on the call.")


def mbox_path(var_dir: Path, name: str) -> Path:
    return Path(var_dir) / "archives" / "private" / f"{name}.mbox" / f"{name}.mbox"


def append_posts(var_dir: Path, name: str, count: int, *, seed: int | None = None,
                 now: float | None = None) -> list[str]:
    """Append `count` new posts to list `name`'s mbox; return their Message-IDs (with brackets).

    Ids are unique across calls unless the same `seed` and `now` are given again.
    """
    if count < 0:
        raise ValueError("count must not be negative")
    config = mm2.load_config((Path(var_dir) / "lists" / name / "config.pck").read_bytes(), list_name=name)
    host = str(config.get("host_name") or "lists.example.org")
    real_name = str(config.get("real_name") or name)
    path = mbox_path(var_dir, name)
    if not path.parent.is_dir():
        raise ValueError(f"list {name} has no archive folder {path.parent}: archiving is off")
    rng = random.Random(seed if seed is not None else time.time_ns())
    when = time.time() if now is None else now
    ids = []
    with open(path, "ab") as out:
        if path.stat().st_size:
            with open(path, "rb") as current:
                current.seek(-1, 2)
                if current.read(1) != b"\n":
                    out.write(b"\n")
        for number in range(count):
            stamp = when + number
            display, address = _PEOPLE[rng.randrange(len(_PEOPLE))]
            msgid = f"<{int(stamp)}.{rng.getrandbits(40):010x}.{number}@{address.split('@')[1]}>"
            date = format_datetime(datetime.fromtimestamp(stamp, timezone.utc))
            lines = [rng.choice(_LINES) for _ in range(rng.randint(2, 5))]
            body = "\n".join(">" + line if line.startswith("From ") else line for line in lines)
            message = "\n".join([
                f"From {address}  {time.asctime(time.gmtime(stamp))}",
                f"Return-Path: <{address}>",
                f"From: {formataddr((display, address))}",
                f"To: {name}@{host}",
                f"Subject: [{real_name}] {rng.choice(_SUBJECTS)}",
                f"Date: {date}",
                f"Message-ID: {msgid}",
                "MIME-Version: 1.0",
                'Content-Type: text/plain; charset="us-ascii"',
                "Content-Transfer-Encoding: 7bit",
                "Precedence: list",
                f"List-Id: <{name}.{host}>",
                f"List-Post: <mailto:{name}@{host}>",
                "X-Mailman-Version: 2.1.39",
                f"X-List-Received-Date: {date}",
                "",
                body,
                "",
                "",
            ])
            out.write(message.encode("ascii"))
            ids.append(msgid)
    return ids
