"""Reconciliation: efficiency f, FER after verification, round trips and throughput.

Sweep (declarative below): every method of `available_methods()` (the Cascade variants,
plus LDPC methods once their family module is installed) at QBER 0.5-8 % and
n = 1e4, 1e5, 1e6 with FRAMES[n] frames per point (fewer at larger n; the count is in each
result).  Each frame: Alice's key and Bob's copy with i.i.d. errors at the nominal QBER
from a seeded generator, `reconcile` in process, single thread: for Cascade its default, the
compiled session (`qkdctl.protocol.cascade_session`: both roles, the SipHash-2-4-authenticated
channel and the confirmation in one numba call; path "compiled"); for methods without one the
Python message path over a `direct_pair` (Alice's responder runs in Bob's thread; messages
encoded, authenticated, sequenced and counted as on any channel; methods without a responder
run Alice in a thread; path "python").  PYTHON_PATH_METHODS are also run over the Python
message path (rows with path "python", n <= 1e5) as the reference for the compiled
figures.  Then polynomial-hash verification
(`qkdctl.core.verify`, eps_cor = 1e-10).  A frame is in error when reconciliation reports
failure or verification fails; residual bit errors are counted over every bit of every
frame (`residual_bit_errors`; `undetected` = success reported but keys differ, must be 0).
f = parity bits disclosed / (n h(true frame QBER)).  Throughput = sifted bits / wall time
of `reconcile` over all frames (both roles, channel and authentication included;
verification excluded); `rate_best_frame` = n / fastest frame and `rate_cpu` = sifted bits /
CPU time of the reconciling thread (both less sensitive to other load on a shared machine;
single-thread runs only, as the CPU time of Alice's thread is not counted otherwise);
`cpu_us_per_round_trip` = that CPU time per round trip; `load_average` = the 1-minute load
average at the end of the point.
Baseline: the original Cascade (Brassard-Salvail, 4 passes) at the same QBER and n, timed
in the same run; the original's own baseline is itself.
"""

from __future__ import annotations

import os
import time

import numpy as np

from benchmarks.common import result
from qkdctl.core.verify import draw_seed, keys_match, verification_tag
from qkdctl.protocol.reconcile import available_methods, efficiency, reconcile

QBERS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.08)
FRAMES = {10_000: 1000, 100_000: 100, 1_000_000: 10}
QUICK_QBERS = (0.02, 0.05)
QUICK_FRAMES = {10_000: 12, 100_000: 3}
QUICK_SECONDS_PER_POINT = 0.5  # quick mode: stop a point after this (>= 1 frame)
METHODS_ENV = "QKDCTL_BENCH_RECONCILE_METHODS"  # comma-separated name prefixes to keep
BASELINE = "cascade-original"
PYTHON_PATH_METHODS = ("cascade-original", "cascade-biconf", "cascade-yanetal", "cascade-option7")
PYTHON_PATH_MAX_N = 100_000
EPS_COR = 1e-10


