import numpy as np
import pytest

from qkdctl.blockreport import BlockReport
from qkdctl.core.errors import QkdInputError
from qkdctl.detect.features import FEATURE_NAMES, N_FEATURES, extract, extract_many
from qkdctl.detect.scenarios import generate
from tests.detect.conftest import make_bench


def test_vector_shape_and_names(reports):
    x = extract(reports["normal"][0])
    assert x.shape == (N_FEATURES,) == (len(FEATURE_NAMES),)
    assert np.all(np.isfinite(x))


def test_report_without_telemetry_is_rejected():
    with pytest.raises(QkdInputError, match="telemetry"):
        extract(BlockReport(block_id=3))


def test_timing_shift_is_measured_from_history(reports):
    rep = reports["normal"][0]
    i = FEATURE_NAMES.index("dt_shift_ps")
    base = abs(np.mean(rep.telemetry["dt_mean_ps"]))
    assert extract(rep)[i] == pytest.approx(base)
    assert extract(rep, reports["normal"][1:6])[i] < 2.0


def test_attacks_move_the_features_they_should(features):
    def med(name, feat):
        return np.median(features[name][:, FEATURE_NAMES.index(feat)])

    assert med("ir_25", "qber_min") > med("normal", "qber_min") + 0.04
    assert med("pns", "gain_ratio_decoy") < 0.9 * med("normal", "gain_ratio_decoy")
    assert med("blinding", "offgate_fraction") < 0.1 * med("normal", "offgate_fraction")
    assert med("time_shift", "dt_std_ps") > med("normal", "dt_std_ps") + 5
    # benign connector loss changes the rate, not the ratios
    assert med("benign_connector_loss", "log10_click_prob") < med("normal", "log10_click_prob") - 0.2
    assert med("benign_connector_loss", "gain_ratio_decoy") == pytest.approx(med("normal", "gain_ratio_decoy"),
                                                                              rel=0.05)


def test_scenarios_are_reproducible_and_named():
    a = extract_many(generate("ir_10", 1, make_bench, seed=9, block_seconds=2e-4))
    b = extract_many(generate("ir_10", 1, make_bench, seed=9, block_seconds=2e-4))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(QkdInputError, match="unknown scenario"):
        generate("eve_everywhere", 1, make_bench, seed=1)
