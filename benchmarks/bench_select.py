"""Event selection on the simulated bench: secret bits per block per selector vs the fixed window.

SimBench detector sets: "default" (firmware_sim DetectorConfig(): efficiency 0.25,
100 Hz dark counts, 1 % afterpulsing 10 ns + Exp(200 ns) after a click, 30 ps rms
jitter) and "noisy" (same, with 600 Hz dark counts, 4 % afterpulsing and 60 ps
jitter); a 3 degree polarization misalignment; decoy settings near the planner's
optimum at 100 km.  Per detector set and distance: the first blocks train the
selectors (labels = errors known after reconciliation), the later ones are
processed by the real pipeline with each selector.  Also: the Z bits a sampled QBER
estimate would disclose vs none with the predictor, and the reconciliation leak
with each QBER source.  Quick mode: noisy detectors at 25 km, one training and one
test block.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.common import result
from qkdctl.core.constants import DEFAULT_CHANNELS
from qkdctl.core.keyrate import DecoySettings
from qkdctl.core.sift import sift
from qkdctl.core.tags import GateConfig, gate, recover_clock
from qkdctl.core.timing import find_arrival_peak
from qkdctl.pipeline import BlockSettings, align_record, process_block
from qkdctl.select.objective import labelled_block
from qkdctl.select.predictor import QberPredictor, sample_bits_for
from qkdctl.select.quantum import AerStateBackend, QuantumKernelModel
from qkdctl.select.selectors import SklearnErrorModel, WindowSelector, fit_model_selector, fit_window

MU = (0.47, 0.17, 2e-4)
P_MU = (0.1, 0.5, 0.4)
P_Z = 0.7
GATE_WIDTH_PS = 300.0
F_EC = 1.16
BLOCK_S = {25.0: 0.05, 100.0: 0.6}  # simulated seconds per block (~1e5 key-basis bits)


DETECTORS = {"default": {}, "noisy": {"dark_count_hz": 600.0, "afterpulse_prob": 0.04, "jitter_ps": 60.0}}


def _bench(km: float, detectors: str, seed: int):
    from firmware_sim.bench import SimBench
    from firmware_sim.config import DetectorConfig, FiberConfig, SimConfig, SourceConfig

    det = DetectorConfig(**DETECTORS[detectors])
    cfg = SimConfig(source=SourceConfig(p_intensity=P_MU, p_z=P_Z, sync_divider=1000),
                    fiber=FiberConfig(length_km=km), p_bob_z=P_Z, detectors=(det,) * 4,
                    max_slots_per_acquire=2_000_000_000)
    b = SimBench(cfg, seed)
    for ch, m in enumerate(MU, start=1):
        b.set_attenuation_db(ch, -10.0 * np.log10(m))
        b.set_output_enabled(ch, True)
    b.set_paddle_deg(1, 3.0)
    return b


def _finite(x: float) -> float | None:
    """x, or None when it is not finite (JSON has no NaN)."""
    return float(x) if np.isfinite(x) else None


def _labelled(blk, g: GateConfig):
    c = recover_clock(blk.tags, 0, 1000)
    gd = gate(blk.tags, c, g)
    al, _ = align_record(blk.alice, blk.tags, c, gd.slot, MU)
    return labelled_block(gd, sift(gd, al, np.random.default_rng(0)))


def run(quick: bool) -> list[dict]:
    out = []
    cases = [("noisy", 25.0)] if quick else [(d, km) for d in DETECTORS for km in (25.0, 100.0)]
    for dets, km in cases:
        out.extend(_case(dets, km, *((1, 1) if quick else (2, 3))))
    return out


def _case(dets: str, km: float, n_train: int, n_test: int) -> list[dict]:
    out = []
    bench = _bench(km, dets, seed=int(km))
    blocks = [bench.acquire(BLOCK_S[km]) for _ in range(n_train + n_test)]
    clock = recover_clock(blocks[0].tags, 0, 1000)
    period = clock.period_ps
    off = find_arrival_peak(blocks[0].tags, clock, [1, 2, 3, 4]).offset_ps
    off = (off + period / 2) % period - period / 2  # peak at a slot edge: keep slots numbered right
    g = GateConfig.from_channels(DEFAULT_CHANNELS, off, GATE_WIDTH_PS)
    settings = BlockSettings(0, 1000, None, g, MU, P_MU, 1e-10, 1e-15, 0.11, "cascade-biconf")
    decoy = DecoySettings(MU, P_MU, 1e-10, 1e-15)
    train = [_labelled(b, g) for b in blocks[:n_train]]
    fit_s = {}
    t0 = time.perf_counter()
    selectors = [WindowSelector.fixed(g), fit_window(train, decoy, F_EC, g)]
    fit_s["optimized_window"] = time.perf_counter() - t0
    for name, model in (("gradient_boosting", SklearnErrorModel("gradient_boosting", 0)),
                        ("logistic", SklearnErrorModel("logistic", 0)),
                        ("quantum_kernel", QuantumKernelModel(AerStateBackend(), np.random.default_rng(1)))):
        t0 = time.perf_counter()
        selectors.append(fit_model_selector(name, model, train, decoy, F_EC))
        fit_s[name] = time.perf_counter() - t0
    predictor = QberPredictor()
    for lb in train:
        predictor.observe(float(np.mean(lb.wrong_x)), float(np.mean(lb.wrong_z)))
    base = None
    for sel in selectors:
        bits, qk, fails, secs, leaks = [], [], 0, 0.0, []
        for blk in blocks[n_train:]:
            t0 = time.perf_counter()
            rep = process_block(blk.block_id, blk.tags, blk.alice, settings, np.random.default_rng(9),
                                selector=sel).report
            secs += time.perf_counter() - t0
            bits.append(rep.key_bits)
            qk.append(rep.qber_z)
            leaks.append(rep.leaked_bits)
            fails += int("reconciliation failed" in rep.abort_reason or "verification failed" in rep.abort_reason)
        mean_bits = float(np.mean(bits))
        if base is None:
            base = (mean_bits, secs)
        out.append(result(
            f"select {sel.name} {dets} {km:g} km", len(bits), secs, "blocks/s", "fixed", base[1],
            detectors=dets, distance_km=km, secret_bits_per_block=mean_bits,
            gain_vs_fixed=(mean_bits / base[0] - 1.0) if base[0] > 0 else None,
            qber_kept=_finite(np.nanmean(qk)), failed_verifications=fails,
            leaked_bits_per_block=float(np.mean(leaks)), fit_seconds=fit_s.get(sel.name, 0.0),
            params=sel.describe(),
        ))
    # QBER for reconciliation: disclosed Z sample vs prediction (no disclosure), fixed window
    blk = blocks[n_train]
    rep0 = process_block(blk.block_id, blk.tags, blk.alice, settings, np.random.default_rng(9)).report
    q_true = rep0.qber_z
    k = sample_bits_for(max(q_true, 1e-3), 0.2)
    leak = {}
    for src, q in (("x_basis", None), ("predicted", predictor.predict(rep0.qber_x)),
                   ("sampled", float(np.random.default_rng(2).binomial(k, q_true)) / k)):
        t0 = time.perf_counter()
        r = process_block(blk.block_id, blk.tags, blk.alice, settings, np.random.default_rng(9),
                          qber_prior=q).report
        leak[src] = (r.leaked_bits, time.perf_counter() - t0, q)
    out.append(result(
        f"select qber-prediction {dets} {km:g} km", 1, leak["predicted"][1], "blocks/s", "sampled", leak["sampled"][1],
        detectors=dets, distance_km=km, qber_true=q_true, disclosed_z_bits_sampled=k, disclosed_z_bits_predicted=0,
        leak_bits={s: v[0] for s, v in leak.items()}, qber_used={s: v[2] for s, v in leak.items()},
        leakage_saved_bits=leak["sampled"][0] + k - leak["predicted"][0],
    ))
    return out
