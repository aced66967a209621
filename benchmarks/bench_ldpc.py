"""LDPC syndrome decoding: the numba layered decoder against ldpc.BpDecoder, and blind f.

Sweep (declarative below): for each frame size and QBER, frames are laid out by
`choose_layout` at efficiency F_DECODE (the family code, puncturing and shortening the
protocol would use), Bob's copy has i.i.d. errors at the nominal QBER (seeded generator),
and each decoder gets the same frames: the layered decoder one frame per call (1 thread)
and all frames in one `decode_many` call (one numba thread per frame, all of numba's
threads).  Figures per decoder: frame error rate (keys not recovered), mean BP
iterations, throughput in key bits per second of decoding wall time (syndrome building
excluded) and of process CPU time (`cpu_rate`, all threads summed: on a loaded machine the
wall figure is what this process got, the CPU figure what the code costs), CPU ns per edge
per iteration, and the 1-minute load average.  Baseline: ldpc.BpDecoder (product-sum,
flooding, the `ldpc` package, v2) on the same frames in the same run.

Protocol rows: `runs` keys of n = 1e5 bits (i.i.d. errors at the QBER) through both roles
over the authenticated direct channel, for "ldpc-blind" and, as baseline in the same run,
the one-shot "ldpc" (f = 1.2): mean and max f (against each key's true error rate), FER
after verification, frame FER, round trips, wall and CPU throughput, load average.
Codes come from the on-disk cache (built by PEG on first use, which is not timed).

Quasi-cyclic rows (`docs/ldpc.md`, "QC codes and the vectorized decoder"): frames at
F_DECODE on the QC family code (QC_BASE_COLUMNS base columns, circulants of frame_n / 256),
decoded by the generic layered decoder (baseline: the same frames, the same graph with the
shortened blocks left out) and by `QcSyndromeDecoder` with each phi; and the blind protocol
on QC codes (`QC_METHODS`, "ldpc-blind" first) against "ldpc-blind-peg" (the PEG codes), on
the same keys.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace

import numba
import numpy as np

from benchmarks.common import result
from qkdctl.core.reconcile.ldpc import (
    SyndromeDecoder, candidate_rates, choose_layout, error_priors, frame_bits, syndrome,
)
from qkdctl.core.reconcile.qc_decoder import PHI_MODES, QcSyndromeDecoder
from qkdctl.protocol.ldpc_roles import VARIANTS, LdpcVariant, family_code, ldpc_method
from qkdctl.protocol.reconcile import efficiency, reconcile

F_DECODE = 1.15
QBERS = (0.01, 0.02, 0.03, 0.05, 0.08)
FRAME_SIZES = (16384, 65536)
FRAMES = 20
QUICK_QBERS = (0.02, 0.05)
QUICK_FRAME_SIZES = (16384,)
QUICK_FRAMES = 4
BLIND_N = 100_000
BLIND_RUNS = 10
QUICK_BLIND_RUNS = 2
QC_BASE_COLUMNS = 256
QC_QBERS = (0.02, 0.03, 0.05)
QC_FRAME_SIZES = (65536,)
QUICK_QC_FRAME_SIZES = (16384,)
QC_BLIND_RUNS = 20
QUICK_QC_BLIND_RUNS = 1
# blind protocol on QC codes: (name, variant); "ldpc-blind-peg" (PEG codes) is the baseline
QC_METHODS: tuple[tuple[str, LdpcVariant], ...] = tuple(
    (f"ldpc-blind qc {phi} f_start {f_start}",
     replace(VARIANTS["ldpc-blind"], name=f"ldpc-blind-qc-{phi}-{f_start}", qc_phi=phi, f_start=f_start))
    for phi, f_start in (("tanh", 1.08), ("poly", 1.08), ("table", 1.08), ("tanh", 1.06), ("poly", 1.06))
)


def _frames(frame_n: int, qber: float, count: int, seed: int, qc_base_columns: int = 0):
    v = VARIANTS["ldpc-blind"]
    codes = {r: family_code(r, frame_n, qc_base_columns=qc_base_columns)
             for r in candidate_rates(v.rates, frame_n, frame_n, qber, F_DECODE)}
    lay = choose_layout(codes, 10**9, qber, F_DECODE, v.punct_fraction)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        ka = rng.integers(0, 2, lay.k, dtype=np.uint8)
        kb = ka ^ (rng.random(lay.k) < qber).astype(np.uint8)
        pad = rng.integers(0, 2, lay.punct_pos.size, dtype=np.uint8)
        y = frame_bits(lay, kb, np.zeros_like(pad))
        target = syndrome(lay.code, frame_bits(lay, ka, pad)) ^ syndrome(lay.code, y)
        out.append((ka, y, target))
    return lay, out


def _decode_all(dec: SyndromeDecoder | QcSyndromeDecoder, lay, frames, qber: float, batch: bool = False,
                edges: int | None = None) -> dict:
    """Decode every frame (one call per frame, or all in one `decode_many` call if `batch`).

    `edges`: edges of the decoder's graph (default: all of the code's)."""
    priors = error_priors(lay, qber)
    dec.decode(frames[0][2], priors)  # warm-up (JIT)
    if batch:  # two frames: the batch kernel (one frame runs the single-frame kernel)
        dec.decode_many([frames[0][2]] * 2, [priors] * 2)
    t0, c0 = time.perf_counter(), time.process_time()
    if batch:
        results = dec.decode_many([t for _, _, t in frames], [priors] * len(frames))
    else:
        results = [dec.decode(t, priors) for _, _, t in frames]
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    failed = sum(int(not (r.converged and np.array_equal((y ^ r.error)[lay.key_pos], ka)))
                 for (ka, y, _), r in zip(frames, results))
    iters = sum(r.iterations for r in results)
    return {"seconds": seconds, "cpu_seconds": cpu, "fer": failed / len(frames),
            "iterations": iters / len(frames),
            "ns_per_edge_iteration": cpu / (iters * (edges or lay.code.h.nnz)) * 1e9}


def run(quick: bool) -> list[dict]:
    """Decoder sweep (layered, 1 thread and all threads, vs ldpc.BpDecoder) and the blind protocol."""
    out: list[dict] = []
    frames_per = QUICK_FRAMES if quick else FRAMES
    for frame_n in QUICK_FRAME_SIZES if quick else FRAME_SIZES:
        for qber in QUICK_QBERS if quick else QBERS:
            lay, frames = _frames(frame_n, qber, frames_per, seed=int(frame_n + qber * 1e4))
            base = _decode_all(SyndromeDecoder(lay.code, backend="ldpc"), lay, frames, qber)
            ours = _decode_all(SyndromeDecoder(lay.code), lay, frames, qber)
            many = _decode_all(SyndromeDecoder(lay.code), lay, frames, qber, batch=True)
            for name, fig, threads in (("ldpc.BpDecoder", base, 1), ("layered", ours, 1),
                                       ("layered decode_many", many, numba.get_num_threads())):
                out.append(result(
                    f"ldpc decode {name} q={qber:g} n={frame_n}", lay.k * len(frames), fig["seconds"],
                    "bit/s", "ldpc.BpDecoder", base["seconds"], decoder=name, threads=threads,
                    qber=qber, frame_n=frame_n, code_rate=lay.code.rate, key_bits=lay.k, f=F_DECODE,
                    frames=len(frames), fer=fig["fer"], iterations=fig["iterations"],
                    cpu_rate=lay.k * len(frames) / fig["cpu_seconds"],
                    ns_per_edge_iteration=fig["ns_per_edge_iteration"], load_avg=os.getloadavg()[0],
                ))
    for qber in QUICK_QBERS if quick else QBERS:
        out.extend(_blind(qber, QUICK_BLIND_RUNS if quick else BLIND_RUNS))
    for frame_n in QUICK_QC_FRAME_SIZES if quick else QC_FRAME_SIZES:
        for qber in QUICK_QBERS if quick else QC_QBERS:
            out.extend(_qc_decode(frame_n, qber, frames_per))
    for qber in QUICK_QBERS[:1] if quick else QC_QBERS:
        out.extend(_qc_blind(qber, QUICK_QC_BLIND_RUNS if quick else QC_BLIND_RUNS))
    for qber in QUICK_QBERS[:1] if quick else QC_QBERS:
        out.extend(_threads(qber, QUICK_QC_BLIND_RUNS if quick else QC_BLIND_RUNS))
    return out


def _threads(qber: float, runs: int) -> list[dict]:
    """`runs` keys through "ldpc-blind" on one numba thread (baseline) and on all of them.

    A key's frames decode one per thread, so the wall figure on all threads is what two
    idle cores give; on a loaded machine it is what this process got (see `load_avg`)."""
    threads = numba.get_num_threads()
    figures = {}
    for count in (1, threads):
        numba.set_num_threads(count)
        try:
            figures[count] = _protocol("ldpc-blind", qber, runs)
        finally:
            numba.set_num_threads(threads)
    return [result(
        f"ldpc-blind threads={count} q={qber:g} n={BLIND_N}", BLIND_N * runs, fig["seconds"], "bit/s",
        "ldpc-blind threads=1", figures[1]["seconds"], method="ldpc-blind", qber=qber, n=BLIND_N,
        runs=runs, threads=count, **{k: v for k, v in fig.items() if k != "seconds"},
    ) for count, fig in figures.items()]


def _qc_decode(frame_n: int, qber: float, count: int) -> list[dict]:
    """Frames on the QC code: generic layered decoder (baseline) vs QcSyndromeDecoder per phi."""
    lay, frames = _frames(frame_n, qber, count, seed=int(frame_n + qber * 1e4) + 1, qc_base_columns=QC_BASE_COLUMNS)
    cols = np.sort(np.concatenate([lay.key_pos, lay.punct_pos]))
    generic = SyndromeDecoder(lay.code, columns=cols)
    decoders = [("generic layered", generic, generic._indices.size)]
    for phi in PHI_MODES:
        qc = QcSyndromeDecoder(lay.code, columns=cols, phi=phi)
        decoders.append((f"qc {phi}", qc, qc.n_edges))
    figs = {name: _decode_all(dec, lay, frames, qber, edges=edges) for name, dec, edges in decoders}
    tanh = next(d for d in decoders if d[0] == "qc tanh")
    figs["qc tanh decode_many"] = _decode_all(tanh[1], lay, frames, qber, batch=True, edges=tanh[2])
    base = figs["generic layered"]["seconds"]
    return [result(
        f"ldpc qc decode {name} q={qber:g} n={frame_n}", lay.k * len(frames), fig["seconds"], "bit/s",
        "generic layered (same QC frames)", base, decoder=name, qber=qber, frame_n=frame_n,
        circulant=lay.code.z, code_rate=lay.code.rate, key_bits=lay.k, f=F_DECODE, frames=len(frames),
        fer=fig["fer"], iterations=fig["iterations"], cpu_rate=lay.k * len(frames) / fig["cpu_seconds"],
        ns_per_edge_iteration=fig["ns_per_edge_iteration"], load_avg=os.getloadavg()[0],
    ) for name, fig in figs.items()]


def _qc_blind(qber: float, runs: int) -> list[dict]:
    """`runs` keys of BLIND_N bits through ldpc-blind-peg (PEG codes, baseline) and on QC codes."""
    methods = [("ldpc-blind-peg", "ldpc-blind-peg")] + [(n, ldpc_method(v)) for n, v in QC_METHODS]
    figures = {name: _protocol(m, qber, runs) for name, m in methods}
    base = figures["ldpc-blind-peg"]["seconds"]
    return [result(
        f"{name} q={qber:g} n={BLIND_N}", BLIND_N * runs, fig["seconds"], "bit/s", "ldpc-blind-peg",
        base, method=name, qber=qber, n=BLIND_N, runs=runs, threads=numba.get_num_threads(),
        **{k: v for k, v in fig.items() if k != "seconds"},
    ) for name, fig in figures.items()]


def _blind(qber: float, runs: int) -> list[dict]:
    """`runs` keys of BLIND_N bits through ldpc-blind, and through one-shot `ldpc` as baseline."""
    figures = {m: _protocol(m, qber, runs) for m in ("ldpc", "ldpc-blind")}
    base = figures["ldpc"]["seconds"]
    return [result(
        f"{m} q={qber:g} n={BLIND_N}", BLIND_N * runs, fig["seconds"], "bit/s", "ldpc (one-shot)",
        base, method=m, qber=qber, n=BLIND_N, runs=runs, threads=numba.get_num_threads(),
        **{k: v for k, v in fig.items() if k != "seconds"},
    ) for m, fig in figures.items()]


def _protocol(method, qber: float, runs: int) -> dict:
    """`runs` keys through `method` (name or ReconcileMethod); the keys depend only on qber."""
    key_rng = np.random.default_rng(int(qber * 1e5))
    rng = np.random.default_rng(int(qber * 1e5) + 1)
    f, fail, rounds, frames, frame_fail, seconds, cpu = [], 0, [], 0, 0, 0.0, 0.0
    iterations = 0
    load = [os.getloadavg()[0]]
    for i in range(runs + 1):  # the first run warms up (JIT, codes) and is not counted
        alice = key_rng.integers(0, 2, BLIND_N, dtype=np.uint8)
        errors = (key_rng.random(BLIND_N) < qber).astype(np.uint8)
        t0, c0 = time.perf_counter(), time.process_time()
        res = reconcile(method, alice, alice ^ errors, qber, rng, alice_in_thread=False)
        if i == 0:
            continue
        seconds += time.perf_counter() - t0
        cpu += time.process_time() - c0
        fail += int(not (res.success and np.array_equal(res.bob_bits, alice)))
        f.append(efficiency(res.leaked_bits, BLIND_N, float(errors.mean())))
        rounds.append(res.round_trips)
        frames += res.extra["frames"]
        frame_fail += res.extra["failed_frames"]
        iterations += res.extra["bp_iterations"]
    load.append(os.getloadavg()[0])
    return {"seconds": seconds, "efficiency": float(np.mean(f)), "efficiency_max": float(np.max(f)),
            "efficiency_std": float(np.std(f)), "fer": fail / runs, "frame_fer": frame_fail / frames,
            "round_trips": float(np.mean(rounds)), "bp_iterations_per_frame": iterations / frames,
            "cpu_rate": BLIND_N * runs / cpu, "load_avg": float(np.mean(load))}
