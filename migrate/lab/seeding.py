"""Put the lab's data in a known state: a fresh Mailman 2 tree on the legacy host, with the mbox
and pipermail archives of its lists, and (unless asked not to) an empty Mailman 3 — lists,
domains and users — on the lists host, and an empty HyperKitty beside it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from ..core.inventory import load_inventory
from .hyperkitty import HyperKittyWeb
from .mailman2_archives import ArchiveFacts, generate_archives
from .mailman2_seed import generate_tree
from .mailman3 import Mailman3Core
from .sshd import DEFAULT_INVENTORY

# Every list and message of HyperKitty, and the search index with them. Deleting the lists
# cascades to their threads, messages and attachments through HyperKitty's own delete hooks.
_EMPTY_HYPERKITTY = """
from haystack import connections
from hyperkitty.models import MailingList
MailingList.objects.all().delete()
connections["default"].get_backend().clear()
"""

# Variables of this process that would point mailman-web at another Python or settings module.
_FOREIGN_ENV = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "DJANGO_SETTINGS_MODULE", "MAILMAN_WEB_CONFIG")


def mailman2_var_dir(inventory_path: Path | str = DEFAULT_INVENTORY) -> Path:
    return Path(load_inventory(inventory_path).one_with_role("mailman2").var("mailman2_var_dir"))


def seed(*, lists: int = 12, members: int = 40, seed: int = 1, empty_mailman3: bool = True,
         messages: int = 25, inventory_path: Path | str = DEFAULT_INVENTORY) -> list[str]:
    """Regenerate the Mailman 2 tree and its archives (replacing the previous ones); return the
    list names. `messages` per archived list; 0 writes no archives."""
    return seed_with_facts(lists=lists, members=members, seed=seed, empty_mailman3=empty_mailman3,
                           messages=messages, inventory_path=inventory_path)[0]


def seed_with_facts(*, lists: int = 12, members: int = 40, seed: int = 1, empty_mailman3: bool = True,
                    messages: int = 25, inventory_path: Path | str = DEFAULT_INVENTORY
                    ) -> tuple[list[str], dict[str, ArchiveFacts]]:
    """`seed`, also returning the archives' ground truth (`generate_archives`'s facts per list)."""
    var_dir = mailman2_var_dir(inventory_path)
    for sub in ("lists", "archives", "data"):
        shutil.rmtree(var_dir / sub, ignore_errors=True)
    names = generate_tree(var_dir, lists=lists, members=members, seed=seed)
    facts = generate_archives(var_dir, messages=messages, seed=seed) if messages else {}
    if empty_mailman3:
        empty(Mailman3Core())
        empty_hyperkitty(HyperKittyWeb())
        clear_web_redirects()
    prepare_import_folder(inventory_path)
    return names, facts


def clear_web_redirects() -> None:
    """Remove what `archives.redirects` installs on the lab's web host (redirect configuration
    and static copies of the old archive): it points at archives the seed just replaced."""
    from .web import WebServer

    web = WebServer()
    paths = web.config_paths
    for folder in (paths.nginx_http_include_dir, paths.nginx_include_dir, paths.apache_include_dir,
                   paths.pipermail_root):
        if not Path(folder).is_dir():
            continue
        for entry in Path(folder).iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    if web.nginx_pid() or web.apache_pid():
        web.reload()


def empty(core: Mailman3Core) -> None:
    """Delete every domain, list and user of the lab's Mailman 3."""
    core.reset()
    client = core.client()
    for user in list(client.users):
        user.delete()


def empty_hyperkitty(web: HyperKittyWeb) -> None:
    """Delete every list and message of the lab's HyperKitty, and its search index.

    Deleting lists in core leaves HyperKitty's copies behind, so a reseeded lab would otherwise
    meet last run's archives. Nothing to do when HyperKitty is not set up in this lab.
    """
    if not (web.settings_file.exists() and web.mailman_web_bin.exists()):
        return
    env = {key: value for key, value in os.environ.items() if key not in _FOREIGN_ENV}
    result = subprocess.run(web.manage_command("shell", "-c", _EMPTY_HYPERKITTY), stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, env=env, cwd=web.home, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"emptying HyperKitty failed ({result.returncode}): {result.stderr[-2000:]}")


def prepare_import_folder(inventory_path: Path | str = DEFAULT_INVENTORY) -> None:
    """Create the lists host's `hyperkitty_import_dir`, open to its owner only (root in the lab)."""
    host = load_inventory(inventory_path).one_with_role("mailman3")
    folder = host.var("hyperkitty_import_dir", None)
    if folder:
        Path(folder).mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
