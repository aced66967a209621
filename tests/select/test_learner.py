import numpy as np
import pytest

from qkdctl.config import ConfigError, load_config, parse_config
from qkdctl.core.constants import DEFAULT_CHANNELS
from qkdctl.core.errors import QkdInputError
from qkdctl.core.keyrate import DecoySettings
from qkdctl.core.sift import sift
from qkdctl.core.tags import GateConfig
from qkdctl.engine import Engine, EngineOptions
from qkdctl.hardware import ModelHardware
from qkdctl.pipeline import BlockSettings, process_block
from qkdctl.select.learner import RefitSchedule, SelectionLearner
from qkdctl.select.objective import labelled_block
from qkdctl.select.selectors import WindowSelector
from qkdctl.store.rundb import RunDB
from tests.select.conftest import make_block

GATE = GateConfig.from_channels(DEFAULT_CHANNELS, offset_ps=300.0, width_ps=300.0)
DECOY = DecoySettings((0.5, 0.15, 0.0002), (0.5, 0.3, 0.2), 1e-6, 1e-10)


def _labelled(seed: int):
    g, a = make_block(np.random.default_rng(seed), n_slots=120_000)
    return labelled_block(g, sift(g, a, np.random.default_rng(1)))


def test_learner_refits_on_schedule_from_past_blocks_only():
    learner = SelectionLearner(RefitSchedule("optimized_window", refit_every_blocks=2, history_blocks=2), GATE)
    assert learner.selector() is None and learner.record() == {}
    assert not learner.observe(0, _labelled(0), DECOY)
    assert learner.selector() is None
    assert learner.observe(1, _labelled(1), DECOY)
    first = learner.selector()
    assert isinstance(first, WindowSelector) and learner.record()["trained_on_blocks"] == [0, 1]
    assert not learner.observe(2, _labelled(2), DECOY)
    assert learner.selector() is first  # no refit between scheduled ones
    assert learner.observe(3, _labelled(3), DECOY)
    assert learner.record()["trained_on_blocks"] == [2, 3] and learner.fits == 2


def test_learner_rejects_bad_schedule_and_out_of_order_blocks():
    with pytest.raises(QkdInputError, match="unknown"):
        RefitSchedule("oracle")
    with pytest.raises(QkdInputError, match="refit_every_blocks"):
        RefitSchedule("logistic", refit_every_blocks=0)
    learner = SelectionLearner(RefitSchedule("logistic", refit_every_blocks=3), GATE)
    learner.observe(4, _labelled(0), DECOY)
    with pytest.raises(QkdInputError, match="observed after block 4"):
        learner.observe(4, _labelled(1), DECOY)


def test_select_table_is_validated():
    with pytest.raises(ConfigError, match="select.selector"):
        parse_config({"select": {"selector": "oracle"}})
    with pytest.raises(ConfigError, match="select.refit_every_blocks"):
        parse_config({"select": {"selector": "logistic", "refit_every_blocks": 0}})
    assert parse_config({}).select.selector is None


def _engine(tmp_path, learner):
    cfg = load_config("lab_configs/sim_bench.toml")
    model = cfg.link_model(distance_km=5.0)
    model = model.__class__(**{**model.__dict__, "dark_count_prob": 2e-5})  # errors to learn from
    hw = ModelHardware(model, np.random.default_rng(3), sync_divider=100)
    settings = BlockSettings(0, 100, None, GateConfig.from_channels(DEFAULT_CHANNELS, 300.0, 400.0),
                             model.intensities, model.intensity_probs, 1e-10, 1e-15, 0.11, "cascade-biconf")
    return Engine(hw, settings, tmp_path, seed=11, options=EngineOptions(block_seconds=0.005), learner=learner)


def test_engine_selects_each_block_with_a_selector_fitted_on_earlier_blocks(tmp_path):
    learner = SelectionLearner(RefitSchedule("logistic", refit_every_blocks=2, history_blocks=2),
                               GateConfig.from_channels(DEFAULT_CHANNELS, 300.0, 400.0))
    summary = _engine(tmp_path, learner).run(blocks=5)
    assert summary.blocks == 5  # blocks without key (finite size) still teach: they verified
    with RunDB(tmp_path) as db:
        sel = [r["report"]["selection"] for r in db.blocks()]
    assert [s["selector"] for s in sel[:2]] == ["none (every gated event)"] * 2
    assert [s["fitted"].get("trained_on_blocks") for s in sel] == [None, None, [0, 1], [0, 1], [2, 3]]
    assert "refit" in sel[1] and "refit" in sel[3] and "refit" not in sel[2]
    # the selector in force for block k is the one the refit after block k-1 produced
    assert sel[2]["selector"] == "logistic" and sel[2]["fitted"] == sel[1]["refit"]
    assert sel[4]["fitted"] == sel[3]["refit"]


def test_process_block_returns_the_kept_events_with_their_errors():
    cfg = load_config("lab_configs/sim_bench.toml")
    model = cfg.link_model(distance_km=5.0)
    from qkdctl.core.linkmodel import generate_block

    alice, tags = generate_block(model, 2_000_000, np.random.default_rng(4), sync_divider=100)
    settings = BlockSettings(0, 100, None, GateConfig.from_channels(DEFAULT_CHANNELS, 300.0, 400.0),
                             model.intensities, model.intensity_probs, 1e-10, 1e-15, 0.11, "cascade-biconf")
    sel = WindowSelector(-100.0, 100.0, 100)  # drops events soon after a click
    out = process_block(0, tags, alice, settings, np.random.default_rng(9), selector=sel, learn=True)
    lb = out.labelled
    assert out.report.verified and lb is not None  # labels exist once verified, key or not
    assert len(lb.z) == sum(out.report.selection["kept"][0]) < out.report.sifted_bits_z
    assert len(lb.x) == sum(out.report.selection["kept"][1])
    assert lb.wrong_z.mean() == pytest.approx(out.report.qber_z)
    assert lb.wrong_x.mean() == pytest.approx(out.report.qber_x)
    assert np.all(lb.z.since_any_slots >= 100) and np.all(lb.x.since_any_slots >= 100)
    assert process_block(0, tags, alice, settings, np.random.default_rng(9)).labelled is None


def test_runner_builds_the_learner_from_the_select_table():
    import tomllib

    from qkdctl.runner import block_settings, make_learner

    data = tomllib.loads(open("lab_configs/sim_bench.toml", encoding="utf-8").read())
    cfg = parse_config(data)
    assert make_learner(cfg, block_settings(cfg), 0) is None
    cfg = parse_config({**data, "select": {"selector": "optimized_window", "refit_every_blocks": 3}})
    learner = make_learner(cfg, block_settings(cfg), 0)
    assert learner.schedule == RefitSchedule("optimized_window", 3, 4, cfg.protocol.ec_efficiency)
    assert learner.selector() is None
