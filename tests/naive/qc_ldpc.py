"""Slow, plain references for the quasi-cyclic LDPC kernels: lifting, shift choice, phi."""

from __future__ import annotations

import math


def lifted_rows(shifts, z):
    """Column lists of the lifted checks, check i z + t, base columns in increasing order."""
    rows = []
    for i in range(len(shifts)):
        for t in range(z):
            rows.append([j * z + (t + s) % z for j, s in enumerate(shifts[i]) if s >= 0])
    return rows


def four_cycles(rows):
    """Pairs of columns that share two or more checks (each such pair closes a 4-cycle)."""
    seen = {}
    for c, cols in enumerate(rows):
        for a in range(len(cols)):
            for b in range(a + 1, len(cols)):
                key = (min(cols[a], cols[b]), max(cols[a], cols[b]))
                seen[key] = seen.get(key, 0) + 1
    return sum(1 for v in seen.values() if v >= 2)


def choose_shifts(present, col_order, z, tie_u):
    """Greedy shifts by brute-force cycle enumeration over the already placed edges.

    For each edge in column order (rows increasing), count for every shift the lifted 4-cycles
    (i j i2 j2) and 6-cycles (i j i3 j3 i2 j2) it would close, and take the least (4, then 6),
    scanning shifts cyclically from int(u z).  Returns (shifts, edges forced into a 4-cycle).
    """
    mb, nb = len(present), len(present[0])
    p = [[-1] * nb for _ in range(mb)]
    forced = 0
    e = 0
    for j in col_order:
        for i in range(mb):
            if not present[i][j]:
                continue
            cnt4 = [0] * z
            cnt6 = [0] * z
            for i2 in range(mb):
                for j2 in range(nb):
                    if i2 == i or j2 == j or p[i][j2] < 0 or p[i2][j2] < 0:
                        continue
                    if p[i2][j] >= 0:
                        cnt4[(p[i2][j] - p[i2][j2] + p[i][j2]) % z] += 1
                    for i3 in range(mb):
                        for j3 in range(nb):
                            if i3 in (i, i2) or j3 in (j, j2):
                                continue
                            if p[i2][j3] < 0 or p[i3][j3] < 0 or p[i3][j] < 0:
                                continue
                            s = p[i3][j] - p[i3][j3] + p[i2][j3] - p[i2][j2] + p[i][j2]
                            cnt6[s % z] += 1
            start = int(tie_u[e] * z)
            cands = [(start + u) % z for u in range(z)]
            best = min(cands, key=lambda s: (cnt4[s], cnt6[s]))  # min keeps the first of ties
            forced += cnt4[best] > 0
            p[i][j] = best
            e += 1
    return p, forced


def phi(x):
    """-log(tanh(x/2)) computed exactly (x clipped to [2^-20, 40])."""
    x = min(max(float(x), 2.0**-20), 40.0)
    return -math.log(math.tanh(x / 2))
