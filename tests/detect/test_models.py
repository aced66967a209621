import numpy as np
import pytest

from qkdctl.core.errors import QkdInputError
from qkdctl.detect.base import load
from qkdctl.detect.factory import NAMES, DetectorSet, make_detector

ATTACKS = ("ir_5", "ir_10", "ir_25", "ir_100", "pns", "blinding", "time_shift")


@pytest.fixture(scope="module")
def logreg(labeled):
    return make_detector("logreg", {"seed": 2}).fit(*labeled)


def test_supervised_classifier_flags_attacks_not_normal(logreg, features):
    for name in ATTACKS:
        assert np.all(logreg.score_matrix(features[name]) > logreg.threshold), name
    assert np.mean(logreg.score_matrix(features["normal_test"]) > logreg.threshold) <= 0.1


def test_one_class_models_rank_blinding_above_normal(features):
    for name in ("iforest", "ocsvm"):
        det = make_detector(name, {"seed": 1}).fit(features["normal"])
        assert det.score_matrix(features["blinding"]).min() > np.median(det.score_matrix(features["normal_test"]))


def test_models_load_from_saved_state_and_score_identically(logreg, features, tmp_path):
    logreg.save(tmp_path / "logreg.pkl")
    again = make_detector("logreg", {"model_path": str(tmp_path / "logreg.pkl")})
    x = np.vstack([features["pns"], features["normal_test"]])
    np.testing.assert_array_equal(again.score_matrix(x), logreg.score_matrix(x))
    assert again.threshold == logreg.threshold
    with pytest.raises(QkdInputError, match="not 'forest'"):
        make_detector("forest", {"model_path": str(tmp_path / "logreg.pkl")})


def test_detector_set_and_engine_interface(logreg, reports, tmp_path):
    rules = make_detector("rules", {}).fit_reports(reports["normal"])
    rules.save(tmp_path / "rules.pkl")
    default = make_detector("default", {"model_dir": str(tmp_path)})
    assert any(a.source == "rules:offgate_clicks" for a in default(reports["blinding"][0], []))
    assert isinstance(make_detector("default", {}), DetectorSet)  # rules on the run's history
    both = DetectorSet([rules, logreg])
    alarms = both(reports["blinding"][0], [])
    assert {a.source for a in alarms} >= {"rules:offgate_clicks", "classical:logreg"}
    # normal blocks raise no alarm, up to the logreg's false-alarm rate (<= 10 %, tested above);
    # which one of the ten crosses the threshold depends on the simulator's random stream
    assert sum(bool(both(r, [])) for r in reports["normal_test"]) <= 1


def test_unknown_names_and_bad_training_data(features):
    with pytest.raises(QkdInputError, match="unknown detector"):
        make_detector("crystal_ball", {})
    assert "qsvc" in NAMES and "default" in NAMES
    with pytest.raises(QkdInputError, match="labels"):
        make_detector("boosting", {}).fit(features["normal"])
    with pytest.raises(QkdInputError, match="shape"):
        make_detector("iforest", {}).fit(np.zeros((5, 3)))
    with pytest.raises(QkdInputError, match="not trained"):
        make_detector("ocsvm", {}).score_matrix(features["normal"])


def test_quantum_kernel_svm_on_aer(labeled, features, tmp_path):
    # The quick QSVC (40 rows per class) ranks strong attacks above normal blocks for every
    # seed tried (AUC 0.88-1.0 over seeds 3-8), but its alarm threshold, set from a few
    # held-out normal rows, swings with the seed; so this checks the ranking, not the
    # threshold (the full-size model's alarms are measured by `qkdctl bench detect`).
    det = make_detector("qsvc", {"seed": 7, "quick": True})
    det.fit(*labeled)
    assert det.shots > 0 and det.bandwidth in (0.1, 0.25, 0.6) and np.isfinite(det.threshold)
    normal = np.ravel(det.score_matrix(features["normal_test"]))
    attack = np.concatenate([np.ravel(det.score_matrix(features[n])) for n in ("blinding", "time_shift", "ir_100")])
    auc = np.mean(attack[:, None] > normal[None, :]) + 0.5 * np.mean(attack[:, None] == normal[None, :])
    assert auc >= 0.85, auc
    det.save(tmp_path / "qsvc.pkl")
    again = load(tmp_path / "qsvc.pkl")
    x = features["pns"]
    np.testing.assert_array_equal(again.score_matrix(x), det.score_matrix(x))
