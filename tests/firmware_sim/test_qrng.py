import numpy as np
import pytest

from firmware_sim.config import QrngConfig
from firmware_sim.physics.qrng import BeamSplitterQrng, arrival_bits, choice_source, path_bits
from qkdctl.core.errors import QkdInputError, SecurityAbort
from qkdctl.core.randomness import GeneratorSource, OsRandomSource


def test_path_bits_follow_split_ratio_efficiencies_and_dark_counts():
    rng = np.random.default_rng(1)
    # r eta1 / (r eta1 + (1 - r) eta0) = 0.5 * 0.3 / (0.5 * 0.3 + 0.5 * 0.2) = 0.6; 10 % dark counts -> 0.59
    x = path_bits(rng, 200_000, 0.5, (0.2, 0.3), 0.1)
    assert x.mean() == pytest.approx(0.59, abs=0.005)
    assert path_bits(rng, 1000, 1.0, (0.25, 0.25), 0.0).min() == 1
    with pytest.raises(QkdInputError, match="no photon"):
        path_bits(rng, 10, 1.0, (0.25, 0.0), 0.0)


def test_arrival_parity_is_nearly_fair():
    x = arrival_bits(np.random.default_rng(2), 200_000, 1e7, 50.0)
    assert x.mean() == pytest.approx(0.5, abs=0.005)


def test_prng_source_is_the_counter_generator_and_os_is_os():
    assert choice_source("prng", QrngConfig(), seed=3) is None
    assert isinstance(choice_source("os", QrngConfig(), seed=3), OsRandomSource)
    with pytest.raises(QkdInputError, match="unknown choice source"):
        choice_source("dice", QrngConfig(), seed=3)


@pytest.mark.parametrize("raw", ["path", "time"])
def test_fair_qrng_gives_reproducible_extracted_words(raw):
    cfg = QrngConfig(raw=raw)
    w1 = choice_source("qrng", cfg, seed=5).words(2000)
    w2 = choice_source("qrng", cfg, seed=5).words(2000)
    np.testing.assert_array_equal(w1, w2)
    assert abs(np.unpackbits(w1.view(np.uint8)).mean() - 0.5) < 0.01


@pytest.mark.parametrize("cfg", [QrngConfig(split_ratio=1.0), QrngConfig(split_ratio=0.7),
                                 QrngConfig(efficiency=(0.1, 0.25))], ids=["stuck", "biased", "mismatched"])
def test_stuck_or_biased_qrng_stops(cfg):
    src = choice_source("qrng", cfg, seed=5)
    with pytest.raises(SecurityAbort, match="QRNG stopped: health test"):
        src.words(2000)
    with pytest.raises(SecurityAbort, match="stopped"):
        src.words(1)


def test_raw_supplier_reads_its_config():
    q = BeamSplitterQrng(QrngConfig(split_ratio=0.0, dark_fraction=0.0), np.random.default_rng(4))
    assert q(100).max() == 0


# ---- wired to Alice's choices on the simulated bench ------------------------------------------

def _bench(choices, eve=None, **qrng):
    from firmware_sim.bench import SimBench
    from firmware_sim.config import SimConfig

    cfg = {"alice_choices": choices, "qrng": qrng, "fiber": {"length_km": 10.0}}
    if eve:
        cfg["eve"] = eve
    return SimBench(SimConfig.build(**cfg), seed=3)


def test_source_words_replace_the_counter_choices_exactly():
    from firmware_sim.physics.clicks import simulate_slots
    from tests.naive import sim as naive

    lam = np.full((3, 4, 4), 0.01)
    args = (21, 40, 3000, (0.7, 0.2, 0.1), 0.5, 0.5, lam, 1000.0, 0.0, np.full(4, 30.0))
    got = simulate_slots(np.random.default_rng(8), *args, choices=GeneratorSource(np.random.default_rng(9)))
    words = np.random.default_rng(9).bit_generator.random_raw(1500)
    ref = naive.slots(np.random.default_rng(8), 21, 3000, 40, naive.choice_weights((0.7, 0.2, 0.1), 0.5, 0.5), lam,
                      1000.0, 0.0, np.full(4, 30.0), words=words)
    for x, y in zip(got, ref):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("eve", [None, {"intercept_resend_fraction": 0.5}])
@pytest.mark.parametrize("choices", ["qrng", "os"])
def test_bench_choices_from_qrng_and_os(choices, eve):
    blk = _bench(choices, eve).acquire(1e-4)
    a = blk.alice
    assert a.basis.size == 100_000 and abs(a.basis.mean() - 0.5) < 0.01 and abs(a.bit.mean() - 0.5) < 0.01
    assert np.bincount(a.intensity, minlength=3)[0] / a.intensity.size == pytest.approx(0.7, abs=0.01)
    assert len(blk.tags) > 0


@pytest.mark.parametrize("eve", [None, {"pns_fraction": 1.0}])
@pytest.mark.parametrize("qrng", [{"split_ratio": 1.0}, {"split_ratio": 0.7}], ids=["stuck", "biased"])
def test_failing_qrng_stops_acquisition(qrng, eve):
    bench = _bench("qrng", eve, **qrng)
    with pytest.raises(SecurityAbort, match="QRNG stopped: health test failed"):
        bench.acquire(1e-4)
    with pytest.raises(SecurityAbort, match="QRNG stopped"):
        bench.acquire(1e-4)
