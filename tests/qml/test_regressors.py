"""Quantum-kernel decoy predictor: same interface as the MLP; the backend kernel agrees with the exact one."""

import numpy as np
import pytest

from benchmarks.make_decoy_data import sample_figures
from qkdctl.core.errors import QkdInputError
from qkdctl.qml.backends import open_backend
from qkdctl.qml.regressors import QuantumKernelDecoyPredictor, backend_kernel, statevector_kernel
from qkdctl.tune.decoy import DecoyChoice, finite_key_rate, optimize_decoy
from qkdctl.tune.decoy_predictor import DEFAULT_TRAINING_SET, load_training_set

pytestmark = pytest.mark.filterwarnings("error::DeprecationWarning")


def test_predicts_near_optimal_settings_on_held_out_links():
    features, targets, _ = load_training_set(DEFAULT_TRAINING_SET)
    pred = QuantumKernelDecoyPredictor().fit(features, targets)
    fracs = []
    for fig in sample_figures(np.random.default_rng(7), 3):
        opt = optimize_decoy(fig)
        if opt.rate_per_pulse <= 0:
            continue
        (choice,) = pred.predict(fig.features())
        assert isinstance(choice, DecoyChoice) and choice.mu[0] > choice.mu[1] > choice.mu[2] >= 0
        fracs.append(finite_key_rate(fig, choice) / opt.rate_per_pulse)
    assert fracs and min(fracs) > 0.95


def test_fits_training_targets_closely():
    features, targets, _ = load_training_set(DEFAULT_TRAINING_SET)
    pred = QuantumKernelDecoyPredictor().fit(features[:60], targets[:60])
    y = pred._y_scale.inverse_transform(pred._predict_model(pred._x_scale.transform(features[:60])))
    assert np.max(np.abs(y - targets[:60])) < 0.05


def test_backend_kernel_estimates_the_exact_kernel(rng):
    x = rng.normal(0.0, 1.0, (4, 5))
    exact = statevector_kernel().evaluate(x)
    sampled = backend_kernel(open_backend("aer", seed=3), shots=4000).evaluate(x)
    assert np.allclose(sampled, exact, atol=0.04)
    assert np.allclose(np.diag(sampled), 1.0)


def test_bad_input():
    with pytest.raises(QkdInputError, match="not trained"):
        QuantumKernelDecoyPredictor().predict(np.zeros(5))
    with pytest.raises(QkdInputError, match="bandwidth and alpha"):
        QuantumKernelDecoyPredictor(bandwidth=0.0)
    with pytest.raises(QkdInputError, match=">= 10 rows"):
        QuantumKernelDecoyPredictor().fit(np.zeros((3, 5)), np.zeros((3, 5)))
