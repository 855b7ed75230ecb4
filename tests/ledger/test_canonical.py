"""``canonical`` writes exactly rfc8785's bytes (its orjson fast path must prove it applies)."""

from __future__ import annotations

import math
import random
import struct
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from app.ledger.chain import canonical

FLOATS = st.floats(allow_nan=False, allow_infinity=False)
LEAVES = st.none() | st.booleans() | st.integers() | FLOATS | st.text()
DOCUMENTS = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(), inner, max_size=6),
    max_leaves=40,
)


def _expected(value: Any) -> bytes | type[Exception]:
    try:
        return rfc8785.dumps(value)
    except Exception as exc:  # the same refusal must come out of canonical
        return type(exc)


def _same(value: Any) -> None:
    expected = _expected(value)
    if isinstance(expected, bytes):
        assert canonical(value) == expected
    else:
        with pytest.raises(expected):
            canonical(value)


@settings(max_examples=800, deadline=None)
@given(DOCUMENTS)
def test_generated_documents_match_rfc8785(document: Any) -> None:
    _same(document)


def test_floats_of_every_magnitude_match() -> None:
    """Every decade from 5e-324 to 1e308 (where ES6 and orjson change notation), both signs,
    integral and not, and random bit patterns."""
    rng = random.Random(7)
    values = [0.0, -0.0, 5e-324, 1e-7, 1e-6, 9.999999e-6, 1e-5, 1e15, 2.0**53, 1e21, 1.5e300]
    values += [rng.random() * 10.0**e for e in range(-320, 308) for _ in range(8)]
    values += [float(rng.randrange(1, 10**6)) * 10.0**e for e in range(0, 25)]
    values += [struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0] for _ in range(20_000)]
    for v in values:
        if math.isfinite(v):
            _same(v)
            _same(-v)
            _same({"x": [v, {"y": -v}]})


def test_every_code_point_escapes_alike() -> None:
    text = "".join(chr(c) for c in range(0x20000) if not 0xD800 <= c < 0xE000)
    _same(text)
    _same({text[i : i + 3]: i for i in range(0, len(text), 997)})


@pytest.mark.parametrize(
    "value",
    [
        {"\ue000": 1, "\U0001f600": 2, "a": 3},  # UTF-16 order differs from code point order
        {"\ud800": 1},  # a lone surrogate key
        ["\udfff"],
        2**53,
        -(2**53),
        float("nan"),
        float("inf"),
        {1: "not a string key"},
        {"set": {1, 2}},
        (1, 2.5, "x"),
        [True, False, None, 0, -1, 1.0, -0.0, 1e-6, 1e-7, 1e21, 123456789012345680000.0],
    ],
)
def test_edge_values(value: Any) -> None:
    _same(value)
