import numpy as np
import pytest

from qkdctl.core.errors import QkdInputError
from qkdctl.detect.qrng import detector_raw_bits


def test_detector_bits_are_the_detector_of_the_pair():
    np.testing.assert_array_equal(detector_raw_bits(np.array([0, 1, 2, 3, 3])), [0, 1, 0, 1, 1])
    with pytest.raises(QkdInputError, match="roles"):
        detector_raw_bits(np.array([4]))
