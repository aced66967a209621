import json

import numpy as np
import pytest

from qkdctl.control.actions import ActionSpace
from qkdctl.control.features import N_FEATURES
from qkdctl.control.policy import FixedPolicy, SoftmaxPolicy, load_policy, policy_from_dict
from qkdctl.control.rollout import evaluate, run_batch, train_reinforce
from qkdctl.control.surrogate import benchmark_envs
from qkdctl.core.errors import QkdInputError

from tests.control.toy import right_fraction, toy_envs


def test_softmax_probabilities_match_a_hand_computed_case():
    sp = ActionSpace()
    w = np.zeros((N_FEATURES + 1, 16))
    w[0, 3] = 2.0  # feature 0 favours action 3
    w[-1, 1] = 1.0  # bias favours action 1
    pol = SoftmaxPolicy(sp, w)
    x = np.zeros((2, N_FEATURES))
    x[1, 0] = 1.0
    p = pol.probs(x)
    z0 = np.array([0, 1] + [0.0] * 14)
    z1 = np.array([0, 1, 0, 2] + [0.0] * 12)
    np.testing.assert_allclose(p[0], np.exp(z0) / np.exp(z0).sum())
    np.testing.assert_allclose(p[1], np.exp(z1) / np.exp(z1).sum())
    assert pol.choose(x).tolist() == [1, 3]


def test_grad_log_prob_matches_finite_differences(rng):
    pol = SoftmaxPolicy(ActionSpace(), rng.normal(size=(N_FEATURES + 1, 16)))
    x = rng.random((3, N_FEATURES))
    a = np.array([0, 5, 7])
    g = pol.grad_log_prob(x, a)
    theta = pol.get_params()
    for i in rng.choice(theta.size, 6, replace=False):
        e = np.zeros_like(theta)
        e[i] = 1e-6
        pol.set_params(theta + e)
        up = np.log(pol.probs(x)[np.arange(3), a])
        pol.set_params(theta - e)
        down = np.log(pol.probs(x)[np.arange(3), a])
        np.testing.assert_allclose(g[:, i], (up - down) / 2e-6, rtol=1e-4, atol=1e-7)
    pol.set_params(theta)


def test_reinforce_learns_the_known_best_method_on_the_toy():
    pol = SoftmaxPolicy(ActionSpace())
    before = right_fraction(run_batch(pol.probs, toy_envs(32)(np.random.default_rng(5)), pol.space, None))
    train_reinforce(pol, toy_envs(16), 60, np.random.default_rng(4), lr=1.0, gamma=0.0)
    after = run_batch(pol.probs, toy_envs(32)(np.random.default_rng(5)), pol.space, None)
    assert before < 0.7
    assert right_fraction(after) > 0.95
    assert pol.training["trainer"] == "reinforce" and pol.training["iterations"] == 60


def test_saved_softmax_scores_identically_after_load(tmp_path, rng):
    pol = SoftmaxPolicy(ActionSpace(), rng.normal(size=(N_FEATURES + 1, 16)), training={"seed": 3})
    pol.save(tmp_path / "p.json")
    back = load_policy(tmp_path / "p.json")
    assert isinstance(back, SoftmaxPolicy) and back.training == {"seed": 3}
    np.testing.assert_array_equal(back.get_params(), pol.get_params())
    envs = benchmark_envs(8, seed=3)
    a, b = evaluate(pol, envs), evaluate(back, envs)
    assert a.secret_rate_bps() == b.secret_rate_bps() > 0
    np.testing.assert_array_equal(a.actions, b.actions)


def test_fixed_policy_always_chooses_its_action():
    pol = FixedPolicy(ActionSpace(), 6)
    assert pol.choose(np.zeros((4, N_FEATURES))).tolist() == [6, 6, 6, 6]
    back = policy_from_dict(json.loads(json.dumps(pol.to_dict())))
    assert isinstance(back, FixedPolicy) and back.action_index == 6


@pytest.mark.parametrize("text, match", [
    ("not json", "not a JSON policy file"),
    ('{"x": 1}', "no 'kind'"),
    ('{"kind": "dqn", "space": {"block_seconds": [0.01, 0.1], "methods": ["a", "b"], "gate_widths_ps": [1, 2], '
     '"alice_p_z": [0.5, 0.8]}}', "unknown kind 'dqn'"),
    ('{"kind": "vqc", "space": {"block_seconds": [0.01, 0.1], "methods": ["a", "b"], "gate_widths_ps": [1, 2], '
     '"alice_p_z": [0.5, 0.8]}}', "needs a quantum backend"),
    # a policy saved before basis bias was an axis (3 axes) is refused by name
    ('{"kind": "fixed", "space": {"block_seconds": [0.01, 0.1], "methods": ["a", "b"], "gate_widths_ps": [1, 2]}}',
     "bad saved form .*alice_p_z"),
])
def test_bad_policy_files_are_named(tmp_path, text, match):
    (tmp_path / "p.json").write_text(text)
    with pytest.raises(QkdInputError, match=match):
        load_policy(tmp_path / "p.json")


def test_missing_policy_file(tmp_path):
    with pytest.raises(QkdInputError, match="policy file not found"):
        load_policy(tmp_path / "none.json")


def test_bad_features_are_named():
    with pytest.raises(QkdInputError, match=r"shape \(N, 12\)"):
        SoftmaxPolicy(ActionSpace()).probs(np.zeros((2, 5)))
    with pytest.raises(QkdInputError, match="NaN"):
        SoftmaxPolicy(ActionSpace()).probs(np.full((1, N_FEATURES), np.nan))
