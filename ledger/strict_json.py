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
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any


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
    """Parse one JSON document strictly; raises `StrictJsonError` naming the problem."""
    try:
        if isinstance(text, bytes | bytearray):
            text = text.decode(json.detect_encoding(text), "surrogatepass")
        elif text.startswith("\ufeff"):
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        return _DECODER.decode(text)
    except StrictJsonError:
        raise
    except RecursionError:
        raise StrictJsonError("nested too deeply") from None
    except UnicodeDecodeError as error:
        raise StrictJsonError(f"not UTF-8 (byte {error.start} cannot be read)") from None
    except ValueError as error:  # json.JSONDecodeError and int-parsing limits
        raise StrictJsonError(str(error).split("\n", 1)[0]) from None
