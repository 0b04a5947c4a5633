"""What every task module shares: configuration lookup, inventory loading, output, exit codes.

Tasks stay thin: parse flags, load the inventory, call the library, render, exit.
"""

from __future__ import annotations

from pathlib import Path

from invoke import Exit

from ..core.errors import MigrateError
from ..core.journal import StateDir
from ..core.paths import DEFAULT_STATE_DIR, PROJECT_ROOT
from ..core.report import Reporter
from ..core.runner import Outcome, Runner
from ..core.secrets import redact

# One spelling for each flag across all tasks.
FLAG_HELP = {
    "inventory": "inventory YAML file (default: the lab, from invoke.yaml `migrate.inventory`)",
    "dry_run": "show every operation that would run, change nothing",
    "yes": "do not ask for the typed confirmation (for runbooks you have reviewed)",
    "reason": "why this run happens; recorded in the journal and the lock",
    "json": "print one JSON document on stdout (human output goes to stderr)",
}


def _config_value(c, key: str, default):
    try:
        return c.config.migrate[key]
    except (AttributeError, KeyError):
        return default


def _project_path(value) -> Path:
    path = Path(value)
    return path if path.is_absolute() else PROJECT_ROOT / path


def inventory_path(c, flag: str | None) -> Path:
    if flag:
        return Path(flag).resolve()
    return _project_path(_config_value(c, "inventory", "inventories/lab.yaml"))


def state_dir(c) -> StateDir:
    lock_dir = _config_value(c, "lock_dir", None)
    return StateDir(_project_path(_config_value(c, "state_dir", DEFAULT_STATE_DIR)),
                    Path(lock_dir) if lock_dir else None)


def load_inventory(c, flag: str | None):
    from ..core.inventory import load_inventory as load

    try:
        return load(inventory_path(c, flag))
    except MigrateError as exc:
        raise Exit(f"error: {redact(str(exc))}", code=1) from None


def runner(c, inventory, *, dry_run: bool, yes: bool, reason: str, json: bool) -> Runner:
    return Runner(inventory, state_dir(c), dry_run=dry_run, yes=yes, reason=reason or "",
                  reporter=Reporter(json_mode=json))


def finish(outcome: Outcome, reporter: Reporter) -> None:
    if reporter.json_mode:
        reporter.emit_json(outcome.to_dict())
    if outcome.exit_code:
        raise Exit(code=int(outcome.exit_code))


def guarded(fn):
    """Turn library errors into a one-line message and exit code 1, not a traceback."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except MigrateError as exc:
            raise Exit(f"error: {redact(str(exc))}", code=1) from None

    return wrapper
