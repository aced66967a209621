import numpy as np
import pytest

from qkdctl.core.errors import QkdInputError
from qkdctl.detect.confidence import rate_lower, rate_upper, trials_for_zero_events


def test_zero_event_bounds_have_the_closed_form():
    # P[0 events] = (1 - p)^n = 0.05  ->  p = 1 - 0.05^(1/n)
    assert rate_upper(0, 300) == pytest.approx(1 - 0.05 ** (1 / 300), rel=1e-9)
    assert rate_upper(0, 3000) < 1e-3 < rate_upper(0, 2994)
    assert rate_lower(300, 300) == pytest.approx(0.05 ** (1 / 300), rel=1e-9)
    assert trials_for_zero_events(0.01) == 299 and trials_for_zero_events(1e-3) == 2995
    assert rate_lower(0, 10) == 0.0 and rate_upper(10, 10) == 1.0


def test_bounds_match_the_binomial_tail():
    from scipy.stats import binom

    for k, n in [(1, 300), (7, 50), (40, 41)]:
        hi, lo = rate_upper(k, n), rate_lower(k, n)
        assert lo < k / n < hi
        assert binom.cdf(k, n, hi) == pytest.approx(0.05, rel=1e-6)
        assert binom.sf(k - 1, n, lo) == pytest.approx(0.05, rel=1e-6)


@pytest.mark.parametrize("k, n, conf", [(-1, 10, 0.95), (11, 10, 0.95), (0, 0, 0.95), (1, 10, 1.0)])
def test_bad_counts_are_named(k, n, conf):
    with pytest.raises(QkdInputError, match="k=|confidence"):
        rate_upper(k, n, conf)


def test_chunked_generation_equals_one_pass(monkeypatch):
    import benchmarks.detect_data as dd
    from qkdctl.detect.features import extract_many
    from qkdctl.detect.scenarios import generate

    monkeypatch.setattr(dd, "CHUNK_BLOCKS", 2)
    rows, cpu_s = dd.rows({"normal_a": (3, 41), "blinding": (3, 42)}, workers=1)
    np.testing.assert_array_equal(rows["normal_a"], extract_many(generate("normal", 3, dd.make_bench, 41)))
    np.testing.assert_array_equal(rows["blinding"], extract_many(generate("blinding", 3, dd.make_bench, 42)))
    assert cpu_s > 0
