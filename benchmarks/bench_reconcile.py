"""Reconciliation: efficiency f, FER after verification, round trips and throughput.

Sweep (declarative below): every method of `available_methods()` (the Cascade variants,
plus LDPC methods once their family module is installed) at QBER 0.5-8 % and
n = 1e4, 1e5, 1e6 with FRAMES[n] frames per point (fewer at larger n; the count is in each
result).  Each frame: Alice's key and Bob's copy with i.i.d. errors at the nominal QBER
from a seeded generator, `reconcile` over the single-thread in-process channel (`direct_pair`: Alice's responder
runs in Bob's thread; messages encoded, HMAC-authenticated, sequenced and counted as on
any channel; methods without a responder run Alice in a thread), then polynomial-hash verification
(`qkdctl.core.verify`, eps_cor = 1e-10).  A frame is in error when reconciliation reports
failure or verification fails; residual bit errors are counted over every bit of every
frame (`residual_bit_errors`; `undetected` = success reported but keys differ, must be 0).
f = parity bits disclosed / (n h(true frame QBER)).  Throughput = sifted bits / wall time
of `reconcile` (both roles, channel and authentication included; verification excluded).
Baseline: the original Cascade (Brassard-Salvail, 4 passes) at the same QBER and n, timed
in the same run; the original's own baseline is itself.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.common import result
from qkdctl.core.verify import draw_seed, keys_match, verification_tag
from qkdctl.protocol.reconcile import available_methods, efficiency, reconcile

QBERS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.08)
FRAMES = {10_000: 1000, 100_000: 100, 1_000_000: 10}
QUICK_QBERS = (0.01, 0.02, 0.05)
QUICK_FRAMES = {10_000: 12, 100_000: 3}
BASELINE = "cascade-original"
EPS_COR = 1e-10


def measure(method: str, n: int, qber: float, frames: int, seed: int) -> dict:
    """Run `frames` frames of one method at (n, qber); return the aggregate figures."""
    rng = np.random.default_rng(seed)
    threaded = available_methods()[method].responder is None
    fs, rts, msgs, nbytes = [], [], [], []
    seconds = 0.0
    failed = residual = undetected = 0
    for _ in range(frames):
        alice = rng.integers(0, 2, n, dtype=np.uint8)
        errors = (rng.random(n) < qber).astype(np.uint8)
        bob = alice ^ errors
        t0 = time.perf_counter()
        res = reconcile(method, alice, bob, qber, rng, alice_in_thread=threaded)
        seconds += time.perf_counter() - t0
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
        "seconds": seconds, "efficiency": float(np.mean(fs)), "efficiency_std": float(np.std(fs)),
        "fer": failed / frames, "round_trips": float(np.mean(rts)), "messages": float(np.mean(msgs)),
        "bytes_per_frame": float(np.mean(nbytes)), "residual_bit_errors": residual,
        "undetected": undetected,
    }


def run(quick: bool) -> list[dict]:
    """The sweep (quick: 3 QBERs, n = 1e4 and 1e5, a dozen frames) as result records."""
    methods = sorted(available_methods())
    methods.remove(BASELINE)
    qbers = QUICK_QBERS if quick else QBERS
    frames_of = QUICK_FRAMES if quick else FRAMES
    out: list[dict] = []
    for n, frames in frames_of.items():
        for qber in qbers:
            seed = int(n * 1000 + qber * 1e5)
            reconcile(BASELINE, np.zeros(n, np.uint8), np.zeros(n, np.uint8), qber,
                      np.random.default_rng(0), alice_in_thread=False)  # JIT warm-up
            base = measure(BASELINE, n, qber, frames, seed)
            for method in [BASELINE] + methods:
                fig = dict(base) if method == BASELINE else measure(method, n, qber, frames, seed)
                seconds = fig.pop("seconds")
                out.append(result(
                    f"reconcile {method} q={qber:g} n={n}", n * frames, seconds, "bit/s",
                    BASELINE, base["seconds"], method=method, qber=qber, n=n, frames=frames,
                    **fig,
                ))
    return out