def measure(method: str, n: int, qber: float, frames: int, seed: int,
            max_seconds: float = float("inf"), compiled: bool | None = None) -> dict:
    """Run `frames` frames of one method at (n, qber), or fewer (>= 1) once `max_seconds`
    of reconciliation time are spent; return the aggregate figures.  `compiled`: as in
    `reconcile` (None: the compiled session when the method has one)."""
    rng = np.random.default_rng(seed)
    spec = available_methods()[method]
    path = "compiled" if spec.compiled is not None and compiled is not False else "python"
    threaded = path == "python" and spec.responder is None
    fs, rts, msgs, nbytes = [], [], [], []
    seconds = cpu_seconds = 0.0
    best_frame = float("inf")
    failed = residual = undetected = 0
    done = 0
    while done < frames and (done == 0 or seconds < max_seconds):
        done += 1
        alice = rng.integers(0, 2, n, dtype=np.uint8)
        errors = (rng.random(n) < qber).astype(np.uint8)
        bob = alice ^ errors
        c0 = time.thread_time()
        t0 = time.perf_counter()
        res = reconcile(method, alice, bob, qber, rng, alice_in_thread=threaded,
                        compiled=compiled)
        elapsed = time.perf_counter() - t0
        cpu_seconds += time.thread_time() - c0
        seconds += elapsed
        best_frame = min(best_frame, elapsed)
        hash_seed = draw_seed(n, EPS_COR, rng)
        verified = keys_match(verification_tag(alice, hash_seed, EPS_COR)[0],
                              verification_tag(res.bob_bits, hash_seed, EPS_COR)[0])
        wrong_bits = int(np.count_nonzero(res.bob_bits != alice))
        residual += wrong_bits
        undetected += int(res.success and wrong_bits > 0)
        failed += int(not (res.success and verified))
        fs.append(efficiency(res.leaked_bits, n, float(errors.mean())))
        rts.append(res.round_trips)
        msgs.append(res.messages)
        nbytes.append(res.bytes)
    return {
        "path": path, "frames": done, "seconds": seconds, "efficiency": float(np.mean(fs)),
        "efficiency_std": float(np.std(fs)), "fer": failed / done, "round_trips": float(np.mean(rts)), "messages": float(np.mean(msgs)),
        "bytes_per_frame": float(np.mean(nbytes)), "residual_bit_errors": residual,
        "undetected": undetected, "rate_best_frame": n / best_frame,
        "rate_cpu": n * done / cpu_seconds if not threaded and cpu_seconds > 0 else None,
        "cpu_us_per_round_trip": (1e6 * cpu_seconds / max(1, sum(rts))) if not threaded else None,
        "load_average": os.getloadavg()[0],
    }


def run(quick: bool) -> list[dict]:
    """The sweep as result records (quick: 2 QBERs, n = 1e4 and 1e5, <= 12 frames and
    about QUICK_SECONDS_PER_POINT per method and point).  The environment variable
    QKDCTL_BENCH_RECONCILE_METHODS (comma-separated name prefixes) restricts the methods."""
    prefixes = [p for p in os.environ.get(METHODS_ENV, "").split(",") if p]
    methods = sorted(m for m in available_methods()
                     if m != BASELINE and (not prefixes or m.startswith(tuple(prefixes))))
    qbers = QUICK_QBERS if quick else QBERS
    frames_of = QUICK_FRAMES if quick else FRAMES
    out: list[dict] = []
    for n, frames in frames_of.items():
        for qber in qbers:
            seed = int(n * 1000 + qber * 1e5)
            warm = np.random.default_rng(0)  # JIT warm-up (load every kernel specialization)
            warm_bits = warm.integers(0, 2, n, dtype=np.uint8)
            warm_bob = warm_bits ^ (warm.random(n) < qber).astype(np.uint8)
            for compiled in (True, False):
                reconcile(BASELINE, warm_bits, warm_bob, qber, warm, alice_in_thread=False,
                          compiled=compiled)
            budget = QUICK_SECONDS_PER_POINT if quick else float("inf")
            base = measure(BASELINE, n, qber, frames, seed, budget)
            base_rate = n * base["frames"] / base["seconds"]
            runs = [(m, None) for m in [BASELINE] + methods]
            if n <= PYTHON_PATH_MAX_N:
                runs += [(m, False) for m in PYTHON_PATH_METHODS
                         if m == BASELINE or m in methods]
            for method, compiled in runs:
                fig = dict(base) if (method, compiled) == (BASELINE, None) else measure(
                    method, n, qber, frames, seed, budget, compiled)
                seconds = fig.pop("seconds")
                size = n * fig["frames"]
                label = method if compiled is None else f"{method} python-path"
                out.append(result(
                    f"reconcile {label} q={qber:g} n={n}", size, seconds, "bit/s",
                    BASELINE, size / base_rate, method=method, qber=qber, n=n, **fig,
                ))
    return out
