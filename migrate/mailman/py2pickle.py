"""Write values read from a Mailman 2 pickle back as a pickle of the same Python 2 shape.

Mailman 3's `import21` reads config.pck with `pickle.load(fp, encoding=CHARSET, errors='ignore')`
(mailman/commands/cli_import.py), which decodes every Python 2 byte string with the charset given
on its command line. A cleaned copy of config.pck must therefore keep Python 2's two kinds of text
apart, which Python 3's pickle cannot do (it writes every str as unicode):

- a plain `str` as `mm2.load_config` returns it is the latin-1 decoding of a Python 2 byte string,
  so it is written as that byte string again (SHORT_BINSTRING / BINSTRING with the original bytes);
  `bytes` are written the same way;
- `mm2.Py2Unicode` was a Python 2 `unicode` object and is written as one (BINUNICODE, UTF-8);
- `mm2.Mailman2Object` stand-ins are written as the old-style instances Mailman 2 pickled
  (the class by its Mailman 2 name, then the instance state).

The import copy is written in protocol 2: Python 2.3+ reads it, and every opcode here is one
Python 2's own pickler would have written for the same value. Protocol 0 is what Python 2 wrote
when no protocol was given (`pickle.dump(obj, fp)`), and config.pck files in that form are met in
practice, so test data is written in it too: a text format in which a Python 2 str is its `repr()`
(8-bit text as `\\xc1` escapes) and a unicode object is raw-unicode-escape.
"""

from __future__ import annotations

import re
import struct
from typing import Any

from .mm2 import Mailman2Object, Py2Unicode

PROTOCOL = 2

# Python 2's pickle.py writes list items and dict entries in batches of this many (_BATCHSIZE).
_BATCH = 1000


class Py2PickleError(TypeError):
    """A value has no Python 2 pickle form (or would not read back as the same value)."""


# GLOBAL carries the module and the class as bare lines, read up to the next newline: anything
# outside a dotted identifier (a newline above all, which a protocol 4 STACK_GLOBAL in a hostile
# config.pck can put into a stand-in's name) would end the name early and be read as opcodes.
_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_CLASS_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _class_lines(legacy_class: str) -> bytes:
    """b"module\nname\n" as GLOBAL carries them, for a class name a pickle can carry."""
    module, _, name = legacy_class.rpartition(".")
    if not (_MODULE_NAME.fullmatch(module) and _CLASS_NAME.fullmatch(name)):
        raise Py2PickleError(f"class name {legacy_class[:80]!r} is not a dotted Python identifier; "
                             "a pickle cannot name it")
    return module.encode("ascii") + b"\n" + name.encode("ascii") + b"\n"


