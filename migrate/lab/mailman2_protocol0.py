"""Mailman 2 lists saved in protocol 0, Python 2's default pickle format, for the lab.

Python 2's `pickle.dump(obj, fp)` without a protocol writes a text format in which a str is its
repr(), so 8-bit text (a Greek list's description in iso-8859-7) appears as `\\xc1` escapes; such
config.pck files are met in practice. `generate_protocol0_lists` writes these lists into a var dir
that `mailman2_seed.generate_tree` made, with the same helpers and a random stream of their own,
so the default tree stays byte for byte what it was. The pickles come from `py2pickle`, the
writer that has the protocol 0 opcodes.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from ..mailman.mm2 import BounceInfo, Py2Unicode
from ..mailman.py2pickle import dumps_py2
from .mailman2_seed import (DOMAIN, EPOCH, IGN, REQUESTS_FILE_SCHEMA_VERSION, SpecialList, Unicode, _base_config,
                            _BounceInfo, _enc, _fill, _Roster, _texts)

PROTOCOL0_LISTS: dict[str, SpecialList] = {
    s.name: s
    for s in (
        SpecialList("ellinika-el", "el", "iso-8859-7", (
            "iso-8859-7 description, info and member real name (Greek)",
            "config.pck and request.pck in protocol 0, 8-bit text as \\x escapes", "public archive",
        )),
    )
}

# name → (real_name, description, info, (member address, real name)), as the list owner typed them.
_TEXTS: dict[str, tuple[str, str, str, tuple[str, str]]] = {
    "ellinika-el": (
        "Ellinika-EL",
        "Ελληνική λίστα συζητήσεων: καλημέρα σας",
        "Καλώς ήρθατε στη λίστα!\nΆρθρα, σχόλια και ερωτήσεις στα ελληνικά.\n",
        ("giorgos@example.gr", "Γιώργος Παπαδόπουλος"),
    ),
}


def _py2pickle_values(obj: Any) -> Any:
    """The generator's values in the types `py2pickle` takes: bytes and ASCII str stay Python 2 str,
    `Unicode` becomes `Py2Unicode`, a `_BounceInfo` becomes the reader's `BounceInfo` stand-in."""
    if isinstance(obj, Unicode):
        return Py2Unicode(obj)
    if isinstance(obj, str):
        obj.encode("ascii")  # as Py2Pickler: other text must be encoded (bytes) or marked Unicode
        return obj
    if isinstance(obj, list):
        return [_py2pickle_values(item) for item in obj]
    if isinstance(obj, tuple):
        return tuple(_py2pickle_values(item) for item in obj)
    if isinstance(obj, dict):
        return {_py2pickle_values(k): _py2pickle_values(v) for k, v in obj.items()}
    if isinstance(obj, _BounceInfo):
        info = BounceInfo()
        info.__dict__.update({k: _py2pickle_values(v) for k, v in vars(obj).items()})
        return info
    return obj


def protocol0_pickle(obj: Any) -> bytes:
    """What Python 2's pickle.dump(obj, fp) wrote for a value in the generator's types."""
    return dumps_py2(_py2pickle_values(obj), protocol=0)


def _protocol0_list(rng: random.Random, spec: SpecialList, members: int, when: float) -> tuple[dict, dict]:
    real_name, description, info, (address, member_name) = _TEXTS[spec.name]
    config = _base_config(spec.name, language=spec.language, charset=spec.charset, when=when)
    config["real_name"] = real_name
    _texts(config, spec.charset, description=description, info=info)
    roster = _Roster(spec.language)
    # A name typed into the web UI is a Python 2 str in the list charset.
    roster.add(rng, address, real_name=_enc(member_name, spec.charset))
    config["owner"] = [f"owner@{DOMAIN}", f"{spec.name}-owner@example.com"]
    _fill(rng, roster, members)
    config.update(roster.attributes())
    return config, {"version": (IGN, REQUESTS_FILE_SCHEMA_VERSION)}


def generate_protocol0_lists(var_dir: Path, *, members: int = 40, seed: int = 1) -> list[str]:
    """Write the PROTOCOL0_LISTS into `var_dir`, beside what it holds, and return their names."""
    rng = random.Random(f"protocol0-{seed}")
    names = []
    for index, spec in enumerate(PROTOCOL0_LISTS.values()):
        config, requests = _protocol0_list(rng, spec, members, EPOCH + index * 86400 * 29)
        list_dir = Path(var_dir) / "lists" / spec.name
        list_dir.mkdir(parents=True, exist_ok=True)
        (list_dir / "config.pck").write_bytes(protocol0_pickle(config))
        (list_dir / "request.pck").write_bytes(protocol0_pickle(requests))
        names.append(spec.name)
    return names
