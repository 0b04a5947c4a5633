"""Put the lab's data in a known state: a fresh Mailman 2 tree on the legacy host, and (unless
asked not to) an empty Mailman 3 — lists, domains and users — on the lists host."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..core.inventory import load_inventory
from .mailman2_seed import generate_tree
from .mailman3 import Mailman3Core
from .sshd import DEFAULT_INVENTORY


def mailman2_var_dir(inventory_path: Path | str = DEFAULT_INVENTORY) -> Path:
    return Path(load_inventory(inventory_path).one_with_role("mailman2").var("mailman2_var_dir"))


def seed(*, lists: int = 12, members: int = 40, seed: int = 1, empty_mailman3: bool = True,
         inventory_path: Path | str = DEFAULT_INVENTORY) -> list[str]:
    """Regenerate the Mailman 2 tree (replacing the previous one); return the list names."""
    var_dir = mailman2_var_dir(inventory_path)
    for sub in ("lists", "archives", "data"):
        shutil.rmtree(var_dir / sub, ignore_errors=True)
    names = generate_tree(var_dir, lists=lists, members=members, seed=seed)
    if empty_mailman3:
        empty(Mailman3Core())
    return names


def empty(core: Mailman3Core) -> None:
    """Delete every domain, list and user of the lab's Mailman 3."""
    core.reset()
    client = core.client()
    for user in list(client.users):
        user.delete()
