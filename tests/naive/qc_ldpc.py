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


def _deg2_paths(p, deg, start, goal, skip, max_cols):
    """(columns, shift sum) of simple paths start -> goal over assigned degree-2 columns."""
    out = []

    def walk(x, rows, total, cols):
        for j2 in range(len(p[0])):
            if j2 == skip or deg[j2] != 2 or p[x][j2] < 0:
                continue
            ends = [r for r in range(len(p)) if p[r][j2] >= 0]
            if len(ends) != 2:
                continue
            y = ends[0] if ends[1] == x else ends[1]
            t = total + p[x][j2] - p[y][j2]
            if y == goal:
                out.append((cols + 1, t))
            elif y not in rows and cols + 1 < max_cols - 1:
                walk(y, rows | {y}, t, cols + 1)

    walk(start, {start}, 0, 0)
    return out


def choose_shifts(present, col_order, z, tie_u, max_len, min_weight):
    """Greedy shifts by brute-force cycle enumeration over the already placed edges.

    For each edge in column order (rows increasing), count for every shift the lifted 4-cycles
    (i j i2 j2) and 6-cycles (i j i3 j3 i2 j2) it would close and, for the second edge of a
    degree-2 column, the lightest codeword L z / gcd(t, z) (capped at min_weight) of the cycles
    of up to max_len degree-2 columns it closes; take the fewest 4-cycles, then the heaviest
    light word, then the fewest 6-cycles, scanning shifts cyclically from int(u z).
    Returns (shifts, edges forced into a 4-cycle).
    """
    mb, nb = len(present), len(present[0])
    deg = [sum(1 for i in range(mb) if present[i][j]) for j in range(nb)]
    p = [[-1] * nb for _ in range(mb)]
    forced = 0
    e = 0
    for j in col_order:
        for i in range(mb):
            if not present[i][j]:
                continue
            cnt4 = [0] * z
            cnt6 = [0] * z
            minw = [min_weight] * z
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
            placed = [r for r in range(mb) if p[r][j] >= 0]
            if deg[j] == 2 and len(placed) == 1:
                r0 = placed[0]
                for cols, t in _deg2_paths(p, deg, r0, i, j, max_len):
                    for s in range(z):  # cycle sum: s - p[r0][j] + t
                        w = (cols + 1) * z // math.gcd((s - p[r0][j] + t) % z, z)
                        minw[s] = min(minw[s], w)
            start = int(tie_u[e] * z)
            cands = [(start + u) % z for u in range(z)]
            best = min(cands, key=lambda s: (cnt4[s], -minw[s], cnt6[s]))  # first of ties
            forced += cnt4[best] > 0
            p[i][j] = best
            e += 1
    return p, forced


def phi(x):
    """-log(tanh(x/2)) computed exactly (x clipped to [2^-20, 40])."""
    x = min(max(float(x), 2.0**-20), 40.0)
    return -math.log(math.tanh(x / 2))


def lightest_deg2_word(shifts, z, max_len):
    """Weight of the lightest codeword from a cycle of <= max_len degree-2 base columns."""
    mb, nb = len(shifts), len(shifts[0])
    deg = [sum(1 for i in range(mb) if shifts[i][j] >= 0) for j in range(nb)]
    best = None
    for j in range(nb):
        if deg[j] != 2:
            continue
        a, b = [i for i in range(mb) if shifts[i][j] >= 0]
        for cols, t in _deg2_paths(shifts, deg, a, b, j, max_len):
            w = (cols + 1) * z // math.gcd((shifts[b][j] - shifts[a][j] + t) % z, z)
            best = w if best is None else min(best, w)
    return best


def syndrome(shifts, z, bits):
    """H x over GF(2) of the lifted code, check by check from `lifted_rows`."""
    return [sum(bits[c] for c in cols) % 2 for cols in lifted_rows(shifts, z)]
