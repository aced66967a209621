"""The inlined SplitMix64 stream and its ziggurat normals (firmware_sim/physics/gauss.py)."""

import math

import numpy as np
import pytest
from scipy import integrate, stats

from firmware_sim.physics import gauss
from qkdctl.core.errors import QkdInputError
from tests.naive import sim as naive


def test_tables_have_equal_layer_areas_and_cover_the_curve():
    x, k, w, f_x, v = gauss.ziggurat_tables()
    r = gauss.ZIGGURAT_R
    assert x[1] == r and x[-1] == 0.0 and np.all(np.diff(x[1:]) < 0)
    # base layer: rectangle [0, r] x [0, f(r)] plus the tail, area v = x[0] f(r)
    tail, _ = integrate.quad(lambda t: math.exp(-0.5 * t * t), r, np.inf)
    assert r * f_x[1] + tail == pytest.approx(v, rel=1e-12) and x[0] * f_x[1] == pytest.approx(v, rel=1e-14)
    # layer i's top f(x_i) + v / x_i is the next edge's f; the top layer reaches f(0) = 1
    tops = f_x[1:-1] + v / x[1:-1]
    assert np.allclose(tops[:-1], f_x[2:-1], rtol=1e-12, atol=0)
    assert 1.0 <= tops[-1] < 1.0 + 1e-12
    assert np.array_equal(k, [math.floor(x[i + 1] / x[i] * 2.0**53) for i in range(256)])
    assert np.array_equal(w, x[:256] * 2.0**-53)


def test_stream_words_are_splitmix64():
    # SplitMix64 seeded with 0 outputs 0xE220A8397B1DCDAF first (Steele et al.): state GAMMA here
    stream = naive.Stream(naive.GAMMA)
    assert stream.word() == 0xE220A8397B1DCDAF and stream.state == 2 * naive.GAMMA % 2**64


def test_normals_match_naive_including_wedge_and_tail():
    for state in (0, 12345, 2**64 - 1):
        got, end = gauss.standard_normals(state, 20_000)
        ref = naive.Stream(state)
        want = [ref.normal() for _ in range(got.size)]
        assert np.array_equal(got, want) and end == ref.state
    # 20000 draws: ~5 from the tail beyond r, and ~1.5 % extra words (wedge tests, tail, retries)
    assert np.sum(np.abs(got) > gauss.ZIGGURAT_R) >= 1
    words = (end - state) * pow(naive.GAMMA, -1, 2**64) % 2**64
    assert 20_100 < words < 20_600


def test_normals_are_standard_normal():
    x, _ = gauss.standard_normals(2024, 1_000_000)
    assert stats.kstest(x, "norm").pvalue > 1e-3
    assert abs(x.mean()) < 5e-3 and abs(x.var() - 1.0) < 7e-3
    for edge in (2.0, 3.0, gauss.ZIGGURAT_R, 4.0):  # the tails, through and beyond the base layer's edge
        p = 2 * stats.norm.sf(edge)
        n_out = int(np.sum(np.abs(x) > edge))
        assert abs(n_out - p * x.size) < 5 * math.sqrt(p * x.size) + 1
    assert np.abs(x).max() > 4.4  # unbounded tail: P(max |x| < 4.4 in 1e6) ~ 1e-5


def test_normals_sign_is_fair():
    x, _ = gauss.standard_normals(7, 400_000)
    assert abs(np.mean(x > 0) - 0.5) < 5 * math.sqrt(0.25 / x.size)


def test_bad_input():
    with pytest.raises(QkdInputError, match="state"):
        gauss.standard_normals(-1, 3)
    with pytest.raises(QkdInputError, match="n must be"):
        gauss.standard_normals(1, -3)