class _Writer:
    """Protocol 2, the binary opcodes."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.memo: dict[int, int] = {}
        # memo is keyed by id(): holding the objects keeps their ids from being reused mid-write.
        self.keep: list[Any] = []

    def dump(self, obj: Any) -> bytes:
        self.out += b"\x80" + bytes([PROTOCOL])  # PROTO 2
        self.save(obj)
        self.out += b"."  # STOP
        return bytes(self.out)

    def memoize(self, obj: Any) -> None:
        index = len(self.memo)
        self.memo[id(obj)] = index
        self.keep.append(obj)
        self.out += b"q" + bytes([index]) if index < 256 else b"r" + struct.pack("<I", index)  # BINPUT / LONG_BINPUT

    def fetch(self, obj: Any) -> bool:
        """Write a reference to obj if it was written before; True if so."""
        index = self.memo.get(id(obj))
        if index is None:
            return False
        self.out += b"h" + bytes([index]) if index < 256 else b"j" + struct.pack("<I", index)  # BINGET / LONG_BINGET
        return True

    def save(self, obj: Any) -> None:
        if obj is None:
            self.out += b"N"
        elif obj is True or obj is False:
            self.save_bool(obj)
        elif isinstance(obj, int):
            self.save_int(int(obj))
        elif isinstance(obj, float):
            self.save_float(obj)
        elif isinstance(obj, Py2Unicode):
            self.save_unicode(str(obj))
        elif isinstance(obj, str):
            try:
                data = obj.encode("latin-1")
            except UnicodeEncodeError:
                raise Py2PickleError(
                    f"text {obj[:40]!r} has characters beyond U+00FF, so it is not the latin-1 view of a "
                    "Python 2 byte string; wrap it in Py2Unicode to write it as unicode"
                ) from None
            self.save_bytes(data)
        elif isinstance(obj, (bytes, bytearray)):
            self.save_bytes(bytes(obj))
        elif isinstance(obj, tuple):
            self.save_tuple(obj)
        elif isinstance(obj, list):
            self.save_list(obj)
        elif isinstance(obj, dict):
            self.save_dict(obj)
        elif isinstance(obj, Mailman2Object):
            self.save_instance(obj)
        else:
            raise Py2PickleError(f"cannot write a {type(obj).__name__} into a Python 2 pickle")

    def save_bool(self, value: bool) -> None:
        self.out += b"\x88" if value else b"\x89"  # NEWTRUE / NEWFALSE

    def save_float(self, value: float) -> None:
        self.out += b"G" + struct.pack(">d", value)  # BINFLOAT

    def save_unicode(self, text: str) -> None:
        # surrogatepass: Python 2 unicode could hold lone surrogates, and Python 3's unpickler
        # decodes BINUNICODE with the same error handler.
        data = text.encode("utf-8", "surrogatepass")
        self.out += b"X" + struct.pack("<I", len(data)) + data  # BINUNICODE

    def save_int(self, value: int) -> None:
        if 0 <= value < 0x100:
            self.out += b"K" + bytes([value])  # BININT1
        elif 0 <= value < 0x10000:
            self.out += b"M" + struct.pack("<H", value)  # BININT2
        elif -(2**31) <= value < 2**31:
            self.out += b"J" + struct.pack("<i", value)  # BININT
        else:
            # Python 2 `long` in protocol 2: LONG1, little-endian two's complement.
            size = (value.bit_length() + 8) // 8
            data = value.to_bytes(size, "little", signed=True)
            if len(data) < 256:
                self.out += b"\x8a" + bytes([len(data)]) + data  # LONG1
            else:
                self.out += b"\x8b" + struct.pack("<i", len(data)) + data  # LONG4

    def save_bytes(self, data: bytes) -> None:
        if len(data) < 256:
            self.out += b"U" + bytes([len(data)]) + data  # SHORT_BINSTRING
        else:
            self.out += b"T" + struct.pack("<i", len(data)) + data  # BINSTRING

    def save_tuple(self, obj: tuple) -> None:
        if not obj:
            self.out += b")"  # EMPTY_TUPLE
            return
        if self.fetch(obj):
            return
        if len(obj) <= 3:
            for item in obj:
                self.save(item)
            self.out += (b"\x85", b"\x86", b"\x87")[len(obj) - 1]  # TUPLE1 / TUPLE2 / TUPLE3
        else:
            self.out += b"("  # MARK
            for item in obj:
                self.save(item)
            self.out += b"t"  # TUPLE
        self.memoize(obj)

    def save_list(self, obj: list) -> None:
        if self.fetch(obj):
            return
        self.out += b"]"  # EMPTY_LIST
        self.memoize(obj)
        for start in range(0, len(obj), _BATCH):
            chunk = obj[start : start + _BATCH]
            if len(chunk) == 1:
                self.save(chunk[0])
                self.out += b"a"  # APPEND
            else:
                self.out += b"("
                for item in chunk:
                    self.save(item)
                self.out += b"e"  # APPENDS

    def save_dict(self, obj: dict) -> None:
        if self.fetch(obj):
            return
        self.out += b"}"  # EMPTY_DICT
        self.memoize(obj)
        items = list(obj.items())
        for start in range(0, len(items), _BATCH):
            chunk = items[start : start + _BATCH]
            if len(chunk) == 1:
                self.save(chunk[0][0])
                self.save(chunk[0][1])
                self.out += b"s"  # SETITEM
            else:
                self.out += b"("
                for key, value in chunk:
                    self.save(key)
                    self.save(value)
                self.out += b"u"  # SETITEMS

    def save_instance(self, obj: Mailman2Object) -> None:
        # Python 2 pickled an old-style instance as MARK, the class, its init args, OBJ, then the
        # instance __dict__ and BUILD (pickle.py save_inst). The stand-in keeps the args in
        # `pickled_args` and the state either merged into its attributes or in `pickled_state`.
        if self.fetch(obj):
            return
        class_lines = _class_lines(type(obj).legacy_class)
        attributes = dict(vars(obj))
        args = attributes.pop("pickled_args", ())
        state = attributes.pop("pickled_state", attributes)
        self.out += b"("
        self.out += b"c" + class_lines  # GLOBAL
        for arg in args:
            self.save(arg)
        self.out += b"o"  # OBJ
        self.memoize(obj)
        self.save(state)
        self.out += b"b"  # BUILD


def _py2_str_repr(data: bytes) -> bytes:
    """Python 2's repr() of a str: single quotes unless only double quotes avoid escaping one,
    backslash escapes for the quote, the backslash, \\t \\n \\r, and \\xNN for other bytes outside
    printable ASCII."""
    quote = b'"' if b"'" in data and b'"' not in data else b"'"
    out = bytearray(quote)
    for byte in data:
        if byte in (quote[0], 0x5C):
            out += b"\\" + bytes([byte])
        elif byte in _NAMED_ESCAPES:
            out += _NAMED_ESCAPES[byte]
        elif byte < 0x20 or byte >= 0x7F:
            out += b"\\x%02x" % byte
        else:
            out.append(byte)
    return bytes(out + quote)


_NAMED_ESCAPES = {0x09: b"\\t", 0x0A: b"\\n", 0x0D: b"\\r"}


class _Protocol0Writer(_Writer):
    """Protocol 0 as Python 2.7's pickle.py writes it: text opcodes, one item per APPEND/SETITEM,
    every str, unicode and container memoized (PUT), old-style instances through INST."""

    def dump(self, obj: Any) -> bytes:
        self.save(obj)
        self.out += b"."  # STOP
        return bytes(self.out)

    def memoize(self, obj: Any) -> None:
        index = len(self.memo)
        self.memo[id(obj)] = index
        self.keep.append(obj)
        self.out += b"p%d\n" % index  # PUT

    def fetch(self, obj: Any) -> bool:
        index = self.memo.get(id(obj))
        if index is None:
            return False
        self.out += b"g%d\n" % index  # GET
        return True

    def save_bool(self, value: bool) -> None:
        self.out += b"I01\n" if value else b"I00\n"  # INT with Python 2.3's spelling of True/False

    def save_int(self, value: int) -> None:
        # A Python 2 int is a C long (64 bits here); beyond that it was a long, whose repr ends in L.
        if -(2**63) <= value < 2**63:
            self.out += b"I%d\n" % value  # INT
        else:
            self.out += b"L%dL\n" % value  # LONG

    def save_float(self, value: float) -> None:
        self.out += b"F" + repr(value).encode("ascii") + b"\n"  # FLOAT

    def save_unicode(self, text: str) -> None:
        # pickle.py save_unicode: raw-unicode-escape, which leaves a backslash and a newline alone,
        # so both are written as \\u escapes first.
        escaped = text.replace("\\", "\\u005c").replace("\n", "\\u000a")
        self.out += b"V" + escaped.encode("raw-unicode-escape") + b"\n"  # UNICODE
        self.memoize(text)

    def save_bytes(self, data: bytes) -> None:
        self.out += b"S" + _py2_str_repr(data) + b"\n"  # STRING
        self.memoize(data)

    def save_tuple(self, obj: tuple) -> None:
        if not obj:
            self.out += b"(t"  # MARK, TUPLE: EMPTY_TUPLE is protocol 1
            return
        if self.fetch(obj):
            return
        self.out += b"("  # MARK
        for item in obj:
            self.save(item)
        self.out += b"t"  # TUPLE
        self.memoize(obj)

    def save_list(self, obj: list) -> None:
        if self.fetch(obj):
            return
        self.out += b"(l"  # MARK, LIST
        self.memoize(obj)
        for item in obj:
            self.save(item)
            self.out += b"a"  # APPEND

    def save_dict(self, obj: dict) -> None:
        if self.fetch(obj):
            return
        self.out += b"(d"  # MARK, DICT
        self.memoize(obj)
        for key, value in obj.items():
            self.save(key)
            self.save(value)
            self.out += b"s"  # SETITEM

    def save_instance(self, obj: Mailman2Object) -> None:
        # pickle.py save_inst in text mode: MARK, the init args, INST with the class, then the
        # instance __dict__ and BUILD.
        if self.fetch(obj):
            return
        class_lines = _class_lines(type(obj).legacy_class)
        attributes = dict(vars(obj))
        args = attributes.pop("pickled_args", ())
        state = attributes.pop("pickled_state", attributes)
        self.out += b"("
        for arg in args:
            self.save(arg)
        self.out += b"i" + class_lines  # INST
        self.memoize(obj)
        self.save(state)
        self.out += b"b"  # BUILD


def dumps_py2(obj: Any, *, protocol: int = PROTOCOL) -> bytes:
    """A pickle of obj with Python 2's text types, as described in the module docstring, in
    protocol 2 (the import copy) or 0 (Python 2's default, for test data).

    Raises Py2PickleError for values Python 2 had no form for here (sets, arbitrary objects) and for
    plain str with characters beyond U+00FF (they cannot be a latin-1-decoded byte string).
    """
    writers = {0: _Protocol0Writer, 2: _Writer}
    if protocol not in writers:
        raise ValueError(f"Python 2 pickles are written in protocol 0 or 2, not {protocol}")
    return writers[protocol]().dump(obj)
