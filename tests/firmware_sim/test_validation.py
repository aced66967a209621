"""The simulated link agrees with the analytic link model (qkdctl.core.linkmodel)."""

import numpy as np
import pytest

from firmware_sim.bench import SimBench
from firmware_sim.validation import expected, measure
from tests.firmware_sim.simhelpers import quiet_config


def _check(bench, duration_s, n_blocks=2):
    for _ in range(n_blocks):
        block = bench.acquire(duration_s)
        stats = measure(bench, block)
        gain, err = expected(bench, block)
        for name, got, want in (("gain", stats.gain, gain), ("err", stats.err, err)):
            z = (got - want) / (stats.sigma(want) + 1e-12)
            assert np.all(np.abs(z) < 4.5), f"{name}: got {got}, model {want}, z {z}"


@pytest.mark.parametrize("length_km,afterpulse_prob", [(5.0, 0.0), (40.0, 0.0), (20.0, 0.03)])
def test_gains_and_errors_match_link_model(length_km, afterpulse_prob):
    cfg = quiet_config(
        fiber={"length_km": length_km},
        source={"p_z": 0.7, "p_intensity": (0.5, 0.3, 0.2), "output_enabled": (True, True, True, False),
                "attenuation_db": (3.0103, 8.0, 30.0, 45.0)},
        p_bob_z=0.7,
        tagger={"dead_time_ps": 0},
        detectors=[{"efficiency": 0.3, "dark_count_hz": 2e4, "dead_time_ps": 0,
                    "afterpulse_prob": afterpulse_prob, "afterpulse_delay_ps": 5000.0, "jitter_ps": 20.0}] * 4,
    )
    bench = SimBench(cfg, 21)
    bench.set_paddle_deg(1, 8.0)  # some misalignment in both bases
    bench.set_paddle_deg(2, 3.0)
    _check(bench, 2e-2)


def test_model_disagrees_when_physics_differs():
    # a 3 dB wrong loss in the model is detected: the comparison can fail
    cfg = quiet_config(detectors=[{"efficiency": 0.3, "dead_time_ps": 0, "afterpulse_prob": 0.0}] * 4)
    bench = SimBench(cfg, 22)
    block = bench.acquire(1e-2)
    stats = measure(bench, block)
    gain, _ = expected(bench, block)
    z = (stats.gain - gain / 2) / (stats.sigma(gain / 2) + 1e-12)
    assert np.max(np.abs(z[:, :2])) > 10
