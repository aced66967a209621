"""SipHash-2-4 against the paper's test vector and the naive reference."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from qkdctl.core.errors import QkdInputError
from qkdctl.protocol.siphash import siphash24
from tests.naive import siphash as naive

KEY = bytes(range(16))


def test_paper_vectors():
    # Aumasson & Bernstein 2012, Appendix A: key 00..0f, message 00..0e
    assert siphash24(KEY, bytes(range(15))) == 0xA129CA6149BE45E5
    assert naive.siphash24(KEY, bytes(range(15))) == 0xA129CA6149BE45E5
    # reference implementation's vectors.h, first entry (empty message)
    assert siphash24(KEY, b"") == 0x726FDB47DD0E0E31


@settings(max_examples=40, deadline=None)
@given(key=st.binary(min_size=16, max_size=16), data=st.binary(max_size=70))
def test_matches_reference(key, data):
    assert siphash24(key, data) == naive.siphash24(key, data)


def test_key_length_checked():
    with pytest.raises(QkdInputError, match="16-byte key"):
        siphash24(b"short", b"x")
    assert siphash24(KEY, np.arange(9, dtype=np.uint8).tobytes()) == naive.siphash24(
        KEY, bytes(range(9)))
