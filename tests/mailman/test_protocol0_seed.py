"""The lab's lists saved in protocol 0: real Python 2 protocol 0 shape, 8-bit text as escapes,
and the default tree left as it was."""

from __future__ import annotations

import pickle
from pathlib import Path

from migrate.lab import mailman2_seed as seed
from migrate.lab.mailman2_protocol0 import PROTOCOL0_LISTS, generate_protocol0_lists, protocol0_pickle
from migrate.lab.mailman2_seed import Unicode, generate_tree, mailman2_modules

GREEK_DESCRIPTION = "Ελληνική λίστα συζητήσεων: καλημέρα σας"
GREEK_INFO = "Καλώς ήρθατε στη λίστα!\nΆρθρα, σχόλια και ερωτήσεις στα ελληνικά.\n"


def snapshot(var_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(var_dir)): p.read_bytes() for p in sorted(var_dir.rglob("*")) if p.is_file()}


def test_protocol0_lists_are_added_beside_the_tree_and_leave_it_alone(tmp_path):
    plain = generate_tree(tmp_path / "plain", lists=13, members=12, seed=5)
    generate_tree(tmp_path / "p0", lists=13, members=12, seed=5)

    assert generate_protocol0_lists(tmp_path / "p0", members=12, seed=5) == list(PROTOCOL0_LISTS)
    extra = {f"lists/{name}/{file}" for name in PROTOCOL0_LISTS for file in ("config.pck", "request.pck")}
    p0 = snapshot(tmp_path / "p0")
    assert set(p0) - set(snapshot(tmp_path / "plain")) == extra
    assert {k: v for k, v in p0.items() if k not in extra} == snapshot(tmp_path / "plain")
    assert not set(PROTOCOL0_LISTS) & set(plain)


def test_the_greek_list_is_a_python2_protocol0_pickle_with_8bit_str(tmp_path):
    assert generate_protocol0_lists(tmp_path / "var", members=12, seed=5) == ["ellinika-el"]
    data = (tmp_path / "var" / "lists" / "ellinika-el" / "config.pck").read_bytes()

    assert data[:1] == b"(" and b"\\x" in data  # MARK, DICT: protocol 0 has no PROTO header
    assert all(line.isascii() for line in data.split(b"\n") if line.startswith(b"S"))
    # Python 3's own unpickler, as import21 runs it, with the list's charset.
    config = pickle.loads(data, encoding="iso-8859-7")
    assert (config["description"], config["info"]) == (GREEK_DESCRIPTION, GREEK_INFO)
    assert config["preferred_language"] == "el" and len(config["members"]) + len(config["digest_members"]) == 12
    assert "Γιώργος Παπαδόπουλος" in config["usernames"].values()
    raw = pickle.loads(data, encoding="bytes")
    assert raw[b"description"] == GREEK_DESCRIPTION.encode("iso-8859-7")
    requests = (tmp_path / "var" / "lists" / "ellinika-el" / "request.pck").read_bytes()
    assert requests[:1] == b"(" and pickle.loads(requests) == {"version": (0, 1)}
    assert PROTOCOL0_LISTS["ellinika-el"].charset == "iso-8859-7"


def test_the_generators_types_are_written_as_python2_would():
    info = seed._BounceInfo("a@example.org", 1.0, (2011, 4, 1), 3)
    value = {"b": b"\xc1", "u": Unicode("Ζ"), "a": "ascii", "n": [1, (2, None)], "info": info}

    data = protocol0_pickle(value)

    with mailman2_modules():
        loaded = pickle.loads(data, encoding="bytes")
    assert {k: v for k, v in loaded.items() if k != b"info"} == {b"b": b"\xc1", b"u": "Ζ", b"a": b"ascii",
                                                               b"n": [1, (2, None)]}
    assert vars(loaded[b"info"]) == {k.encode(): v.encode() if isinstance(v, str) else v
                                     for k, v in vars(info).items()}
