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

`compose_yaml` and `safe_load_yaml` apply it to a YAML document's node graph, before PyYAML builds
any Python value from it.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import yaml

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
    """A value that no file of its kind holds; `path` says where in it (labels joined), `at` is
    the part where the walk found it (None if unknown), `kind` what is wrong: "cycle" or "expansion"
    (both made with shared values: a pickle's memo, YAML aliases) or "depth"."""

    def __init__(self, kind: str, problem: str, path: str, at: Any = None):
        self.kind, self.problem, self.path, self.at = kind, problem, _shown(path), at
        super().__init__(f"{self.path or 'the top level'} {problem}")


def _shown(path: str) -> str:
    return path if len(path) <= _PATH_SHOWN else path[:_PATH_SHOWN] + "..."


def expansion_limit(size: int) -> int:
    """The largest tree (values plus characters) a file of `size` bytes may stand for."""
    return EXPANSION_PER_BYTE * size + EXPANSION_BASE


def _one(value: Any) -> int:
    return 1


def check_shape(root: Any, parts: Parts, *, limit: int, weight: Callable[[Any], int] = _one,
                max_depth: int = MAX_DEPTH, render: Callable[[list[str]], str] = "".join) -> int:
    """The size of `root` walked as a tree (the sum of `weight` over every part it reaches), or
    ShapeError if it contains itself, nests deeper than `max_depth` or grows beyond `limit`.
    `render` turns the labels on the way to a part into the path errors show."""
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
            raise ShapeError("cycle", f"contains itself (at {_shown(render(path))})", open_parts[key], value)
        if depth > max_depth:
            raise ShapeError("depth", f"is nested too deeply (more than {max_depth} levels)", render(path), value)
        open_parts[key] = render(path)
        total = weight(value)
        for label, child in children:
            path.append(label)
            total += size(child, depth + 1)
            if total > limit:
                problem = (f"refers to shared values so often that, walked as a tree, it has more than "
                           f"{limit:,} values and characters")
                raise ShapeError("expansion", problem, render(path), child)
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


def _yaml_parts(node: yaml.Node) -> Iterable[tuple[str, yaml.Node]] | None:
    if isinstance(node, yaml.MappingNode):
        return ((f".{key.value}" if isinstance(key, yaml.ScalarNode) else "[?]", part)
                for key, value in node.value for part in (key, value))
    if isinstance(node, yaml.SequenceNode):
        return ((f"[{i}]", item) for i, item in enumerate(node.value))
    return None


def _yaml_weight(node: yaml.Node) -> int:
    return 1 + len(node.value) if isinstance(node, yaml.ScalarNode) else 1


def compose_yaml(loader: yaml.SafeLoader, *, size: int) -> yaml.Node | None:
    """The loader's single document as nodes (None if empty), refused with ShapeError when its
    aliases make it contain itself or stand for a tree far larger than its `size` bytes, or when
    it nests too deeply. Paths in the error are like `vars.hosts[2]`."""
    try:
        node = loader.get_single_node()
    except RecursionError:
        # PyYAML's composer recurses per level: a document a few hundred levels deep exhausts
        # Python's stack before the walk below could count its levels.
        raise ShapeError("depth", f"is nested too deeply (more than {MAX_DEPTH} levels)", "") from None
    if node is not None:
        check_shape(node, _yaml_parts, limit=expansion_limit(size), weight=_yaml_weight,
                    render=lambda labels: "".join(labels).lstrip("."))
    return node


def safe_load_yaml(text: str) -> Any:
    """yaml.safe_load of one document, with `compose_yaml`'s checks (ShapeError)."""
    loader = yaml.SafeLoader(text)
    try:
        node = compose_yaml(loader, size=len(text.encode("utf-8", "surrogatepass")))
        return None if node is None else loader.construct_document(node)
    finally:
        loader.dispose()
