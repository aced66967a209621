"""Probe measurements offered by the engine to tuners (qkdctl.probe) on the model bench."""

import threading
import time

import numpy as np
import pytest

from qkdctl.blockreport import BlockReport
from qkdctl.config import load_config
from qkdctl.core.errors import ConfigError, QkdInputError
from qkdctl.hardware import ModelHardware
from qkdctl.probe import ProbeSession
from qkdctl.store.keystore import KeyStore
from qkdctl.store.rundb import RunDB
from qkdctl.tune.base import ProbeBudgetError, Proposal, Tuner

from tests.model_bench import model_at, model_engine

PROBE_VOA1_DB = 6.0  # signal 4x weaker during the probes


class ProbingTuner(Tuner):
    """Probes the signal attenuation at PROBE_VOA1_DB `probes` times a block; keeps everything."""

    name = "prober"

    def __init__(self, probes: int, duration_s: float = 0.004, probe_budget: int | None = None) -> None:
        self.probes, self.duration_s = probes, duration_s
        self.probe_budget = probes if probe_budget is None else probe_budget
        self.seen = []  # (params offered, probe reports)

    def propose(self, history, params, probe=None):
        reps = [probe({"voa.1": PROBE_VOA1_DB}, self.duration_s) for _ in range(self.probes)]
        self.seen.append((dict(params), reps))
        return Proposal({}, "probed only", probes_used=len(reps))


