"""Event selection on the simulated bench: secret bits per block per selector vs the fixed window.

SimBench detector sets: "default" (firmware_sim DetectorConfig(): efficiency 0.25,
100 Hz dark counts, 1 % afterpulsing 10 ns + Exp(200 ns) after a click, 30 ps rms
jitter) and "noisy" (same, with 600 Hz dark counts, 4 % afterpulsing and 60 ps
jitter); a 3 degree polarization misalignment; the decoy settings MU, P_MU, P_Z
below (not the optimum of either link: the "choice" rows show by how much).  Per detector set and distance: the first blocks train the
selectors (labels = errors known after reconciliation), the later ones are
processed by the real pipeline with each selector.  Also: the Z bits a sampled QBER
estimate would disclose vs none with the predictor, and the reconciliation leak
with each QBER source.  Quick mode: noisy detectors at 25 km, one training and one
test block.

Two more rows per case put the selectors in proportion:
- "oracle": the same bench with dark counts and afterpulsing switched off, fixed
  window -- what a selector that dropped exactly the noise clicks (and no signal)
  would reach, the ceiling of any event selection;
- "choice": Alice's settings adapted to the link (qkdctl.select.choice): the decoy
  optimizer, fed with the first training block's public figures, proposes the
  intensities alone ("choice-mu") or intensities, their probabilities and P(Z)
  ("choice-full"); the bench applies them between blocks and the next blocks
  (same link time each) go through the pipeline with the fixed window and with the
  selectors fitted before.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from benchmarks.common import result
from qkdctl.core.constants import DEFAULT_CHANNELS
from qkdctl.core.keyrate import DecoySettings
from qkdctl.core.sift import sift
from qkdctl.core.tags import GateConfig, gate, recover_clock
from qkdctl.core.timing import find_arrival_peak
from qkdctl.pipeline import BlockSettings, align_record, process_block
from qkdctl.select.choice import propose_choice
from qkdctl.select.objective import labelled_block
from qkdctl.select.predictor import QberPredictor, sample_bits_for
from qkdctl.select.quantum import AerStateBackend, QuantumKernelModel
from qkdctl.select.selectors import SklearnErrorModel, WindowSelector, fit_model_selector, fit_window
from qkdctl.tune.decoy import DecoyChoice, ProtocolConstants

MU = (0.47, 0.17, 2e-4)
P_MU = (0.1, 0.5, 0.4)
P_Z = 0.7
GATE_WIDTH_PS = 300.0
F_EC = 1.16
BLOCK_S = {25.0: 0.05, 100.0: 0.6}  # simulated seconds per block (~1e5 key-basis bits)


DETECTORS = {"default": {}, "noisy": {"dark_count_hz": 600.0, "afterpulse_prob": 0.04, "jitter_ps": 60.0}}


def _bench(km: float, detectors: str, seed: int, noise: bool = True):
    """SimBench at km with the named detector set (noise=False: no dark counts, no afterpulses)."""
    from firmware_sim.bench import SimBench
    from firmware_sim.config import DetectorConfig, FiberConfig, SimConfig, SourceConfig

    det = DetectorConfig(**DETECTORS[detectors])
    if not noise:
        det = det.model_copy(update={"dark_count_hz": 0.0, "afterpulse_prob": 0.0})
    cfg = SimConfig(source=SourceConfig(p_intensity=P_MU, p_z=P_Z, sync_divider=1000),
                    fiber=FiberConfig(length_km=km), p_bob_z=P_Z, detectors=(det,) * 4,
                    max_slots_per_acquire=2_000_000_000)
    b = SimBench(cfg, seed)
    _apply_choice(b, DecoyChoice(MU, P_MU, P_Z))
    b.set_paddle_deg(1, 3.0)
    return b


def _apply_choice(bench, choice: DecoyChoice) -> None:
    """Alice's settings on the simulated bench between blocks: intensities through the VOA,
    probabilities and P(Z) (Alice's pattern, Bob's passive splitter) through its SimConfig."""
    for ch, m in enumerate(choice.mu, start=1):
        bench.set_attenuation_db(ch, -10.0 * np.log10(m))
        bench.set_output_enabled(ch, True)
    cfg = bench.config
    bench.config = cfg.model_copy(update={
        "source": cfg.source.model_copy(update={"p_intensity": choice.p_mu, "p_z": choice.key_basis_prob}),
        "p_bob_z": choice.key_basis_prob})


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


def _acquired(bench, km: float, n: int):
    """n blocks acquired one at a time (a 100 km block holds ~2 GB of Alice's record)."""
    for _ in range(n):
        yield bench.acquire(BLOCK_S[km])


def _rows(tag: str, dets: str, km: float, blocks, selectors: list, settings: BlockSettings,
          base: list, fit_s: dict) -> list[dict]:
    """One result per selector on the blocks (each block processed by every selector, then
    dropped); base = [mean bits, seconds] of the fixed window on the baseline blocks (filled
    by the first call)."""
    acc = {sel.name: {"bits": [], "qk": [], "leaks": [], "fails": 0, "secs": 0.0} for sel in selectors}
    for blk in blocks:
        for sel in selectors:
            a = acc[sel.name]
            t0 = time.perf_counter()
            rep = process_block(blk.block_id, blk.tags, blk.alice, settings, np.random.default_rng(9),
                                selector=sel).report
            a["secs"] += time.perf_counter() - t0
            a["bits"].append(rep.key_bits)
            a["qk"].append(rep.qber_z)
            a["leaks"].append(rep.leaked_bits)
            a["fails"] += int("reconciliation failed" in rep.abort_reason
                              or "verification failed" in rep.abort_reason)
        del blk
    out = []
    for sel in selectors:
        a = acc[sel.name]
        mean_bits = float(np.mean(a["bits"]))
        if not base:
            base.extend((mean_bits, a["secs"]))
        out.append(result(
            f"select {tag}{sel.name} {dets} {km:g} km", len(a["bits"]), a["secs"], "blocks/s", "fixed", base[1],
            detectors=dets, distance_km=km, settings=tag.strip() or "baseline",
            secret_bits_per_block=mean_bits,
            gain_vs_fixed=(mean_bits / base[0] - 1.0) if base[0] > 0 else None,
            qber_kept=_finite(np.nanmean(a["qk"])), failed_verifications=a["fails"],
            leaked_bits_per_block=float(np.mean(a["leaks"])), fit_seconds=fit_s.get(sel.name, 0.0),
            params=sel.describe(), mu=list(settings.mu), p_mu=list(settings.p_mu),
        ))
    return out


def _case(dets: str, km: float, n_train: int, n_test: int) -> list[dict]:
    out = []
    bench = _bench(km, dets, seed=int(km))
    train, rep_train, g = [], None, None
    for blk in _acquired(bench, km, n_train):
        if g is None:
            clock = recover_clock(blk.tags, 0, 1000)
            period = clock.period_ps
            off = find_arrival_peak(blk.tags, clock, [1, 2, 3, 4]).offset_ps
            off = (off + period / 2) % period - period / 2  # peak at a slot edge: keep slots numbered right
            g = GateConfig.from_channels(DEFAULT_CHANNELS, off, GATE_WIDTH_PS)
            settings = BlockSettings(0, 1000, None, g, MU, P_MU, 1e-10, 1e-15, 0.11, "cascade-biconf")
            rep_train = process_block(blk.block_id, blk.tags, blk.alice, settings, np.random.default_rng(9)).report
        train.append(_labelled(blk, g))
        del blk
    decoy = DecoySettings(MU, P_MU, 1e-10, 1e-15)
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
    base: list = []
    out.extend(_rows("", dets, km, _acquired(bench, km, n_test), selectors, settings, base, fit_s))
    out.append(_qber_prediction(bench.acquire(BLOCK_S[km]), settings, predictor, dets, km))
    # ceiling of event selection: the same link with noise-free detectors
    clean = _bench(km, dets, seed=int(km), noise=False)
    out.extend(_rows("oracle-", dets, km, _acquired(clean, km, n_test), selectors[:1], settings, base, fit_s))
    del clean
    # Alice's settings adapted to the link measured by the first training block
    ap_in_gate = DETECTORS[dets].get("afterpulse_prob", 0.01) * GATE_WIDTH_PS / period
    held = DecoyChoice(MU, P_MU, P_Z)
    best_sel = [s for s in selectors if s.name in ("fixed", "optimized_window", "logistic")]
    for tag, probs in (("choice-mu ", False), ("choice-full ", True)):
        prop = propose_choice(rep_train, held, ap_in_gate, rep_train.sifted_bits_z, ProtocolConstants(), probs)
        _apply_choice(bench, prop.choice)
        s_new = replace(settings, mu=prop.choice.mu, p_mu=prop.choice.p_mu)
        rows = _rows(tag, dets, km, _acquired(bench, km, n_test), best_sel, s_new, base, fit_s)
        _apply_choice(bench, held)
        for r in rows:
            r.update(key_basis_prob=prop.choice.key_basis_prob,
                     predicted_gain=prop.rate_per_pulse / prop.rate_held_per_pulse - 1.0)
        out.extend(rows)
    return out


def _qber_prediction(blk, settings: BlockSettings, predictor: QberPredictor, dets: str, km: float) -> dict:
    """QBER for reconciliation on one block: disclosed Z sample vs prediction (no disclosure), fixed window."""
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
    return result(
        f"select qber-prediction {dets} {km:g} km", 1, leak["predicted"][1], "blocks/s", "sampled", leak["sampled"][1],
        detectors=dets, distance_km=km, qber_true=q_true, disclosed_z_bits_sampled=k, disclosed_z_bits_predicted=0,
        leak_bits={s: v[0] for s, v in leak.items()}, qber_used={s: v[2] for s, v in leak.items()},
        leakage_saved_bits=leak["sampled"][0] + k - leak["predicted"][0],
    )
