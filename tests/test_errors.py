import numpy as np
import pytest

from qkdctl.core.errors import QkdInputError
from qkdctl.core.records import AliceRecord
from qkdctl.core.tags import TagBlock


def test_tagblock_rejects_out_of_order():
    with pytest.raises(QkdInputError, match="out of order at index 2"):
        TagBlock(np.array([1, 5, 3]), np.array([0, 1, 2]))


def test_tagblock_rejects_mismatched_lengths():
    with pytest.raises(QkdInputError, match="3 tags but channel has 2"):
        TagBlock(np.array([1, 2, 3]), np.array([0, 1]))


def test_alice_record_checks_values_and_lengths():
    with pytest.raises(QkdInputError, match="mismatched length"):
        AliceRecord(np.zeros(3), np.zeros(2), np.zeros(3))
    with pytest.raises(QkdInputError, match="intensity holds 3"):
        AliceRecord(np.zeros(2), np.zeros(2), np.array([0, 3]))
