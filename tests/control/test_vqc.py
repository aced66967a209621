import numpy as np
import pytest

from qkdctl.control.actions import ActionSpace
from qkdctl.control.features import N_FEATURES
from qkdctl.control.policy import SoftmaxPolicy, load_policy
from qkdctl.control.rollout import evaluate, run_batch, train_spsa
from qkdctl.control.surrogate import benchmark_envs
from qkdctl.control.vqc import VqcPolicy
from qkdctl.core.errors import QkdInputError
from qkdctl.qml.backends import open_backend

from tests.control.toy import right_fraction, toy_envs

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def aer():
    return open_backend("aer", seed=4)


def test_zero_angles_measure_action_zero_and_a_flip_moves_one_axis(aer):
    pol = VqcPolicy(ActionSpace(), aer, layers=1, shots=16)
    theta = np.zeros(pol.n_theta + pol.n_lambda)
    x = np.zeros((2, N_FEATURES))
    pol.set_params(theta)
    np.testing.assert_array_equal(pol.probs(x)[:, 0], [1.0, 1.0])  # CZ ring on |0000>
    theta[pol.n_theta - 3] = np.pi  # final RY(pi) on qubit 1 (of 4): the method axis
    pol.set_params(theta)
    np.testing.assert_array_equal(pol.choose(x), [2, 2])
    assert pol.circuits == 4 and pol.shots_used == 64


def test_probabilities_are_sampled_and_reproducible(aer, rng):
    pol = VqcPolicy(ActionSpace(), aer, shots=64)
    pol.set_params(rng.normal(0, 1, pol.get_params().size))
    x = rng.random((3, N_FEATURES))
    p = pol.probs(x)
    assert p.shape == (3, 16)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert np.all(p * 64 == np.round(p * 64))  # counts of 64 shots
    np.testing.assert_array_equal(pol.probs(x), p)  # seeded simulator


def test_saved_vqc_scores_identically_after_load(aer, rng, tmp_path):
    pol = VqcPolicy(ActionSpace(), aer, layers=1, shots=32, training={"seed": 9})
    pol.set_params(rng.normal(0, 1, pol.get_params().size))
    pol.save(tmp_path / "vqc.json")
    back = load_policy(tmp_path / "vqc.json", open_backend("aer", seed=4))
    assert isinstance(back, VqcPolicy) and back.layers == 1 and back.shots == 32 and back.training == {"seed": 9}
    envs = benchmark_envs(4, seed=2)
    a, b = evaluate(pol, envs), evaluate(back, envs)
    np.testing.assert_array_equal(a.actions, b.actions)
    assert a.secret_rate_bps() == b.secret_rate_bps()


def test_runs_on_a_fake_backend_with_few_shots(rng):
    pol = VqcPolicy(ActionSpace(), open_backend("fake:manila", seed=1), layers=1, shots=16)
    pol.set_params(rng.normal(0, 1, pol.get_params().size))
    p = pol.probs(rng.random((2, N_FEATURES)))
    assert p.shape == (2, 16) and np.allclose(p.sum(axis=1), 1.0)
    assert pol.shots_used == 32


def test_spsa_trains_the_vqc_end_to_end_on_aer(aer):
    pol = VqcPolicy(ActionSpace(), aer, layers=1, shots=16)
    before = pol.get_params()
    trace = train_spsa(pol, pol.probs_with, toy_envs(2, n_blocks=3), 2, np.random.default_rng(1))
    assert len(trace) == 2 and not np.array_equal(pol.get_params(), before)
    assert pol.training["trainer"] == "spsa" and pol.circuits == 2 * 3 * 4  # 2 iterations x 3 steps x 2N rows


def test_spsa_learns_the_toy_with_a_cheap_policy():
    """The SPSA trainer itself, on a softmax whose rows may carry their own weights."""
    pol = SoftmaxPolicy(ActionSpace())

    def probs_with(x, rows):
        z = np.einsum("nf,nfa->na", np.hstack([x, np.ones((len(x), 1))]), rows.reshape(len(x), N_FEATURES + 1, 16))
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    train_spsa(pol, probs_with, toy_envs(8), 150, np.random.default_rng(2), a=4.0, c=0.5)
    after = run_batch(pol.probs, toy_envs(32)(np.random.default_rng(5)), pol.space, None)
    assert right_fraction(after) > 0.9


def test_bad_vqc_settings_are_named(aer):
    with pytest.raises(QkdInputError, match="layers >= 1"):
        VqcPolicy(ActionSpace(), aer, layers=0)
    pol = VqcPolicy(ActionSpace(), aer)
    with pytest.raises(QkdInputError, match="parameters"):
        pol.set_params(np.zeros(3))
