import numpy as np
import pytest

from qkdctl.blockreport import BlockReport
from qkdctl.detect.base import SEVERITIES, load
from qkdctl.detect.factory import make_detector
from qkdctl.detect.rules import MIN_HISTORY, RuleDetector

ATTACKS = ("ir_5", "ir_10", "ir_25", "ir_100", "pns", "blinding", "time_shift")


@pytest.fixture(scope="module")
def rules(reports):
    return RuleDetector().fit_reports(reports["normal"])


@pytest.mark.parametrize("attack", ATTACKS)
def test_each_attack_raises_its_alarm(rules, reports, attack):
    for rep in reports[attack]:
        alarms = rules(rep, [])
        assert alarms, attack
        # intercept-resend below the QBER limit is priced in by the key length: warn
        expected = "warn" if attack in ("ir_5", "ir_10", "ir_25") else "abort"
        assert max((a.severity for a in alarms), key=SEVERITIES.index) == expected, (attack, alarms)


def test_expected_checks_fire(rules, reports):
    assert any(a.source == "rules:offgate_clicks" for a in rules(reports["blinding"][0], []))
    assert any(a.source == "rules:arrival_width" for a in rules(reports["time_shift"][0], []))
    assert any(a.source == "rules:decoy_gain" for a in rules(reports["pns"][0], []))


def test_normal_drift_and_benign_faults_do_not_abort(rules, reports):
    for rep in reports["normal_test"] + reports["benign_connector_loss"]:
        assert rules(rep, []) == []
    for rep in reports["benign_polarization_jump"]:
        assert all(a.severity != "abort" for a in rules(rep, []))


def test_qber_limit_acts_without_reference():
    det = make_detector("rules", {"qber_abort": 0.05})
    rep = BlockReport(block_id=1, qber_x=0.08, qber_z=0.02)
    assert [a.severity for a in det(rep, [])] == ["abort"]


def test_unfitted_rules_learn_from_history(reports):
    det = RuleDetector()
    hist = reports["normal"][:MIN_HISTORY]
    assert det(reports["blinding"][0], hist[:-1]) == []  # too little history: only the QBER limit
    assert any(a.severity == "abort" for a in det(reports["blinding"][0], hist))
    assert det(reports["normal_test"][0], hist) == []


def test_saved_rules_score_identically(rules, features, tmp_path):
    rules.save(tmp_path / "rules.pkl")
    again = load(tmp_path / "rules.pkl")
    np.testing.assert_array_equal(again.score_matrix(features["pns"]), rules.score_matrix(features["pns"]))


def test_click_estimated_checks_scale_with_the_click_count():
    from qkdctl.detect.features import FEATURE_NAMES, N_FEATURES
    from qkdctl.detect.rules import TIMING_LIMIT_MIN, Z_LIMIT_MIN

    det = RuleDetector()
    limits = {c.name: det.limits[k] for k, c in enumerate(det.checks)}
    assert limits["arrival_width"] == TIMING_LIMIT_MIN and limits["qber_excess"] == Z_LIMIT_MIN
    i = {n: k for k, n in enumerate(FEATURE_NAMES)}
    rng = np.random.default_rng(3)
    normal = rng.normal(1.0, 0.01, (200, N_FEATURES))
    normal[:, i["log10_click_prob"]] = -2.0
    det.fit(normal)
    x = np.tile(det.center, (2, 1))
    x[:, i["dt_std_ps"]] += 0.1  # the same arrival-width excess ...
    x[:, i["qber_min"]] += 0.1  # ... and QBER excess (not click-scaled)
    x[1, i["log10_click_prob"]] -= np.log10(2.0)  # ... with half the clicks (3 dB loss)
    z = det._z(x, det.center, det.scale)
    width = [c.name for c in det.checks].index("arrival_width")
    qber = [c.name for c in det.checks].index("qber_excess")
    assert z[1, width] == pytest.approx(z[0, width] / np.sqrt(2.0))
    assert z[1, qber] == pytest.approx(z[0, qber])
