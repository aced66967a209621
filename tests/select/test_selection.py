import numpy as np
import pytest

from qkdctl.core.constants import DEFAULT_CHANNELS
from qkdctl.core.errors import QkdInputError
from qkdctl.core.keyrate import DecoySettings, DecoyStats, key_length
from qkdctl.core.linkmodel import generate_block
from qkdctl.core.sift import sift
from qkdctl.core.tags import GateConfig
from qkdctl.pipeline import process_block
from qkdctl.select.apply import apply_selection
from qkdctl.select.features import event_features
from qkdctl.select.objective import labelled_block
from qkdctl.select.predictor import QberPredictor, sample_bits_for
from qkdctl.select.quantum import QuantumKernelModel
from qkdctl.select.selectors import (
    ScoreSelector, SklearnErrorModel, WindowSelector, fit_model_selector, fit_window,
)
from tests.select.conftest import flipped, make_block
from tests.model_bench import model_at, model_settings

GATE = GateConfig.from_channels(DEFAULT_CHANNELS, offset_ps=300.0, width_ps=300.0)
DECOY = DecoySettings((0.5, 0.15, 0.0002), (0.5, 0.3, 0.2), 1e-6, 1e-10)  # loose: small synthetic blocks


class ExactStates:
    """StateBackend of exact statevectors (qiskit.quantum_info), counting circuits."""

    def statevectors(self, circuits):
        from qiskit.quantum_info import Statevector

        return np.array([Statevector(c).data for c in circuits])


@pytest.fixture(scope="module")
def selectors():
    rng = np.random.default_rng(5)
    blocks = []
    for _ in range(2):
        g, a = make_block(rng)
        blocks.append(labelled_block(g, sift(g, a, np.random.default_rng(1))))
    logistic = SklearnErrorModel("logistic", 0).fit(*_rows(blocks))
    return [
        WindowSelector(-60.0, 80.0, 3),
        fit_window(blocks, DECOY, 1.16, GATE),
        ScoreSelector("logistic", logistic, 0.2),
        fit_model_selector("gb", SklearnErrorModel("gradient_boosting", 0), blocks, DECOY, 1.16),
        ScoreSelector("quantum", QuantumKernelModel(ExactStates(), rng).fit(*_rows(blocks)), 0.0),
    ]


def _rows(blocks):
    from qkdctl.select.selectors import training_rows
    return training_rows(blocks)


def test_selection_ignores_private_bits(selectors, block):
    gated, alice, sifted = block
    g2, a2 = flipped(gated, alice)
    sifted2 = sift(g2, a2, np.random.default_rng(3))
    np.testing.assert_array_equal(sifted.z.slot, sifted2.z.slot)
    assert np.any(sifted.z.bob_bit != sifted2.z.bob_bit)
    for sel in selectors:
        out1, rec1 = apply_selection(sel, gated, sifted)
        out2, rec2 = apply_selection(sel, g2, sifted2)
        for b in ("z", "x"):
            np.testing.assert_array_equal(getattr(out1, b).slot, getattr(out2, b).slot)
        assert rec1 == rec2


def test_fitted_selectors_drop_noisy_tails(selectors, block):
    gated, _, sifted = block
    fz, _ = event_features(gated, sifted)
    wrong = sifted.z.alice_bit != sifted.z.bob_bit
    for sel in selectors[1:]:
        keep = sel.keep(fz)
        assert 0.3 < keep.mean() < 1.0, sel.name
        assert wrong[keep].mean() < wrong.mean(), sel.name


def test_fit_window_keeps_nearly_everything_without_noise(rng):
    blocks = []
    for _ in range(2):
        g, a = make_block(rng, p_noise=0.0)
        blocks.append(labelled_block(g, sift(g, a, np.random.default_rng(1))))
    w = fit_window(blocks, DECOY, 1.16, GATE)
    for b in blocks:  # only the far jitter tail may go (statistical ties of the bound)
        assert w.keep(b.z).mean() > 0.99


def test_window_rejects_bad_edges():
    with pytest.raises(QkdInputError, match="lo_ps <= hi_ps"):
        WindowSelector(10.0, -10.0)


@pytest.fixture(scope="module")
def link_block():
    model = model_at(5.0)
    alice, tags = generate_block(model, 10_000_000, np.random.default_rng(7), sync_divider=100)
    settings = model_settings(model)
    return tags, alice, settings


