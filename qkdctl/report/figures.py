"""Matplotlib figures of one run, drawn from run-database rows (no pyplot state).

Each function takes the block rows of one run (`RunDB.blocks(run_id)`, in block
order) and returns PNG bytes.  The x axis is bench time: the end of each block
in seconds of acquisition since the run started (sum of the blocks' duration_s).
"""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

DETECTOR_ROLES = ("H", "V", "D", "A")
_SIZE_IN = (8.0, 3.2)
_DPI = 96


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=_DPI)
    return buf.getvalue()


def _num(value) -> float:
    """A stored number, NaN for NULL."""
    return float("nan") if value is None else float(value)


def bench_time_s(blocks: Sequence[dict]) -> np.ndarray:
    """End time of each block in bench seconds since the run began (s)."""
    return np.cumsum([_num(b["duration_s"]) for b in blocks])


def _mark_aborted(ax, t: np.ndarray, blocks: Sequence[dict]) -> None:
    aborted = [i for i, b in enumerate(blocks) if b["status"] != "ok"]
    for n, i in enumerate(aborted):
        ax.axvline(t[i], color="tab:red", alpha=0.25, lw=3, label="aborted block" if n == 0 else None)


def qber_figure(blocks: Sequence[dict], threshold: float | None = None,
                alarm_times_s: Sequence[float] = ()) -> bytes:
    """QBER of the Z (key) and X (test) bases per block, threshold and alarms marked."""
    t = bench_time_s(blocks)
    fig = Figure(figsize=_SIZE_IN)
    ax = fig.add_subplot()
    ax.plot(t, [100 * _num(b["qber_z"]) for b in blocks], "o-", ms=3, label="QBER Z (after EC)")
    ax.plot(t, [100 * _num(b["qber_x"]) for b in blocks], "s-", ms=3, label="QBER X (disclosed)")
    if threshold is not None:
        ax.axhline(100 * threshold, color="k", ls="--", lw=1, label=f"abort threshold {100 * threshold:g} %")
    _mark_aborted(ax, t, blocks)
    for n, ta in enumerate(alarm_times_s):
        ax.axvline(ta, color="tab:orange", ls=":", lw=1, label="alarm" if n == 0 else None)
    ax.set_xlabel("bench time (s)")
    ax.set_ylabel("QBER (%)")
    ax.set_ylim(bottom=0)
    ax.set_title("QBER per basis")
    ax.legend(fontsize=8, loc="upper left")
    return _png(fig)


def rate_figure(blocks: Sequence[dict]) -> bytes:
    """Sifted (Z) and secret key rates per block (bit/s of bench time)."""
    t = bench_time_s(blocks)
    dur = np.array([_num(b["duration_s"]) for b in blocks])
    sifted = np.array([_num(b["sifted_bits_z"]) for b in blocks]) / dur
    secret = np.array([_num(b["key_bits"]) for b in blocks]) / dur
    fig = Figure(figsize=_SIZE_IN)
    ax = fig.add_subplot()
    ax.plot(t, sifted, "o-", ms=3, label="sifted Z")
    ax.plot(t, secret, "s-", ms=3, label="secret")
    _mark_aborted(ax, t, blocks)
    positive = np.concatenate([sifted[sifted > 0], secret[secret > 0]])
    if positive.size:
        ax.set_yscale("log")
    ax.set_xlabel("bench time (s)")
    ax.set_ylabel("rate (bit/s)")
    ax.set_title("Key rates per block")
    ax.legend(fontsize=8, loc="lower left")
    return _png(fig)


def varying_params(params: dict[str, list[float]]) -> list[str]:
    """Names of the parameters whose value changes during the run (NaN = not in force)."""
    out = []
    for name in sorted(params):
        v = np.asarray(params[name], dtype=float)
        v = v[np.isfinite(v)]
        if v.size and np.ptp(v) > 0:
            out.append(name)
    return out


def params_figure(blocks: Sequence[dict], params: dict[str, list[float]],
                  tuner_times_s: Sequence[float] = ()) -> bytes:
    """The operating parameters that change during the run, one panel each, in force
    from each block's start; the block ends after which a tuner acted are marked."""
    end = bench_time_s(blocks)
    edges = np.concatenate([end - np.array([_num(b["duration_s"]) for b in blocks]), end[-1:]])
    names = varying_params(params)
    n = max(len(names), 1)
    fig = Figure(figsize=(_SIZE_IN[0], 1.4 * n + 0.9))
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
    for ax, name in zip(axes, names):
        values = list(params[name])
        ax.step(edges, values + values[-1:], where="post", label=name)
        for k, ta in enumerate(tuner_times_s):
            ax.axvline(ta, color="tab:purple", ls=":", lw=1, label="tuner acted" if k == 0 else None)
        ax.set_ylabel(name, fontsize=8)
    if names:
        axes[0].legend(fontsize=7, loc="upper left", ncol=2)
    else:
        axes[0].text(0.5, 0.5, "no operating parameter changed during the run", ha="center",
                     transform=axes[0].transAxes)
    axes[0].set_title("Operating parameters that changed (in force from the block start)")
    axes[-1].set_xlabel("bench time (s)")
    return _png(fig)


def efficiency_figure(blocks: Sequence[dict]) -> bytes:
    """Reconciliation efficiency f = leak / (n h(QBER)) per block, method named."""
    t = bench_time_s(blocks)
    f = np.array([_num(b["ec_efficiency"]) for b in blocks])
    f[~np.isfinite(f)] = np.nan
    fig = Figure(figsize=_SIZE_IN)
    ax = fig.add_subplot()
    for method in sorted({b["method"] for b in blocks if b["method"]}):
        sel = np.array([b["method"] == method for b in blocks])
        ax.plot(t[sel], f[sel], "o", ms=4, label=method)
    ax.axhline(1.0, color="k", lw=0.8, ls="--", label="Shannon limit")
    ax.set_xlabel("bench time (s)")
    ax.set_ylabel("f")
    ax.set_title("Reconciliation efficiency")
    ax.legend(fontsize=8, loc="upper left")
    return _png(fig)


def detector_rate_figure(blocks: Sequence[dict]) -> bytes:
    """Gated detection rate of each detector (counts/s of bench time)."""
    t = bench_time_s(blocks)
    fig = Figure(figsize=_SIZE_IN)
    ax = fig.add_subplot()
    kept = [b["report"].get("counts", {}).get("kept_per_detector") for b in blocks]
    rates = np.full((len(blocks), len(DETECTOR_ROLES)), np.nan)
    for i, (k, b) in enumerate(zip(kept, blocks)):
        if k and len(k) == len(DETECTOR_ROLES) and _num(b["duration_s"]) > 0:
            rates[i] = np.asarray(k, dtype=float) / _num(b["duration_s"])
    for j, role in enumerate(DETECTOR_ROLES):
        ax.plot(t, rates[:, j], "o-", ms=3, label=f"detector {role}")
    ax.set_xlabel("bench time (s)")
    ax.set_ylabel("gated counts (1/s)")
    ax.set_ylim(bottom=0)
    ax.set_title("Detector count rates")
    ax.legend(fontsize=8, loc="lower left", ncol=4)
    return _png(fig)
