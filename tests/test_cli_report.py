import base64
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from qkdctl.blockreport import Alarm
from qkdctl.cli import app
from qkdctl.engine import Engine, EngineOptions
from qkdctl.hardware import ModelHardware
from qkdctl.report import figures
from qkdctl.report.html import load_run
from qkdctl.store.rundb import RunDB
from qkdctl.tune.base import Proposal, Tuner

from tests.model_bench import model_at, model_settings

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class StepTuner(Tuner):
    """Raises the signal attenuation by 0.5 dB after blocks 0, 2, ... (the first step is in
    force from block 3: with queue_depth 1, blocks 1 and 2 are acquired or acquiring by then)."""

    name = "step"

    def propose(self, history, params, probe=None):
        if len(history) % 2 == 1:
            return Proposal({"voa.1": params["voa.1"] + 0.5}, "test step <b>")
        return None


def _alarm(rep, history):
    return [Alarm("test-detector", "warn", "odd <script>x</script>")] if rep.block_id == 1 else []


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    model = model_at(5.0)
    hw = ModelHardware(model, np.random.default_rng(5), sync_divider=100)
    settings = model_settings(model)
    engine = Engine(hw, settings, out, seed=2, options=EngineOptions(block_seconds=0.01, queue_depth=1),
                    tuners=[StepTuner()], detectors=[_alarm],
                    config_text="[protocol]\nqber_abort_threshold = 0.09\n")
    summary = engine.run(blocks=4)
    assert summary.blocks == 4
    return out


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_report_renders_all_figures_and_tables(run_dir):
    res = CliRunner().invoke(app, ["report", str(run_dir)])
    assert res.exit_code == 0, res.output
    path = run_dir / "report.html"
    assert res.stdout.strip() == str(path)
    page = path.read_text()
    images = _images(page)
    assert len(images) == 5 and all(img.startswith(PNG_MAGIC) for img in images)
    for alt in ("QBER per basis", "key rates", "operating parameters", "reconciliation efficiency",
                "detector count rates"):
        assert f'alt="{alt}"' in page
    with RunDB(run_dir) as db:
        run = db.runs()[0]
        rows = db.blocks()
    assert run["run_id"] in page
    assert "odd &lt;script&gt;x&lt;/script&gt;" in page and "<script>" not in page
    assert "test step &lt;b&gt;" in page
    for r in rows:
        if r["key_id"]:
            assert r["key_id"] in page
    assert "cascade-biconf" in page


def test_loaded_run_matches_database(run_dir):
    data = load_run(run_dir)
    assert [b["block_id"] for b in data.blocks] == [0, 1, 2, 3]
    assert figures.varying_params(data.params) == ["voa.1"]
    assert data.params["voa.1"][0] < data.params["voa.1"][-1]
    assert len(data.alarms) == 1 and data.alarms[0]["block_id"] == 1
    assert [d["tuner"] for d in data.tuner_decisions] == ["step", "step"]
    np.testing.assert_allclose(figures.bench_time_s(data.blocks), [0.01, 0.02, 0.03, 0.04])


def test_report_to_named_file_and_unknown_run(run_dir, tmp_path):
    runner = CliRunner()
    out = tmp_path / "r.html"
    res = runner.invoke(app, ["report", str(run_dir), "--out", str(out)])
    assert res.exit_code == 0 and out.read_text().startswith("<!DOCTYPE html>")
    res = runner.invoke(app, ["report", str(run_dir), "--run", "nope"])
    assert res.exit_code == 2 and "no run 'nope'" in res.output


def test_run_without_blocks_still_reports(tmp_path):
    with RunDB(tmp_path) as db:
        db.start_run("empty", "", 1)
    res = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 0, res.output
    page = (tmp_path / "report.html").read_text()
    assert "The run has no blocks" in page and not _images(page)


@pytest.mark.parametrize("make, message", [
    (lambda d: None, "no run database"),
    (lambda d: (d / "run.sqlite").write_text("junk" * 100), "not a readable run database"),
    (lambda d: RunDB(d).close(), "holds no run"),
])
def test_bad_run_dir_is_one_line_exit_2(tmp_path, make, message):
    make(tmp_path)
    res = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 2
    assert message in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1
