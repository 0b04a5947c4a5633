"""Terminal output: rich tables and progress on a terminal, plain text otherwise, JSON on request.

With `--json` the human-readable output goes to stderr and stdout carries one JSON document.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Iterable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .errors import MigrateError
from .secrets import redact, redact_obj


class Reporter:
    def __init__(self, json_mode: bool = False, console: Console | None = None):
        self.json_mode = json_mode
        if console is None:
            console = Console(stderr=json_mode, highlight=False, soft_wrap=False)
            if not console.is_terminal:
                # Logs and pipes get full lines rather than tables folded at 80 columns.
                console = Console(stderr=json_mode, highlight=False, soft_wrap=False, width=160)
        self.console = console

    # -- lines ---------------------------------------------------------------------------------
    def info(self, message: str) -> None:
        self.console.print(redact(message), markup=False)

    def ok(self, message: str) -> None:
        self.console.print("[green]✓[/] " + _escape(redact(message)))

    def warn(self, message: str) -> None:
        self.console.print("[yellow]![/] " + _escape(redact(message)))

    def error(self, message: str) -> None:
        self.console.print("[red]✗[/] " + _escape(redact(message)))

    def heading(self, message: str) -> None:
        self.console.print(f"\n[bold]{_escape(redact(message))}[/]")

    # -- tables --------------------------------------------------------------------------------
    def table(self, title: str, columns: list[str], rows: Iterable[Iterable[Any]]) -> None:
        table = Table(title=title, title_justify="left", show_lines=False)
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(_escape(redact(_cell(v))) for v in row))
        self.console.print(table)

    def plan(self, step_title: str, ops: list, diffs: list[str | None], dry_run: bool) -> None:
        mode = "DRY RUN — would do" if dry_run else "plan"
        rows = [(i + 1, op.host, op.describe(), diff or "", _undo_text(op))
                for i, (op, diff) in enumerate(zip(ops, diffs))]
        if not rows:
            self.info(f"{step_title}: nothing to do")
            return
        self.table(f"{step_title} ({mode})", ["#", "host", "operation", "effect", "undo"], rows)

    def verification(self, verification) -> None:
        rows = [("ok" if c.ok else "FAIL", c.name, _cell(c.expected), _cell(c.actual), c.detail)
                for c in verification.checks]
        self.table(f"verify {verification.step}", ["", "check", "expected", "actual", "detail"], rows)

    def progress(self) -> Progress:
        return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=self.console, transient=True,
                        disable=not self.console.is_terminal)

    # -- machine output --------------------------------------------------------------------------
    def emit_json(self, data: Any) -> None:
        sys.stdout.write(json.dumps(redact_obj(data), indent=2) + "\n")
        sys.stdout.flush()


def save_json(path: Path, data: Any, indent: int = 2) -> None:
    """Write a saved report: the data redacted and converted exactly as for the journal."""
    path.write_text(json.dumps(redact_obj(data), indent=indent, ensure_ascii=False))


def _undo_text(op) -> str:
    return "yes" if op.reversible else "IRREVERSIBLE"


def _cell(value: Any) -> str:
    """A table cell: the value as redacted JSON-ready data (sets sorted, bytes as text), flattened."""
    value = redact_obj(value)
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(_flat(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={_flat(v)}" for k, v in value.items())
    return str(value)


def _flat(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else str(value)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


CONFIRM_WORD = "apply"


def confirm(reporter: Reporter, question: str) -> bool:
    """Ask for a typed word; anything else (or a bare Enter) is no. Refuse without a terminal."""
    if not sys.stdin.isatty():
        raise MigrateError("refusing to change anything without confirmation: stdin is not a "
                           "terminal; review the plan with --dry-run, then pass --yes")
    reporter.console.print(f"{_escape(question)} Type [bold]{CONFIRM_WORD}[/] to go on [no]: ", end="")
    try:
        answer = input()
    except EOFError:
        return False
    return answer.strip() == CONFIRM_WORD
