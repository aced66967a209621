import numpy as np
import pytest

from qkdctl.core.errors import QkdInputError
from qkdctl.core.records import AliceRecord


def _arrays(n=5):
    return (np.array([0, 1, 0, 1, 1][:n], dtype=np.uint8), np.array([1, 1, 0, 0, 1][:n], dtype=np.uint8),
            np.array([0, 2, 1, 0, 2][:n], dtype=np.uint8))


def test_trusted_keeps_the_arrays_and_slot():
    basis, bit, intensity = _arrays()
    rec = AliceRecord.trusted(basis, bit, intensity, first_slot=7)
    assert rec.basis is basis and rec.bit is bit and rec.intensity is intensity
    assert rec.first_slot == 7 and len(rec) == 5


def test_trusted_checks_layout_not_values():
    basis, bit, intensity = _arrays()
    with pytest.raises(QkdInputError, match="mismatched length"):
        AliceRecord.trusted(basis, bit[:4], intensity)
    with pytest.raises(QkdInputError, match="bit must be a contiguous 1-D uint8"):
        AliceRecord.trusted(basis, bit.astype(np.int64), intensity)
    with pytest.raises(QkdInputError, match="intensity must be a contiguous"):
        AliceRecord.trusted(basis, bit, np.zeros(10, dtype=np.uint8)[::2])
    # values are the producer's guarantee: the trusted path does not look at them ...
    assert AliceRecord.trusted(basis, bit, intensity + 5).intensity.max() == 7
    # ... while the normal constructor still does
    with pytest.raises(QkdInputError, match="intensity holds 7; allowed 0..2"):
        AliceRecord(basis, bit, intensity + 5)
