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
