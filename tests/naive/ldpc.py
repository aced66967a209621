"""Slow, plain references for the LDPC kernels: PEG, untainted puncturing, syndromes."""

from __future__ import annotations

import numpy as np


def peg(var_deg, m, max_depth, budget, tie_u):
    """Plain PEG with the kernel's rules: BFS by check layers, min-degree bucket choice.

    Returns the list of check sets per variable, in insertion order.
    """
    n = len(var_deg)
    var_chk = [[] for _ in range(n)]
    chk_var = [[] for _ in range(m)]
    buckets = {0: list(range(m))}
    e = 0
    for j in range(n):
        for k in range(var_deg[j]):
            layer_of = {}
            lim = -1
            if k > 0:
                frontier = list(var_chk[j])
                for c in frontier:
                    layer_of[c] = 0
                seen_v = {j}
                layer = 0
                while layer + 1 <= max_depth:
                    new = []
                    work = 0
                    cut = False
                    for c in frontier:
                        for v in chk_var[c]:
                            if v in seen_v:
                                continue
                            seen_v.add(v)
                            work += len(var_chk[v])
                            for c2 in var_chk[v]:
                                if c2 not in layer_of:
                                    layer_of[c2] = layer + 1
                                    new.append(c2)
                        if work > budget and layer >= 1:
                            cut = True
                            break
                    if cut:
                        lim = layer
                        break
                    if not new:
                        break
                    if len(layer_of) == m:
                        lim = layer
                        break
                    frontier = new
                    layer += 1
            chosen = None
            for d in sorted(buckets):
                members = buckets[d]
                if not members:
                    continue
                start = int(tie_u[e] * len(members))
                for i in range(len(members)):
                    c = members[(start + i) % len(members)]
                    if c not in layer_of or (lim >= 0 and layer_of[c] > lim):
                        chosen = c
                        break
                if chosen is not None:
                    break
            d = len(chk_var[chosen])
            members = buckets[d]
            idx = members.index(chosen)
            members[idx] = members[-1]
            members.pop()
            buckets.setdefault(d + 1, []).append(chosen)
            var_chk[j].append(chosen)
            chk_var[chosen].append(j)
            e += 1
    return var_chk


def untainted(h_dense, order):
    """Greedy untainted set: keep a column if none of its checks touches a kept column."""
    tainted = set()
    kept = []
    for v in order:
        checks = set(np.flatnonzero(h_dense[:, v]).tolist())
        if checks & tainted:
            continue
        kept.append(int(v))
        tainted |= checks
    return kept


def syndrome(h_dense, bits):
    """H x mod 2 by dense integer product."""
    return (h_dense.astype(np.int64) @ np.asarray(bits, dtype=np.int64)) % 2


def phi(x):
    """-log(tanh(x/2)) computed exactly (x clipped to [2^-20, 64])."""
    import math

    x = min(max(float(x), 2.0**-20), 64.0)
    return -math.log(math.tanh(x / 2))


def layered_decode(rows, target, llr0, max_iter, alpha, sum_product, stall_iter=10**9, r_msg=None):
    """Row-layered BP on the syndrome equations (float64, exact phi or scaled min-sum).

    rows: list of column lists per check; r_msg: check-to-variable messages to resume from
    (updated in place).  Stops when every check was satisfied by the hard decisions as the
    sweep reached it and the final hard decisions meet the syndrome; gives up when that
    in-sweep count of unsatisfied checks has not improved for `stall_iter` iterations.  Returns (error bits, posterior LLRs, iterations, converged).
    """
    if r_msg is None:
        r_msg = [[0.0] * len(cols) for cols in rows]
    post = [float(v) for v in llr0]
    for c, cols in enumerate(rows):
        for i, v in enumerate(cols):
            post[v] += r_msg[c][i]
    best, best_it = len(rows) + 1, 0
    for it in range(1, max_iter + 1):
        unsat = 0  # checks unsatisfied by the hard decisions when the sweep reaches them
        for c, cols in enumerate(rows):
            unsat += (sum(int(post[v] < 0) for v in cols) + target[c]) % 2
            q = [post[v] - r_msg[c][i] for i, v in enumerate(cols)]
            for i, v in enumerate(cols):
                others = [q[j] for j in range(len(cols)) if j != i]
                sign = target[c]
                for o in others:
                    sign ^= int(o < 0)
                if sum_product:
                    mag = phi(sum(phi(abs(o)) for o in others))
                else:
                    mag = alpha * min(abs(o) for o in others)
                r_msg[c][i] = -mag if sign else mag
                post[v] = q[i] + r_msg[c][i]
        err = [int(p < 0) for p in post]
        if unsat == 0 and all((sum(err[v] for v in cols) + target[c]) % 2 == 0
                              for c, cols in enumerate(rows)):
            return err, post, it, True
        if unsat < best:
            best, best_it = unsat, it
        elif it - best_it >= stall_iter:
            return err, post, it, False
    return err, post, max_iter, False
