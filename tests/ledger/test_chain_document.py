"""The composed canonical document is exactly RFC 8785 of the whole document."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from app.ledger.chain import Draft, canonical

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(
    clear=st.dictionaries(st.text(max_size=10), json_values, max_size=6),
    sealed=st.none()
    | st.fixed_dictionaries({"alg": st.text(), "nonce": st.text(), "ciphertext": st.text()}),
    role=st.text(max_size=12),
    seq=st.integers(min_value=1, max_value=2**53 - 1),
)
def test_composed_bytes_equal_jcs_of_the_document(
    clear: dict[str, object], sealed: dict[str, str] | None, role: str, seq: int
) -> None:
    draft = Draft(type="explanation", key_id="abc123", role=role, clear=clear, sealed=sealed)
    expected = canonical(draft.document(seq, "f" * 64, "2026-11-25T15:00:00.000000Z"))
    got = draft.canonical_document(seq, "f" * 64, "2026-11-25T15:00:00.000000Z")
    assert got == expected
    assert json.loads(got)["seq"] == seq
