"""Make docs/sim_validation.png: simulated gains and QBER vs the analytic link model.

Run: .venv/bin/python docs/make_sim_validation.py [--quick]
Each distance is one SimBench block (dead time, afterpulsing, drift, Eve off; a fixed
controller misalignment); lines are qkdctl.core.linkmodel with the block's true
misalignment.  Error bars are binomial standard errors.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from firmware_sim.bench import SimBench  # noqa: E402
from firmware_sim.config import SimConfig  # noqa: E402
from firmware_sim.validation import expected, link_model, measure  # noqa: E402

NAMES = ("signal", "decoy", "vacuum")


def config(length_km: float) -> SimConfig:
    """The validation bench at one fiber length."""
    return SimConfig.build(
        fiber={"length_km": length_km},
        source={"p_z": 0.7, "p_intensity": (0.5, 0.3, 0.2), "output_enabled": (True, True, True, False),
                "attenuation_db": (3.0103, 8.0, 30.0, 45.0)},
        p_bob_z=0.7,
        tagger={"dead_time_ps": 0, "max_rate_tags_per_s": 1e9},
        detectors=[{"efficiency": 0.3, "dark_count_hz": 2e4, "dead_time_ps": 0, "afterpulse_prob": 0.0,
                    "jitter_ps": 20.0}] * 4,
    )


def main(quick: bool) -> Path:
    distances = [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
    duration_s = 0.01 if quick else 0.05
    rows = []
    for d in distances:
        bench = SimBench(config(d), seed=int(d) + 1)
        bench.set_paddle_deg(1, 8.0)
        bench.set_paddle_deg(2, 3.0)
        block = bench.acquire(duration_s)
        rows.append((measure(bench, block), *expected(bench, block), block.truth["e_z"], bench))
    fine = np.linspace(0, 100, 101)
    fig, (ax_g, ax_q) = plt.subplots(1, 2, figsize=(11, 4.2))
    for k, name in enumerate(NAMES):
        g = np.array([r[0].gain[0, k] for r in rows])
        s = np.array([r[0].sigma(r[1])[0, k] for r in rows])
        model = [link_model(rows[0][4], rows[0][3]).at(x).expected_rates().gain_key[k] for x in fine]
        (line,) = ax_g.semilogy(fine, model, label=f"model {name}")
        ax_g.errorbar(distances, g, yerr=s, fmt="o", color=line.get_color(), label=f"sim {name}")
    ax_g.set_xlabel("fiber length (km)")
    ax_g.set_ylabel("Z-basis gain per pulse")
    ax_g.legend(fontsize=7)
    for b, basis in ((0, "Z"), (1, "X")):
        q = np.array([r[0].err[b, 0] / r[0].gain[b, 0] for r in rows])
        n_det = np.array([r[0].gain[b, 0] * r[0].sent[b, 0] for r in rows])
        q_model = np.array([r[2][b, 0] / r[1][b, 0] for r in rows])
        (line,) = ax_q.plot(distances, 100 * q_model, "-", label=f"model {basis} (signal)")
        ax_q.errorbar(distances, 100 * q, yerr=100 * np.sqrt(q * (1 - q) / n_det), fmt="o",
                      color=line.get_color(), label=f"sim {basis} (signal)")
    ax_q.set_xlabel("fiber length (km)")
    ax_q.set_ylabel("QBER (%)")
    ax_q.legend(fontsize=7)
    fig.suptitle("SimBench vs qkdctl.core.linkmodel (1 GHz, eta_det 0.3, 2e4 dark counts/s)")
    fig.tight_layout()
    out = Path(__file__).with_name("sim_validation.png")
    fig.savefig(out, dpi=110)
    return out


if __name__ == "__main__":
    print(main("--quick" in sys.argv))
