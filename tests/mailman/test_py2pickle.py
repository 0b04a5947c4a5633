"""The Python 2 pickle writer: what mm2.load_config reads back, and what import21's plain load sees."""

from __future__ import annotations

import io
import pickle
import pickletools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migrate.lab.mailman2_seed import Unicode, generate_tree, mailman2_modules, py2_pickle
from migrate.mailman.mm2 import BounceInfo, Py2Unicode, load_config, stand_in_class
from migrate.mailman.py2pickle import Py2PickleError, dumps_py2


def shape(value: Any) -> Any:
    """value with its Python 2 text type spelled out, so that equality also compares types."""
    if isinstance(value, Py2Unicode):
        return ("unicode", str(value))
    if isinstance(value, str):
        return ("str", value)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, float):
        return ("float", value)
    if value is None:
        return ("none",)
    if isinstance(value, list):
        return ("list", [shape(item) for item in value])
    if isinstance(value, tuple):
        return ("tuple", [shape(item) for item in value])
    if isinstance(value, dict):
        return ("dict", sorted((repr(shape(k)), shape(v)) for k, v in value.items()))
    if isinstance(value, BounceInfo):
        return ("bounce_info", shape(vars(value)))
    raise AssertionError(f"unexpected {type(value).__name__}")


def as_import21_sees(value: Any, charset: str) -> Any:
    """What pickle.load(..., encoding=charset, errors='ignore') makes of a load_config value."""
    if isinstance(value, Py2Unicode):
        return str(value)
    if isinstance(value, str):
        return value.encode("latin-1").decode(charset, "ignore")
    if isinstance(value, list):
        return [as_import21_sees(item, charset) for item in value]
    if isinstance(value, tuple):
        return tuple(as_import21_sees(item, charset) for item in value)
    if isinstance(value, dict):
        return {as_import21_sees(k, charset): as_import21_sees(v, charset) for k, v in value.items()}
    return value


# A Python 2 byte string as load_config returns it: one character per byte.
byte_text = st.text(alphabet=st.characters(max_codepoint=0xFF))
unicode_text = st.text().map(Py2Unicode)
scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-(2**80), max_value=2**80)
           | st.floats(allow_nan=False) | byte_text | unicode_text)
ascii_keys = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12)


def values(keys: st.SearchStrategy) -> st.SearchStrategy:
    return st.recursive(
        scalars,
        lambda children: (st.lists(children, max_size=5) | st.lists(children, max_size=4).map(tuple)
                          | st.dictionaries(keys | st.integers(), children, max_size=4)),
        max_leaves=25,
    )


@given(st.dictionaries(byte_text, values(byte_text), max_size=8))
@settings(max_examples=300, deadline=None)
def test_load_config_reads_back_exactly_what_was_written(config):
    assert shape(load_config(dumps_py2(config), list_name="prop")) == shape(config)


@pytest.mark.parametrize("charset", ["latin-1", "utf-8", "iso-8859-2", "koi8-r", "euc-jp"])
@given(config=st.dictionaries(ascii_keys, values(ascii_keys), max_size=8))
@settings(max_examples=100, deadline=None)
def test_a_plain_load_decodes_byte_strings_like_import21(charset, config):
    # cli_import.py: pickle.load(fp, encoding=charset, errors='ignore').
    loaded = pickle.load(io.BytesIO(dumps_py2(config)), encoding=charset, errors="ignore")

    assert loaded == as_import21_sees(config, charset)


def test_latin1_bytes_come_back_as_the_text_in_their_charset():
    config = {"description": "Müller café ñ".encode("latin-1"), "info": Py2Unicode("Müller")}

    data = dumps_py2(config)

    assert pickle.loads(data, encoding="latin-1", errors="ignore") == {"description": "Müller café ñ",
                                                                      "info": "Müller"}
    assert pickle.loads(data, encoding="bytes")[b"description"] == "Müller café ñ".encode("latin-1")
    # A UTF-8 import drops the latin-1 letters; that is why the charset matters.
    assert pickle.loads(data, encoding="utf-8", errors="ignore")["description"] == "Mller caf "
    read = load_config(data, list_name="x")
    assert read["description"] == "Müller café ñ" and not isinstance(read["description"], Py2Unicode)
    assert isinstance(read["info"], Py2Unicode)