def test_keep_everything_reproduces_todays_numbers(link_block):
    tags, alice, settings = link_block
    plain = process_block(0, tags, alice, settings, np.random.default_rng(11))
    kept = process_block(0, tags, alice, settings, np.random.default_rng(11),
                         selector=WindowSelector.fixed(settings.gate))
    assert plain.report.status == "ok" and plain.report.key_bits > 0
    a, b = plain.report.to_dict(), kept.report.to_dict()
    for k in ("stage_seconds", "selection"):
        a.pop(k), b.pop(k)
    assert a == b
    np.testing.assert_array_equal(plain.alice_key, kept.alice_key)
    assert kept.report.selection["kept"] == kept.report.selection["sifted"]
    assert plain.report.selection == {}


def test_key_length_on_selected_set_matches_direct_computation(link_block):
    tags, alice, settings = link_block
    sel = WindowSelector(-200.0, 200.0, min_gap_slots=30)
    out = process_block(0, tags, alice, settings, np.random.default_rng(11), selector=sel)
    rep = out.report
    assert rep.status == "ok", rep.abort_reason
    kept, sifted = rep.selection["kept"], rep.selection["sifted"]
    assert sum(kept[0]) < sum(sifted[0]) and sum(kept[1]) < sum(sifted[1])
    assert rep.sifted_bits_z == sum(sifted[0])
    # direct: redo gating and sifting by hand, drop the same events, count errors, apply Lim's bound
    from qkdctl.core.tags import gate, recover_clock
    from qkdctl.pipeline import align_record

    clock = recover_clock(tags, 0, 100)
    g = gate(tags, clock, settings.gate)
    al, _ = align_record(alice, tags, clock, g.slot, settings.mu)
    s = sift(g, al, np.random.default_rng(11))  # the pipeline's first draw from its rng
    fz, fx = event_features(g, s)
    kz, kx = (fz.since_any_slots >= 30), (fx.since_any_slots >= 30)
    wz = s.z.alice_bit != s.z.bob_bit
    wx = s.x.alice_bit != s.x.bob_bit
    stats = DecoyStats(
        n_key=tuple(np.bincount(s.z.intensity[kz], minlength=3)),
        m_key=tuple(np.bincount(s.z.intensity[kz & wz], minlength=3)),
        n_test=tuple(np.bincount(s.x.intensity[kx], minlength=3)),
        m_test=tuple(np.bincount(s.x.intensity[kx & wx], minlength=3)),
        leak_ec_bits=rep.leaked_bits,
    )
    assert list(stats.n_key) == kept[0] and list(stats.n_test) == kept[1]
    direct = key_length(stats, DecoySettings(settings.mu, settings.p_mu, settings.eps_sec, settings.eps_cor))
    assert rep.key_bits == direct.key_length_bits > 0
    assert out.alice_key.size == rep.key_bits


def test_predictor_learns_the_ratio():
    p = QberPredictor(smoothing=0.5)
    assert p.predict(0.02) == pytest.approx(0.02)
    p.observe(0.02, 0.03)
    assert p.predict(0.02) == pytest.approx(0.03)
    p.observe(0.02, 0.02)
    assert p.predict(0.04) == pytest.approx(0.04 * 1.25)
    with pytest.raises(QkdInputError, match="qber_x"):
        p.predict(float("nan"))


def test_sample_bits_for():
    assert sample_bits_for(0.02, 0.2) == int(np.ceil(4 * 0.98 / (0.02 * 0.04)))
    with pytest.raises(QkdInputError):
        sample_bits_for(0.0, 0.2)


def test_bad_inputs_raise_typed_errors(block):
    from qkdctl.select.objective import LabelledBlock

    gated, _, sifted = block
    fz, fx = event_features(gated, sifted)
    with pytest.raises(QkdInputError, match="gradient_boosting"):
        SklearnErrorModel("forest", 0)
    with pytest.raises(QkdInputError, match="no errors"):
        SklearnErrorModel("logistic", 0).fit(fz.public_matrix(), np.zeros(len(fz), bool))
    with pytest.raises(QkdInputError, match="before fit"):
        QuantumKernelModel(ExactStates(), np.random.default_rng(0)).score(fz.public_matrix())
    with pytest.raises(QkdInputError, match="do not match"):
        LabelledBlock(fz, fx, np.zeros(3, bool), np.zeros(len(fx), bool))
    with pytest.raises(QkdInputError, match="no labelled past blocks"):
        fit_window([], DECOY, 1.16, GATE)
    short = type(gated)(gated.slot[: len(gated) // 2], gated.role[: len(gated) // 2],
                        gated.dt_ps[: len(gated) // 2], gated.stats)
    with pytest.raises(QkdInputError, match="no gated click"):
        event_features(short, sifted)
