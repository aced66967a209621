"""LDPC syndrome decoding: the numba layered decoder against ldpc.BpDecoder, and blind f.

Sweep (declarative below): for each frame size and QBER, frames are laid out by
`choose_layout` at efficiency F_DECODE (the family code, puncturing and shortening the
protocol would use), Bob's copy has i.i.d. errors at the nominal QBER (seeded generator),
and each decoder gets the same frames.  Figures per decoder: frame error rate (keys not
recovered), mean BP iterations, and throughput in key bits per second of decoding time
(syndrome building excluded).  Baseline: ldpc.BpDecoder (product-sum, flooding, the
`ldpc` package, v2) on the same frames in the same run.

The blind protocol end to end (both roles, authenticated direct channel, confirmation) is
in `qkdctl bench reconcile` (methods "ldpc-blind" and "ldpc"); `blind` results here
repeat it at n = 1e5 key bits for the LDPC figures of the report: f, FER, round trips.
Codes come from the on-disk cache (built by PEG on first use, which is not timed).
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.common import result
from qkdctl.core.reconcile.ldpc import SyndromeDecoder, choose_layout, error_priors, frame_bits, syndrome
from qkdctl.protocol.ldpc_roles import VARIANTS, family_code
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


def _frames(frame_n: int, qber: float, count: int, seed: int):
    codes = {r: family_code(r, frame_n) for r in VARIANTS["ldpc-blind"].rates}
    lay = choose_layout(codes, 10**9, qber, F_DECODE, VARIANTS["ldpc-blind"].punct_fraction)
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


def _decode_all(dec: SyndromeDecoder, lay, frames, qber: float) -> dict:
    priors = error_priors(lay, qber)
    dec.decode(frames[0][2], priors)  # warm-up (JIT)
    seconds = 0.0
    failed = iters = 0
    for ka, y, target in frames:
        t0 = time.perf_counter()
        res = dec.decode(target, priors)
        seconds += time.perf_counter() - t0
        iters += res.iterations
        failed += int(not (res.converged and np.array_equal((y ^ res.error)[lay.key_pos], ka)))
    return {"seconds": seconds, "fer": failed / len(frames), "iterations": iters / len(frames)}


def run(quick: bool) -> list[dict]:
    """Decoder sweep (layered vs ldpc.BpDecoder) and the blind protocol at n = 1e5."""
    out: list[dict] = []
    frames_per = QUICK_FRAMES if quick else FRAMES
    for frame_n in QUICK_FRAME_SIZES if quick else FRAME_SIZES:
        for qber in QUICK_QBERS if quick else QBERS:
            lay, frames = _frames(frame_n, qber, frames_per, seed=int(frame_n + qber * 1e4))
            base = _decode_all(SyndromeDecoder(lay.code, backend="ldpc"), lay, frames, qber)
            ours = _decode_all(SyndromeDecoder(lay.code), lay, frames, qber)
            for name, fig in (("ldpc.BpDecoder", base), ("layered", ours)):
                out.append(result(
                    f"ldpc decode {name} q={qber:g} n={frame_n}", lay.k * len(frames), fig["seconds"],
                    "bit/s", "ldpc.BpDecoder", base["seconds"], decoder=name, qber=qber,
                    frame_n=frame_n, code_rate=lay.code.rate, key_bits=lay.k, f=F_DECODE,
                    frames=len(frames), fer=fig["fer"], iterations=fig["iterations"],
                ))
    for qber in QUICK_QBERS if quick else QBERS:
        out.extend(_blind(qber, QUICK_BLIND_RUNS if quick else BLIND_RUNS))
    return out


def _blind(qber: float, runs: int) -> list[dict]:
    rng = np.random.default_rng(int(qber * 1e5))
    figures: dict[str, list] = {"f": [], "rt": [], "fail": [], "frames": [], "s": [], "frame_fail": []}
    for _ in range(runs):
        alice = rng.integers(0, 2, BLIND_N, dtype=np.uint8)
        errors = (rng.random(BLIND_N) < qber).astype(np.uint8)
        t0 = time.perf_counter()
        res = reconcile("ldpc-blind", alice, alice ^ errors, qber, rng, alice_in_thread=False)
        figures["s"].append(time.perf_counter() - t0)
        ok = res.success and np.array_equal(res.bob_bits, alice)
        figures["f"].append(efficiency(res.leaked_bits, BLIND_N, float(errors.mean())))
        figures["rt"].append(res.round_trips)
        figures["fail"].append(int(not ok))
        figures["frames"].append(res.extra["frames"])
        figures["frame_fail"].append(res.extra["failed_frames"])
    seconds = float(np.sum(figures["s"]))
    return [result(
        f"ldpc-blind q={qber:g} n={BLIND_N}", BLIND_N * runs, seconds, "bit/s", "ldpc-blind",
        seconds, method="ldpc-blind", qber=qber, n=BLIND_N, runs=runs,
        efficiency=float(np.mean(figures["f"])), efficiency_max=float(np.max(figures["f"])),
        fer=float(np.mean(figures["fail"])),
        frame_fer=float(np.sum(figures["frame_fail"]) / np.sum(figures["frames"])),
        round_trips=float(np.mean(figures["rt"])),
    )]