class LockCheckingHardware(ModelHardware):
    """Model bench that fails if two acquisitions, or an apply and an acquisition, overlap."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.busy = threading.Lock()
        self.overlaps = 0

    def _exclusive(self, fn, *args):
        if not self.busy.acquire(blocking=False):
            self.overlaps += 1
            return fn(*args)
        try:
            time.sleep(0.002)  # widen the window an interleaving would hit
            return fn(*args)
        finally:
            self.busy.release()

    def acquire(self, duration_s):
        return self._exclusive(super().acquire, duration_s)

    def apply(self, params):
        return self._exclusive(super().apply, params)


def _engine(tmp_path, tuners, hw_class=ModelHardware, **opts):
    return model_engine(tmp_path, model_at(5.0), tuners=tuners, hw_class=hw_class, **opts)


def test_probes_are_measured_with_their_parameters_and_restored(tmp_path):
    tuner = ProbingTuner(probes=2)
    eng = _engine(tmp_path, [tuner], max_probe_s=0.003)
    voa1 = eng.hw.params()["voa.1"]
    summary = eng.run(blocks=3)
    assert summary.status == "ok" and summary.secret_bits > 0 and summary.probes == 6
    assert len(tuner.seen) == 3
    for params, reps in tuner.seen:
        assert params["voa.1"] == voa1  # the tuner never sees a probe's parameters as in force
        for r in reps:
            assert r.status == "probe" and r.key_bits == 0 and r.key_id == ""
            assert r.params["voa.1"] == PROBE_VOA1_DB
            assert r.duration_s == 0.003  # 4 ms asked, cut to max_probe_s
            assert r.counts["click_matrix"] is not None and np.isfinite(r.qber_z) and np.isfinite(r.qber_x)
    assert eng.hw.params()["voa.1"] == voa1
    with RunDB(tmp_path) as db:
        rows = db.blocks()
    for row in rows:
        assert row["report"]["params"]["voa.1"] == voa1  # key blocks ran at the restored settings
        assert row["report"]["probes"] == 2 and row["report"]["probe_seconds"] == pytest.approx(0.006)
    # probe signal gain is 10^(-6/10) of the blocks' (Z basis, signal class), within noise
    block_gain = np.mean([r["report"]["gains_by_intensity"]["z"][0] for r in rows])
    probe_gain = np.mean([r.gains_by_intensity["z"][0] for _, reps in tuner.seen for r in reps])
    assert probe_gain / block_gain == pytest.approx(10 ** (-(PROBE_VOA1_DB - voa1) / 10), rel=0.15)


def test_probes_never_write_key(tmp_path):
    plain = _engine(tmp_path / "plain", []).run(blocks=2)
    probed = _engine(tmp_path / "probed", [ProbingTuner(probes=3)]).run(blocks=2)
    assert probed.probes == 6
    for run, summary in (("plain", plain), ("probed", probed)):
        ids = KeyStore(tmp_path / run / "keys" / "alice").ids()
        assert len(ids) == summary.blocks - summary.blocks_aborted == 2
        with RunDB(tmp_path / run) as db:
            assert db.key_ids() == set(ids)
            assert [r["status"] for r in db.blocks()] == ["ok", "ok"]


def test_probe_beyond_the_budget_is_refused_and_recorded(tmp_path):
    tuner = ProbingTuner(probes=3, probe_budget=2)  # claims 2, asks 3
    summary = _engine(tmp_path, [tuner], probe_budget=2).run(blocks=2)
    assert summary.status == "ok" and summary.probes == 4
    with RunDB(tmp_path) as db:
        rows = db.blocks()
    for row in rows:
        assert row["report"]["probes"] == 2
        assert any(a["source"] == "tuner:prober" and "budget of 2 probes" in a["message"]
                   for a in row["report"]["alarms"])
        assert not row["report"]["tuner"]  # the refused tuner's proposal is dropped


def test_session_refuses_beyond_budget_bad_duration_and_unknown_parameters():
    cfg = load_config("lab_configs/sim_bench.toml")
    hw = ModelHardware(cfg.link_model(distance_km=5.0), np.random.default_rng(1), sync_divider=100)
    made = []
    session = ProbeSession(hw, threading.Lock(), budget=1, max_probe_s=1e-4,
                           process=lambda acq: made.append(acq) or BlockReport(acq.block_id),
                           defaults={"gate.width_ps": 400.0})
    with pytest.raises(QkdInputError, match="duration_s"):
        session({"voa.1": 3.0}, 0.0)
    with pytest.raises(QkdInputError, match="block.seconds"):
        session({"block.seconds": 1.0}, 1e-4)
    with pytest.raises(QkdInputError, match="nope"):
        session({"nope": 1.0}, 1e-4)
    voa1 = hw.params()["voa.1"]
    rep = session({"voa.1": 3.0, "gate.width_ps": 200.0}, 1e-4)
    assert rep.params["voa.1"] == 3.0 and rep.params["gate.width_ps"] == 200.0
    assert hw.params()["voa.1"] == voa1 and hw.params()["gate.width_ps"] == 400.0
    with pytest.raises(ProbeBudgetError, match="budget of 1"):
        session({"voa.1": 3.0}, 1e-4)
    assert session.used == len(made) == 1


def test_tuners_wanting_more_than_the_budget_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="probe_budget is 3"):
        _engine(tmp_path, [ProbingTuner(probes=2), ProbingTuner(probes=2)], probe_budget=3)


def test_probes_and_acquisitions_never_interleave(tmp_path):
    eng = _engine(tmp_path, [ProbingTuner(probes=3, duration_s=0.002)], hw_class=LockCheckingHardware,
                  queue_depth=3)
    summary = eng.run(blocks=4)
    assert summary.probes == 12
    assert eng.hw.overlaps == 0


def test_report_shows_the_probes(tmp_path):
    from qkdctl.report.html import load_run, render_html

    _engine(tmp_path, [ProbingTuner(probes=2)], max_probe_s=0.003).run(blocks=3)
    page = render_html(load_run(tmp_path))
    assert "tuner probes" in page and "6 (0.018 s of bench time)" in page


def test_secret_rate_counts_the_probes_bench_time(tmp_path):
    summary = _engine(tmp_path, [ProbingTuner(probes=2)], max_probe_s=0.003).run(blocks=2)
    assert summary.acquired_s == pytest.approx(2 * 0.01 + 4 * 0.003)
    assert summary.as_dict()["secret_rate_bps"] == pytest.approx(summary.secret_bits / 0.032)
