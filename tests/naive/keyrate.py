"""Slow, literal transcriptions of Lim et al. (2014) Eqs. (1)-(5) and of the 4-detector squashing.

Written independently of qkdctl.core.keyrate / linkmodel (dict-based, one formula per
line, Lim's X/Z names) so the tests compare two readings of the paper.
"""

import itertools
import math


def h2(x):
    if x <= 0 or x >= 1:
        return 0.0
    return -x * math.log2(x) - (1 - x) * math.log2(1 - x)


def lim_key_length(nX, mX, nZ, mZ, leak, mu, p, eps_sec, eps_cor):
    """Returns dict with sX0, sX1, sZ0, sZ1, vZ1, phi, l (unfloored) in Lim's notation.

    nX, mX: key-basis counts per intensity (Lim's X); nZ, mZ: test basis (Lim's Z).
    """
    K = [0, 1, 2]
    tau = lambda n: sum(math.exp(-mu[k]) * mu[k] ** n * p[k] for k in K) / math.factorial(n)
    tot_nX, tot_nZ, tot_mZ = sum(nX), sum(nZ), sum(mZ)
    ln = math.log(21 / eps_sec)

    def plus_minus(counts, total):
        d = math.sqrt(total / 2 * ln)
        return (
            {k: math.exp(mu[k]) / p[k] * (counts[k] + d) for k in K},
            {k: math.exp(mu[k]) / p[k] * (counts[k] - d) for k in K},
        )

    nXp, nXm = plus_minus(nX, tot_nX)
    nZp, nZm = plus_minus(nZ, tot_nZ)
    mZp, mZm = plus_minus(mZ, tot_mZ)
    mu1, mu2, mu3 = mu
    t0, t1 = tau(0), tau(1)

    def s0(nm, np_):
        return t0 * (mu2 * nm[2] - mu3 * np_[1]) / (mu2 - mu3)

    def s1(nm, np_, s0v):
        top = nm[1] - np_[2] - (mu2**2 - mu3**2) / mu1**2 * (np_[0] - s0v / t0)
        return t1 * mu1 * top / (mu1 * (mu2 - mu3) - mu2**2 + mu3**2)

    sX0 = max(0.0, s0(nXm, nXp))
    sZ0 = max(0.0, s0(nZm, nZp))
    sX1 = s1(nXm, nXp, sX0)
    sZ1 = s1(nZm, nZp, sZ0)
    vZ1 = t1 * (mZp[1] - mZm[2]) / (mu2 - mu3)
    b = vZ1 / sZ1
    c, d, a = sZ1, sX1, eps_sec
    gamma = math.sqrt((c + d) * (1 - b) * b / (c * d * math.log(2)) * math.log2((c + d) / (c * d * (1 - b) * b) * 21**2 / a**2))
    phi = b + gamma
    l = sX0 + sX1 - sX1 * h2(phi) - leak - 6 * math.log2(21 / eps_sec) - math.log2(2 / eps_cor)
    return {"sX0": sX0, "sX1": sX1, "sZ0": sZ0, "sZ1": sZ1, "vZ1": vZ1, "gamma": gamma, "phi": phi, "l": l}


def squash_by_enumeration(c):
    """P(Z,0), P(Z,1), P(X,0), P(X,1) by summing over all 16 click patterns of H, V, D, A."""
    out = [0.0, 0.0, 0.0, 0.0]
    for pattern in itertools.product([0, 1], repeat=4):
        prob = 1.0
        for ci, clicked in zip(c, pattern):
            prob *= ci if clicked else 1 - ci
        hh, vv, dd, aa = pattern
        z, x = hh or vv, dd or aa
        if not z and not x:
            continue
        choices = []  # (basis, weight) after the random basis choice
        if z and x:
            choices = [(0, 0.5), (1, 0.5)]
        elif z:
            choices = [(0, 1.0)]
        else:
            choices = [(1, 1.0)]
        for basis, w in choices:
            b0, b1 = (hh, vv) if basis == 0 else (dd, aa)
            if b0 and b1:
                out[2 * basis] += prob * w * 0.5
                out[2 * basis + 1] += prob * w * 0.5
            elif b0:
                out[2 * basis] += prob * w
            else:
                out[2 * basis + 1] += prob * w
    return out
