"""Operations are data: what a step will do, as records that can be shown, journaled and reversed.

An operation has a one-line `describe()`, the host it targets, a `capture()` that reads the state
it is about to change (a safe read, run in dry-run too), a `perform()` that acts, and an
`inverse(pre_state)` that returns the operation restoring that state (None when nothing needs
undoing). The plan a dry run prints is the list of these records that apply executes and the
journal stores, so a later process can rebuild them with `from_dict` and roll back.

`perform` receives the executor's `Effects`, which only the executor hands out, and only when it
is not in dry-run: an operation has no other way to reach a host.
"""

from __future__ import annotations

import base64
import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .transport import Result

_REGISTRY: dict[str, type["Operation"]] = {}


def register(cls: type["Operation"]) -> type["Operation"]:
    """Make an operation type rebuildable from the journal by its name."""
    _REGISTRY[cls.__name__] = cls
    return cls


@dataclass
class Operation:
    host: str

    # Set False for operations that cannot be undone; rollback then stops and says so.
    reversible: ClassVar[bool] = True
    # Set True where performing it again, after a perform that may have been cut short, is harmless
    # and cheap: a resumed step that verifies then runs it again rather than trusting the cut one.
    repeatable: ClassVar[bool] = False

    def describe(self) -> str:
        raise NotImplementedError

    def capture(self, reader) -> Any:
        """Read, with the executor's safe reads, the state this operation will change."""
        return None

    def perform(self, effects) -> Result | None:
        raise NotImplementedError

    def inverse(self, pre_state: Any) -> "Operation | None":
        return None

    def state_key(self) -> tuple:
        """What this operation's capture reads: operations sharing a key change the same thing,
        and only the earliest one's pre-state is the state before the run."""
        return (type(self).__name__, self.host, repr(sorted(self.to_dict().items())))

    def diff(self, pre_state: Any) -> str | None:
        """What would change, for dry-run output (optional)."""
        return None

    def to_dict(self, blobs=None) -> dict:
        """JSON-ready record. With a blob store, byte contents are stored there by hash."""
        data = {"type": type(self).__name__}
        for f in dataclasses.fields(self):
            data[f.name] = _encode(getattr(self, f.name), blobs)
        return data


def from_dict(data: dict, blobs=None) -> Operation:
    data = dict(data)
    kind = data.pop("type")
    try:
        cls = _REGISTRY[kind]
    except KeyError:
        raise ValueError(f"unknown operation type {kind!r} in journal") from None
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: _decode(v, blobs) for k, v in data.items() if k in names})


def _encode(value, blobs):
    if isinstance(value, bytes):
        # File contents stay out of the journal: they may hold secrets, and may be large.
        if blobs is not None:
            return {"$blob": blobs.put(value), "size": len(value)}
        return {"$b64": base64.b64encode(value).decode()}
    if isinstance(value, tuple):
        return list(value)
    return value


def _decode(value, blobs):
    if isinstance(value, dict):
        if set(value) == {"$b64"}:
            return base64.b64decode(value["$b64"])
        if "$blob" in value:
            if blobs is None:
                return value  # shown as a reference when no store is at hand
            return blobs.get(value["$blob"])
    return value


def encode_state(value, blobs=None):
    """Pre-states go to the journal as JSON; bytes go to the blob store (or base64)."""
    if isinstance(value, dict):
        return {k: encode_state(v, blobs) for k, v in value.items()}
    return _encode(value, blobs)


def decode_state(value, blobs=None):
    if isinstance(value, dict) and not ({"$b64", "$blob"} & set(value)):
        return {k: decode_state(v, blobs) for k, v in value.items()}
    return _decode(value, blobs)


@register
@dataclass
class RunCommand(Operation):
    """A remote command; reversible only if the step names the command that undoes it."""

    argv: list[str] = field(default_factory=list)
    description: str = ""
    undo_argv: list[str] | None = None
    undo_description: str = ""

    @property
    def reversible(self) -> bool:  # type: ignore[override]
        return self.undo_argv is not None

    def describe(self) -> str:
        return self.description or " ".join(self.argv)

    def perform(self, effects) -> Result:
        return effects.run(self.host, self.argv).check()

    def inverse(self, pre_state):
        if self.undo_argv is None:
            return None
        return RunCommand(self.host, list(self.undo_argv),
                          self.undo_description or f"undo: {self.describe()}")


@dataclass
class _FileOperation(Operation):
    """A change to one file: its pre-state is the old content and mode, or its absence."""

    path: str = ""
    repeatable: ClassVar[bool] = True

    def state_key(self) -> tuple:
        return ("file", self.host, self.path)

    def capture(self, reader):
        old = reader.read_file(self.host, self.path)
        if old is None:
            return {"exists": False}
        owner, group = reader.stat_owner(self.host, self.path) or (None, None)
        return {"exists": True, "content": old, "mode": reader.stat_mode(self.host, self.path),
                "owner": owner, "group": group}

    def _restore(self, pre_state) -> "Operation | None":
        # Owner and group as numbers, as captured; journals written before they were captured
        # have none, and the file then goes back to the user writing it.
        if pre_state and pre_state.get("exists"):
            return WriteFile(self.host, self.path, pre_state["content"], pre_state.get("mode") or 0o644,
                             owner=pre_state.get("owner"), group=pre_state.get("group"))
        return None


@register
@dataclass
class WriteFile(_FileOperation):
    """Create or replace a file atomically; rollback restores the old content or removes it."""

    content: bytes = b""
    mode: int = 0o644
    # Who the file belongs to; None: the user writing it (root through sudo).
    owner: str | None = None
    group: str | None = None

    def describe(self) -> str:
        size = self.content.get("size", "?") if isinstance(self.content, dict) else len(self.content)
        owned = f", owner {self.owner or ''}{':' + self.group if self.group else ''}" if self.owner or self.group else ""
        return f"write {self.path} ({size} bytes, mode {self.mode:04o}{owned})"

    def perform(self, effects):
        ownership = {k: v for k, v in (("owner", self.owner), ("group", self.group)) if v}
        effects.write_file(self.host, self.path, self.content, self.mode, **ownership)

    def inverse(self, pre_state):
        return self._restore(pre_state) or RemoveFile(self.host, self.path)

    def diff(self, pre_state):
        if not pre_state or not pre_state.get("exists"):
            return "new file"
        if pre_state["content"] == self.content:
            return "unchanged"
        return f"replaces {len(pre_state['content'])} bytes"


@register
@dataclass
class RemoveFile(_FileOperation):
    """Remove a file; rollback writes back what was there."""

    def describe(self) -> str:
        return f"remove {self.path}"

    def perform(self, effects):
        effects.remove_file(self.host, self.path)

    def inverse(self, pre_state):
        return self._restore(pre_state)
