"""SPSA and Nelder-Mead on a noise-free probe of a known fiber rotation."""

import numpy as np
import pytest

from drivers.polarization.calibration import PaddleCalibration
from firmware_sim.physics.polarization import detector_probabilities, su2_from_rotation_vector
from qkdctl.blockreport import BlockReport
from qkdctl.core.errors import QkdInputError
from qkdctl.tune import make_tuner
from qkdctl.tune.modelfree import _cost
from qkdctl.tune.tomographic import settings_params


@pytest.mark.parametrize("name,opts,factor", [("spsa", {"seed": 2}, 0.5), ("nelder-mead", {}, 0.5)])
def test_probe_tuners_reduce_qber(name, opts, factor):
    cal = PaddleCalibration()
    fiber = su2_from_rotation_vector(np.array([0.15, -0.1, 0.1]))

    def probe(params, duration_s):
        s = [params[f"pol.{k}"] for k in (1, 2, 3)]
        cm = detector_probabilities(cal.rotation(s) @ fiber, 0.5) * 1e6
        return BlockReport(block_id=0, counts={"click_matrix": cm.tolist()}, params=dict(params))

    tuner = make_tuner(name, cal, opts)
    params = settings_params((1.0, 1.0, 1.0))
    first = _cost(probe(params, 0.0))
    for i in range(15):
        prop = tuner.propose([probe(params, 0.0)], params, probe)
        if prop is None:  # inside the deadband
            continue
        assert prop.probes_used <= tuner.probe_budget
        params = {**params, **prop.params}
    assert _cost(probe(params, 0.0)) < factor * first


def test_probe_tuner_without_probe_is_an_error():
    cal = PaddleCalibration()
    cm = detector_probabilities(su2_from_rotation_vector(np.array([0.5, 0, 0])), 0.5) * 1e4
    rep = BlockReport(block_id=0, counts={"click_matrix": cm.tolist()})
    with pytest.raises(QkdInputError, match="probe"):
        make_tuner("nelder-mead", cal, {}).propose([rep], settings_params((0.0, 0.0, 0.0)))
    with pytest.raises(QkdInputError, match="seed"):
        make_tuner("spsa", cal, {})
