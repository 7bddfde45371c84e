"""JSON read strictly, so a file cannot say one thing to a person and another to the ledger.

`loads` is the one reader of JSON that comes from outside (`ledger apply` lines,
proof bundles). Compared with a plain parser it refuses, rather than silently
resolving:

- a key given twice in one object (a plain parser keeps the last one, while a
  person reading the file sees the first);
- `NaN`, `Infinity` and `-Infinity`, which are not JSON;
- numbers with a fraction or an exponent are kept exact as `Decimal`, never
  rounded through a float; integers are Python integers of any size (callers
  check their ranges).

Errors are `StrictJsonError` (a `ValueError`) with one line saying why.

Most documents are read by orjson (`_plain`), several times faster, when what it
reads is provably what the strict reader gives; every other one, and every refusal,
goes through the strict reader.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import orjson


class StrictJsonError(ValueError):
    """The text is not JSON, or is JSON this ledger refuses to read (see the module)."""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise StrictJsonError(f"the key {key!r} appears twice in one object")
        result[key] = value
    return result


def _constant(name: str) -> Any:
    raise StrictJsonError(f"{name} is not a JSON number")


# One decoder for every call: building it is a quarter of the cost of a short line.
_DECODER = json.JSONDecoder(
    object_pairs_hook=_object, parse_float=Decimal, parse_constant=_constant
)


def loads(text: str | bytes) -> Any:
    """Parse one JSON document strictly; raises `StrictJsonError` naming the problem.
    Bytes are read as UTF-8 alone (`decode_utf8`), never guessed to be UTF-16 or 32."""
    if isinstance(text, bytes | bytearray):
        text = decode_utf8(bytes(text), as_json=True)
    found = _plain(text)
    if found is not _UNSURE:
        return found
    try:
        if text.startswith("\ufeff"):
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        return _DECODER.decode(text)
    except StrictJsonError:
        raise
    except RecursionError:
        raise StrictJsonError("nested too deeply (arrays or objects inside one another "
                              "beyond the reader's depth)") from None
    except ValueError as error:  # json.JSONDecodeError and int-parsing limits
        raise StrictJsonError(str(error).split("\n", 1)[0]) from None


_BOM = b"\xef\xbb\xbf"


def decode_utf8(data: bytes, *, as_json: bool = False) -> str:
    """`data` as UTF-8 text, a leading byte order mark aside. StrictJsonError naming the
    first byte that is not UTF-8 (counted from 0, the mark included): Latin-1, an
    overlong form, an encoded surrogate, a text cut inside a character. With `as_json`,
    a NUL byte too, which JSON text never holds: UTF-16 or UTF-32 is named as such
    rather than read as UTF-8 with NULs between its characters."""
    skip = len(_BOM) if data.startswith(_BOM) else 0
    try:
        text = data[skip:].decode("utf-8")
    except UnicodeDecodeError as error:
        raise StrictJsonError(f"not UTF-8 (byte {error.start + skip} cannot be read)") from None
    if as_json and "\x00" in text:
        at = skip + len(text[: text.index("\x00")].encode("utf-8"))
        raise StrictJsonError(f"not UTF-8 (byte {at} is NUL: UTF-16 or UTF-32 text?)")
    return text


_UNSURE = object()
_SPACED_KEY_END = re.compile(r'"[ \t\n\r]+:')


def _plain(text: str) -> Any:
    """The document as orjson reads it, when that is provably what `_DECODER` gives;
    `_UNSURE` otherwise (orjson refuses it, or it holds a fraction or exponent, which
    the strict reader keeps as a Decimal, or a key may be given twice).

    Every member of an object ends its key with a quote, optional whitespace and a
    colon, so the text holds at least as many of those as members; when it holds
    exactly as many as the keys orjson kept, no key was given twice (orjson keeps
    one of each). Strings are read alike by both, integers alike within orjson's 64
    bits (it refuses larger ones), and a BOM is left to the strict reader.
    """
    if text.startswith("\ufeff"):
        return _UNSURE
    try:
        data = orjson.loads(text)
        keys = _keys(data)
    except (orjson.JSONDecodeError, RecursionError):
        return _UNSURE
    if keys < 0:
        return _UNSURE
    return data if _key_ends(text) == keys else _UNSURE


def _key_ends(text: str) -> int:
    """How many times a quote, optional JSON whitespace and a colon follow one another,
    in a text orjson read: a tab, line feed or carriage return there is whitespace
    between tokens (a string holds none unescaped, or orjson refuses it), so a text
    without them holds no key end spaced but by spaces before its colon."""
    ends = text.count('":')
    if " :" in text or "\t" in text or "\n" in text or "\r" in text:
        ends += len(_SPACED_KEY_END.findall(text))
    return ends


_SCALARS = frozenset({str, int, bool, type(None)})
"""What orjson reads a JSON value into, a float and the containers aside."""


def _keys(value: Any) -> int:
    """How many keys the objects in `value` hold in all; -1 if it holds a float."""
    count = 0
    if type(value) is dict:
        count = len(value)
        values: Any = value.values()
    elif type(value) is list:
        values = value
    else:
        return -1 if type(value) is float else 0
    scalars = _SCALARS
    for item in values:
        kind = type(item)
        if kind in scalars:
            continue
        if kind is not dict and kind is not list:  # a float
            return -1
        inner = _keys(item)
        if inner < 0:
            return -1
        count += inner
    return count
