import numpy as np

from benchmarks.bench_pipeline import STAGES, make_blocks, process_all


def test_benchmark_blocks_have_qber_near_two_percent_and_every_stage_is_timed():
    blocks, sim_s, settings = make_blocks(1, 0.01, seed=3)
    assert sim_s > 0 and settings.gate.offset_ps == 0.0
    seconds, cpu_s, reports = process_all(blocks, settings, "cascade-original", seed=1)
    rep = reports[0]
    assert rep.status == "ok", rep.abort_reason
    assert 0.012 < rep.qber_z < 0.03 and 0.012 < rep.qber_x < 0.035
    assert set(STAGES) <= set(rep.stage_seconds)
    assert sum(rep.stage_seconds[k] for k in STAGES) <= seconds
    assert rep.method == "cascade-original" and np.isfinite(rep.ec_efficiency) and cpu_s > 0
