"""`qkdctl bench detect`: every detector on every attack and benign fault, same data.

Data: benchmarks.detect_data (independent blocks of the scenario bench, 2 ms of a
1 GHz link each, ~4.5e4 detections).  One-class models and the rules are fitted on
normal blocks only; supervised models also on the first half of every attack and
benign group (the second half is scored).  Held-out normal blocks set the
false-alarm figures.

Per (detector, scenario): ROC AUC against held-out normal blocks; detection rate
at the score threshold giving <= 1/1000 false alarms on held-out normal blocks
(with fewer than 1000 of them: the highest normal score, i.e. zero false alarms);
the detector's own operating point (its calibrated alarm threshold): detection
rate, and for normal/benign blocks the false-alarm rate; latency in blocks
(expected blocks until the first alarm, 1/rate) and seconds (that many blocks of
bench time plus scoring time); training and scoring time; circuit shots.
The baseline timed in the same run is the rule detector's scoring.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.common import result
from benchmarks.detect_data import dataset
from qkdctl.detect.factory import DEFAULT_SET, make_detector
from qkdctl.detect.scenarios import BLOCK_SECONDS, BY_NAME

DETECTORS = (
    ("rules", {}),
    ("iforest", {"seed": 1}),
    ("ocsvm", {}),
    ("logreg", {}),
    ("forest", {"seed": 1}),
    ("boosting", {"seed": 1}),
    ("qsvc", {"seed": 1}),
    ("qocsvm", {"seed": 1}),
    ("vqc", {"seed": 1}),
    ("gan", {"seed": 1}),
)
FALSE_ALARM = 1e-3


def _auc(normal: np.ndarray, other: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.zeros(normal.size), np.ones(other.size)]
    return float(roc_auc_score(y, np.r_[normal, other]))


def _rate_at_fa(normal: np.ndarray, other: np.ndarray) -> float:
    k = int(np.floor(FALSE_ALARM * normal.size))  # normal scores allowed above the threshold
    thr = np.sort(normal)[::-1][k]
    return float(np.mean(other > thr))


def _split(groups: dict) -> tuple[np.ndarray, np.ndarray, dict]:
    """(train x, train y, test groups)."""
    xs, ys, test = [groups["normal_train"]], [np.zeros(len(groups["normal_train"]), int)], {}
    test["normal"] = groups["normal_test"]
    for name, x in groups.items():
        if name.startswith("normal"):
            continue
        half = len(x) // 2
        xs.append(x[:half])
        ys.append(np.full(half, int(BY_NAME[name].label == "attack")))
        test[name] = x[half:]
    return np.vstack(xs), np.concatenate(ys), test


def run(quick: bool) -> list[dict]:
    """One result per (detector, scenario) plus one summary per detector."""
    groups, gen_seconds = dataset(quick)
    train_x, train_y, test = _split(groups)
    normal_x = groups["normal_train"]
    out = []
    baseline = make_detector("rules", {})
    baseline.fit(normal_x, None)
    t0 = time.perf_counter()
    baseline.score_matrix(test["normal"])
    base_s = max(time.perf_counter() - t0, 1e-9)
    n_normal = len(test["normal"])
    for name, opts in DETECTORS:
        det = make_detector(name, {**opts, "quick": quick})
        t0 = time.perf_counter()
        det.fit(train_x if det.supervised else normal_x, train_y if det.supervised else None)
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        by_sev = {g: det.score_by_severity(x) for g, x in test.items()}
        score_s = time.perf_counter() - t0
        scores = {g: np.max(np.vstack(list(v.values())), axis=0) for g, v in by_sev.items()}
        aborts = {g: v.get("abort", np.full(len(test[g]), -np.inf)) for g, v in by_sev.items()}
        n_scored = sum(len(x) for x in test.values())
        per_block_s = score_s / n_scored
        normal = scores["normal"]
        own_fa = float(np.mean(normal > det.threshold))
        worst = 1.0
        for g, s in scores.items():
            if g == "normal":
                continue
            label = BY_NAME[g].label
            own = float(np.mean(s > det.threshold))
            at_fa = _rate_at_fa(normal, s)
            extra = {"detector": name, "scenario": g, "label": label, "n_blocks": int(s.size),
                     "roc_auc": _auc(normal, s), "train_s": train_s, "score_s_per_block": per_block_s,
                     "shots": int(det.shots)}
            if label == "attack":
                worst = min(worst, own)
                extra.update(detect_rate_at_fa=at_fa, detect_rate_own=own,
                             latency_blocks=(1.0 / own) if own > 0 else float("inf"),
                             latency_s=(1.0 / own) * (BLOCK_SECONDS + per_block_s) if own > 0 else float("inf"))
            else:
                extra.update(false_alarm_own=own, abort_alarm_own=float(np.mean(aborts[g] > det.threshold)))
            out.append(result(f"detect/{name}/{g}", int(s.size), score_s * s.size / n_scored, "blocks/s",
                              "rules", base_s * s.size / n_normal, **extra))
        out.append(result(f"detect/{name}/normal", n_normal, score_s * n_normal / n_scored, "blocks/s",
                          "rules", base_s, detector=name, scenario="normal", label="normal",
                          false_alarm_own=own_fa, abort_alarm_own=float(np.mean(aborts["normal"] > det.threshold)),
                          worst_attack_detect_rate_own=worst, train_s=train_s,
                          shots=int(det.shots), default=name in DEFAULT_SET,
                          data_generation_s=gen_seconds))
    return out