def test_text_types_use_python2_opcodes():
    data = dumps_py2({"short": "x" * 255, "long": "y" * 256, "uni": Py2Unicode("ü"), "raw": b"\xe9"})
    names = [op.name for op, _, _ in pickletools.genops(data)]

    assert names[0] == "PROTO" and data[1] == 2
    assert names.count("SHORT_BINSTRING") == 6  # the four keys, "x" * 255 and b"\xe9"
    assert names.count("BINSTRING") == 1  # "y" * 256: 256 bytes and more need a 4-byte length
    assert "BINUNICODE" in names
    assert all(op.proto <= 2 for op, _, _ in pickletools.genops(data))


def test_python2_has_no_form_for_some_values():
    with pytest.raises(Py2PickleError, match="beyond U\\+00FF"):
        dumps_py2({"k": "€"})
    with pytest.raises(Py2PickleError, match="set"):
        dumps_py2({"k": {1, 2}})


def test_numbers_and_containers_keep_their_types():
    config = {"t": True, "f": False, "n": None, "big": 2**70, "neg": -(2**40), "x": -1.5,
              "empty": (), "one": (1,), "four": (1, 2, 3, 4), "many": list(range(2500)),
              "items": {i: str(i) for i in range(1500)}}

    assert shape(load_config(dumps_py2(config), list_name="x")) == shape(config)


def test_shared_containers_stay_shared():
    shared = ["a"]
    loaded = load_config(dumps_py2({"x": shared, "y": shared}), list_name="x")

    assert loaded["x"] is loaded["y"]


@pytest.fixture(scope="module")
def var_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    var_dir = tmp_path_factory.mktemp("py2") / "var"
    generate_tree(var_dir, lists=12, members=15, seed=5)
    return var_dir


def test_generated_config_pck_round_trips_with_its_bounce_info(var_dir):
    for config_file in sorted((var_dir / "lists").glob("*/config.pck")):
        original = load_config(config_file.read_bytes(), list_name=config_file.parent.name)

        again = load_config(dumps_py2(original), list_name=config_file.parent.name)

        assert shape(again) == shape(original), config_file.parent.name
    bounces = load_config((var_dir / "lists" / "roster-cases" / "config.pck").read_bytes(),
                          list_name="roster-cases")["bounce_info"]
    assert bounces and all(isinstance(info, BounceInfo) for info in bounces.values())


def test_reads_like_the_lab_generators_pickle():
    # The lab generator writes bytes as Python 2 str and Unicode as unicode, like this writer.
    original = {"real_name": b"K\xf6ln", "name": Unicode("Łukasz"), "n": [1, (2, b"x")], "flag": True}

    ours = load_config(dumps_py2(load_config(py2_pickle(original, protocol=2), list_name="x")), list_name="x")

    assert shape(ours) == shape(load_config(py2_pickle(original), list_name="x"))


# --- class names after GLOBAL / INST ------------------------------------------------------------------


def stack_global_instance(module: bytes, name: bytes) -> bytes:
    """A protocol 4 pickle of {"x": <instance of module.name>}: STACK_GLOBAL takes both names from
    strings, so unlike GLOBAL they may hold a newline."""
    return (b"\x80\x04}\x8c\x01x\x8c" + bytes([len(module)]) + module + b"\x8c" + bytes([len(name)]) + name
            + b"\x93)\x81s.")


def test_a_class_name_with_a_newline_read_from_a_pickle_is_refused_not_written():
    # Written raw after GLOBAL, the part after the newline would be read as opcodes by import21.
    config = load_config(stack_global_instance(b"Mailman.Bouncer", b"_BounceInfo\ncos\nsystem"), list_name="x")

    with pytest.raises(Py2PickleError, match="not a dotted Python identifier"):
        dumps_py2(config)


@pytest.mark.parametrize(("module", "name"), [
    ("Mailman.Bouncer", "_BounceInfo\n"),
    ("Mailman.Bouncer\ncos", "system"),
    ("Mailman.Bouncer", "Bounce Info"),
    ("Mailman..Bouncer", "_BounceInfo"),
    ("Mailman.Bouncer", "_Bounce-Info"),
    ("Mailman.Bouncer", "_BounceInf\u00f6"),
    ("Mailman.Bouncer", "_BounceInfo\r"),
])
def test_class_names_that_are_not_dotted_identifiers_are_refused(module, name):
    with pytest.raises(Py2PickleError, match="not a dotted Python identifier"):
        dumps_py2({"x": stand_in_class(module, name)()})


def test_mailman2_class_names_are_written_as_they_are():
    data = dumps_py2({"x": stand_in_class("Mailman.Bouncer", "_BounceInfo")()})

    assert b"cMailman.Bouncer\n_BounceInfo\n" in data


