"""The strict JSON reader gives the same answer whether orjson or the strict parser reads.

`loads` lets orjson read a document when it can prove the result is the strict
parser's (ledger/strict_json.py `_plain`). For any text, however spaced, with keys
given twice, fractions, exponents, large integers, escapes and non-JSON constants,
`loads` must return exactly what the strict parser returns, with the same types,
or refuse with the same message.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import strict_json
from ledger.strict_json import StrictJsonError, loads

SCALARS = st.one_of(
    st.none(), st.booleans(), st.text(max_size=6),
    st.integers(-(2**70), 2**70), st.sampled_from([2**63 - 1, 2**63, 2**64, -(2**63) - 1]),
    st.decimals(allow_nan=False, allow_infinity=False, places=3),
)
KEYS = st.sampled_from(["a", "b", "\u0061", 'q"', "x:", "\\", "é"]) | st.text(max_size=3)
SPACES = st.sampled_from(["", " ", "\n", "\t ", "\r\n"])


@st.composite
def documents(draw: st.DrawFn, depth: int = 0) -> str:
    """JSON text, sometimes with a key given twice, odd spacing or a non-JSON constant."""
    space = draw(SPACES)
    kind = draw(st.integers(0, 2 if depth < 3 else 0))
    if kind == 0:
        value = draw(SCALARS)
        if isinstance(value, Decimal):
            return draw(st.sampled_from([str(value), f"{value}e1", "NaN", "-Infinity", "1E400"]))
        return json.dumps(value, ensure_ascii=draw(st.booleans()))
    if kind == 1:
        items = draw(st.lists(documents(depth + 1), max_size=3))
        return "[" + space + ("," + space).join(items) + "]"
    keys: list[str] = draw(st.lists(KEYS, max_size=4))
    twice = draw(st.booleans())
    if keys and twice:
        keys.append(draw(st.sampled_from(keys)))  # a key given twice
    colon = draw(st.sampled_from([":", " :", ": ", "\n:\t", "\t:", "\r:", "\r\n :"]))
    members = [json.dumps(k, ensure_ascii=draw(st.booleans())) + colon
               + draw(documents(depth + 1)) for k in keys]
    return "{" + space + ("," + space).join(members) + space + "}"


def strictly(text: str) -> tuple[str, Any]:
    try:
        return "read", strict_json._DECODER.decode(text)
    except StrictJsonError as error:
        return "refused", str(error)
    except ValueError as error:
        return "refused", str(error).split("\n", 1)[0]


def read(text: str) -> tuple[str, Any]:
    try:
        return "read", loads(text)
    except StrictJsonError as error:
        return "refused", str(error)


def typed(value: Any) -> Any:
    """The value with the type of every part spelled out (1 == 1.0 == True otherwise)."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    return type(value).__name__, value


@settings(max_examples=400, deadline=None)
@given(documents(), SPACES, SPACES)
def test_loads_reads_every_text_as_the_strict_parser_does(text: str, before: str,
                                                          after: str) -> None:
    text = before + text + after
    expected, got = strictly(text), read(text)
    assert got[0] == expected[0]
    if got[0] == "read":
        assert typed(got[1]) == typed(expected[1])


@pytest.mark.parametrize("text", [
    '{"a":1,"a":2}', '{"a" :1,"a":2}', '{"a":{"b":1,"b":1}}', '[{"a":1},{"b":2,"b":2}]',
    '{"a":1,"\\u0061":2}', '{"a"\t:1,"a":2}', '{"a":1,"a"\n:2}', '{"a"\r:1,"a":2}',
    '{"a":"\\t:","a"\t:2}', '{"a":[1,{"b" :1,"b":2}]}',
])
def test_a_key_given_twice_is_refused_however_it_is_spaced_or_spelled(text: str) -> None:
    with pytest.raises(StrictJsonError, match="appears twice"):
        loads(text)


def test_fractions_stay_exact_decimals() -> None:
    assert loads('{"amount":0.1,"n":[1e2]}') == {"amount": Decimal("0.1"), "n": [Decimal("1e2")]}


@pytest.mark.parametrize(("data", "problem"), [
    (b'{"a": "caf\xe9"}', "not UTF-8 (byte 10 cannot be read)"),
    (b'{"a": "\xed\xa0\x80"}', "not UTF-8 (byte 7 cannot be read)"),  # an encoded surrogate
    (b'\xef\xbb\xbf{"a": "\xff"}', "not UTF-8 (byte 10 cannot be read)"),  # counted with its mark
    ('{"a": 1}'.encode("utf-16"), "not UTF-8 (byte 0 cannot be read)"),
    ('{"a": 1}'.encode("utf-16-le"), "not UTF-8 (byte 1 is NUL: UTF-16 or UTF-32 text?)"),
    (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
])
def test_bytes_are_read_as_utf8_alone_and_a_refusal_says_where(data: bytes, problem: str
                                                                ) -> None:
    with pytest.raises(StrictJsonError) as refused:
        loads(data)
    assert problem in str(refused.value)


def test_bytes_with_a_byte_order_mark_read_as_without_one() -> None:
    assert loads(b'\xef\xbb\xbf{"a": "\xc3\xa9"}') == {"a": "\u00e9"}
