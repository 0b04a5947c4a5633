"""The lab's components in start order; `lab.up/status/down` and the test fixtures go through here.

Later components may depend on earlier ones (services reached over the SSH hosts), so they start
in list order and stop in reverse order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ..core.errors import MigrateError
from .base import Component, ServiceStatus
from .hyperkitty import HyperKittyWeb
from .mailman3 import Mailman3Core
from .postgres import LabPostgres
from .sshd import DEFAULT_INVENTORY, SshdHosts
from .web import WebServer


def components(inventory_path: Path | str = DEFAULT_INVENTORY) -> list[Component]:
    """Every lab component, in start order."""
    return [
        SshdHosts(inventory_path),
        Mailman3Core(),
        LabPostgres(),
        HyperKittyWeb(),
        WebServer(),
    ]


def select(names: Iterable[str] | None = None,
           inventory_path: Path | str = DEFAULT_INVENTORY) -> list[Component]:
    """The named components in start order (all when names is None or empty)."""
    every = components(inventory_path)
    if not names:
        return every
    wanted = set(names)
    unknown = wanted - {c.name for c in every}
    if unknown:
        raise MigrateError(f"unknown lab components: {', '.join(sorted(unknown))} "
                           f"(known: {', '.join(c.name for c in every)})")
    return [c for c in every if c.name in wanted]


def up_all(names: Iterable[str] | None = None,
           inventory_path: Path | str = DEFAULT_INVENTORY) -> None:
    for component in select(names, inventory_path):
        component.up()


def status_all(names: Iterable[str] | None = None,
               inventory_path: Path | str = DEFAULT_INVENTORY) -> list[ServiceStatus]:
    return [s for component in select(names, inventory_path) for s in component.status()]


def down_all(names: Iterable[str] | None = None,
             inventory_path: Path | str = DEFAULT_INVENTORY) -> None:
    for component in reversed(select(names, inventory_path)):
        component.down()
