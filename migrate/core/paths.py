"""Where things live by default. Everything here can be overridden by configuration."""

from __future__ import annotations

import os
from pathlib import Path

# The checkout the package runs from (tasks.py, inventories/, playbooks/ sit here).
PROJECT_ROOT = Path(__file__).resolve().parents[2]

# Journals, locks and run logs: inside the checkout by default, git-ignored.
DEFAULT_STATE_DIR = PROJECT_ROOT / ".state"

# The lab's test hosts share this machine's loopback addresses, so there is one lab per machine:
# its keys, pid files, logs and host trees live in one machine-wide folder.
LAB_ROOT = Path(os.environ.get("MIGRATE_LAB_ROOT", "/var/lib/migrate-lab"))

# Locks are machine-wide, one per inventory name: two checkouts or two operators on the same
# admin host must not run against the same hosts at once. /run/lock is emptied at boot, so a
# lock cannot outlive the machine that took it.
DEFAULT_LOCK_DIR = Path(os.environ.get("MIGRATE_LOCK_DIR", "/run/lock/migrate"))
