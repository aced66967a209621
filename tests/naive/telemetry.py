"""Slow, plain reference of qkdctl.core.telemetry (click by click, Python loops)."""

from __future__ import annotations

import math


def telemetry(slots, roles, dts, intensity, first_slot, n_windows):
    """(clicks[w][r], dt lists[r], doubles[w], clicked[w], vacuum clicks[r]) for slots inside the record."""
    n = len(intensity)
    clicks = [[0] * 4 for _ in range(n_windows)]
    dt_by_role = [[] for _ in range(4)]
    per_slot = {}
    vac = [0] * 4
    for s, r, d in zip(slots, roles, dts):
        i = s - first_slot
        if not 0 <= i < n:
            continue
        w = math.floor(i * n_windows / n)
        clicks[w][r] += 1
        dt_by_role[r].append(float(d))
        per_slot[i] = per_slot.get(i, 0) + 1
        if intensity[i] == 2:
            vac[r] += 1
    doubles = [0] * n_windows
    clicked = [0] * n_windows
    for i, k in per_slot.items():
        w = math.floor(i * n_windows / n)
        clicked[w] += 1
        doubles[w] += k >= 2
    return clicks, dt_by_role, doubles, clicked, vac


def moments(values):
    """(mean, population std, skewness) of a list."""
    m = sum(values) / len(values)
    var = sum((v - m) ** 2 for v in values) / len(values)
    third = sum((v - m) ** 3 for v in values) / len(values)
    return m, math.sqrt(var), third / var**1.5 if var > 0 else 0.0