# --- protocol 0 (Python 2's pickle.dump without a protocol) ---------------------------------------


@pytest.mark.parametrize(("value", "python2_wrote"), [
    # What Python 2.7's pickle.dumps(value) (protocol 0) returns for the same value.
    ({"a": 1}, b"(dp0\nS'a'\np1\nI1\ns."),
    ([1, "x"], b"(lp0\nI1\naS'x'\np1\na."),
    ((1, 2), b"(I1\nI2\ntp0\n."),
    ((), b"(t."),
    (True, b"I01\n."),
    (None, b"N."),
    (2**70, b"L1180591620717411303424L\n."),
    (-1.5, b"F-1.5\n."),
    ("\xc1\xe8", b"S'\\xc1\\xe8'\np0\n."),
    ("it's", b"S\"it's\"\np0\n."),
    ("'\"\\\t\n\r\x00\x7f", b"S'\\'\"\\\\\\t\\n\\r\\x00\\x7f'\np0\n."),
    (Py2Unicode("\xe9\\\n\u20ac"), b"V\xe9\\u005c\\u000a\\u20ac\np0\n."),
])
def test_protocol0_writes_what_python2_wrote(value, python2_wrote):
    assert dumps_py2(value, protocol=0) == python2_wrote


@pytest.mark.parametrize(("charset", "text"), [
    ("iso-8859-7", "Ελληνική λίστα: καλημέρα"),
    ("iso-8859-1", "Grüße aus Köln, ça va"),
    ("koi8-r", "Новости и обсуждения"),
    ("iso-8859-2", "Zażółć gęślą jaźń"),
    ("euc-jp", "日本語のメーリングリスト"),
    # Shift_JIS puts 0x5c (a backslash) and 0x27-0x7e in second bytes: 表 is 0x95 0x5c.
    ("shift_jis", "表示ソフト'能'"),
])
def test_protocol0_byte_strings_come_back_as_their_bytes(charset, text):
    raw = text.encode(charset)
    data = dumps_py2({"description": raw, "info": raw.decode("latin-1"), "name": Py2Unicode(text)}, protocol=0)

    # cli_import.py's own load, and the raw bytes Python 2 held.
    assert pickle.loads(data, encoding=charset) == {"description": text, "info": text, "name": text}
    assert pickle.loads(data, encoding="bytes") == {b"description": raw, b"info": raw, b"name": text}
    # Python 2 wrote a str as its repr(): 8-bit bytes as \x escapes, the opcode lines all ASCII.
    assert all(line.isascii() for line in data.split(b"\n") if line.startswith(b"S"))


def test_protocol0_uses_only_protocol0_opcodes_and_shares_what_is_shared():
    shared = ["a"]
    value = {"x": shared, "y": shared, "n": list(range(1500)), "t": (1, 2, 3, 4), "u": Py2Unicode("ü"),
             "big": -(2**70), "f": 2.5, "b": False, "info": stand_in_class("Mailman.Bouncer", "_BounceInfo")()}
    data = dumps_py2(value, protocol=0)

    assert all(op.proto == 0 for op, _, _ in pickletools.genops(data))
    assert b"(iMailman.Bouncer\n_BounceInfo\n" in data  # INST: an old-style instance in protocol 0
    with mailman2_modules():
        loaded = pickle.loads(data, encoding="latin-1")
    assert loaded["x"] is loaded["y"]
    assert {k: v for k, v in loaded.items() if k != "info"} == {k: v for k, v in value.items() if k != "info"}


@given(st.dictionaries(ascii_keys, values(ascii_keys), max_size=8))
@settings(max_examples=100, deadline=None)
def test_protocol0_plain_load_decodes_byte_strings_like_import21(config):
    for charset in ("iso-8859-7", "koi8-r", "shift_jis"):
        loaded = pickle.load(io.BytesIO(dumps_py2(config, protocol=0)), encoding=charset, errors="ignore")

        assert loaded == as_import21_sees(config, charset)


@given(st.dictionaries(byte_text, values(byte_text), max_size=8))
@settings(max_examples=300, deadline=None)
def test_load_config_reads_back_exactly_what_protocol0_wrote(config):
    assert shape(load_config(dumps_py2(config, protocol=0), list_name="prop")) == shape(config)


def test_only_protocols_0_and_2_are_written():
    with pytest.raises(ValueError, match="protocol 0 or 2"):
        dumps_py2({}, protocol=1)
