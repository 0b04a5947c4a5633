"""Bounds on the shape of data read from outside, checked once before anything walks it.

Pickles and YAML let a small file stand for a huge or endless value: a pickle's memo and YAML's
anchors hand out references to one object, so a few hundred bytes can describe a value that has
2**40 parts when walked as a tree ("billion laughs": each level refers twice to the one below), or
a value that contains itself (`&a [*a]`, a list appended to itself). Everything that later walks
the value as a tree (repr(), json.dumps, converters, validators) then hangs or raises
RecursionError far from the file that caused it.

`check_shape` walks the graph once, remembering the size of every part it has measured, so its own
cost follows the number of distinct objects, not the size of the tree, and refuses:
- a part that contains itself;
- nesting deeper than `MAX_DEPTH` (the files read here need a handful of levels);
- a tree larger than `expansion_limit(bytes in the file)`, counted in values plus the characters
  of the text in them, so that a long text referred to a million times counts as what it becomes.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

# config.pck needs 6 levels (attributes, bounce_info, the instance, its state, a date tuple, an
# int), an inventory 5; the walks over such data use a few frames per level.
MAX_DEPTH = 50

# Values-and-characters per byte of file a tree may expand to. Lists generated like real ones
# expand to about 2 (addresses shared between the roster tables); a DAG bomb to millions.
EXPANSION_PER_BYTE = 16
EXPANSION_BASE = 100_000

_PATH_SHOWN = 160  # characters of a path in an error message

# The parts of a value: None for a leaf, else (label, part) pairs; labels make the path in errors.
Parts = Callable[[Any], "Iterable[tuple[str, Any]] | None"]


class ShapeError(Exception):
    """A value that no file of its kind holds; `path` says where in it (labels joined)."""

    def __init__(self, problem: str, path: str):
        self.problem = problem
        self.path = path if len(path) <= _PATH_SHOWN else path[:_PATH_SHOWN] + "..."
        super().__init__(f"{self.path or 'the top level'} {problem}")


def expansion_limit(size: int) -> int:
    """The largest tree (values plus characters) a file of `size` bytes may stand for."""
    return EXPANSION_PER_BYTE * size + EXPANSION_BASE


def _one(value: Any) -> int:
    return 1


def check_shape(root: Any, parts: Parts, *, limit: int, weight: Callable[[Any], int] = _one,
                max_depth: int = MAX_DEPTH) -> int:
    """The size of `root` walked as a tree (the sum of `weight` over every part it reaches), or
    ShapeError if it contains itself, nests deeper than `max_depth` or grows beyond `limit`."""
    measured: dict[int, int] = {}
    open_parts: dict[int, str] = {}  # the parts being measured, by where the walk entered them
    path: list[str] = []

    def size(value: Any, depth: int) -> int:
        children = parts(value)
        if children is None:
            return weight(value)
        key = id(value)  # every object stays alive (reachable from root) while we walk
        if key in measured:
            return measured[key]
        if key in open_parts:
            raise ShapeError(f"contains itself (at {''.join(path)})", open_parts[key])
        if depth > max_depth:
            raise ShapeError(f"is nested too deeply (more than {max_depth} levels)", "".join(path))
        open_parts[key] = "".join(path)
        total = weight(value)
        for label, child in children:
            path.append(label)
            total += size(child, depth + 1)
            if total > limit:
                raise ShapeError(f"refers to shared values so often that, walked as a tree, it has more "
                                 f"than {limit:,} values and characters", "".join(path))
            path.pop()
        del open_parts[key]
        measured[key] = total
        return total

    return size(root, 0)


def label(key: Any) -> str:
    """`[key]` for a path: text shortened, bytes shown as their latin-1 text."""
    if isinstance(key, (bytes, bytearray)):
        key = bytes(key).decode("latin-1")
    shown = repr(key) if isinstance(key, (str, int, float, bool)) or key is None else f"<{type(key).__name__}>"
    return f"[{shown[:60]}]"
