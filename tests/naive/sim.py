"""Slow, plain references of the simulator's numba kernels (firmware_sim.physics).

Each takes the same inputs (and consumes the same Generator draws in the same order)
as its kernel, written as simply as possible.
"""

from __future__ import annotations

import heapq
import math

import numpy as np


def choice_weights(p_intensity, p_z, p_bit_one) -> list[int]:
    """Weights of the 12 outcomes 4*class + 2*basis + bit, in units of 2**-32, summing to 2**32.

    Each joint probability rounded down, then the largest remainders (earliest first on ties) get one more.
    """
    total = sum(p_intensity)
    joint = []
    for c in range(3):
        for b in range(2):
            for x in range(2):
                pb = p_z if b == 0 else 1.0 - p_z
                px = p_bit_one if x == 1 else 1.0 - p_bit_one
                joint.append(p_intensity[c] / total * pb * px)
    total = sum(joint)
    scaled = [p / total * 2.0**32 for p in joint]
    weights = [math.floor(v) for v in scaled]
    by_remainder = sorted(range(12), key=lambda o: -(scaled[o] - weights[o]))
    for o in by_remainder[: 2**32 - sum(weights)]:
        weights[o] += 1
    return weights


GAMMA = 0x9E3779B97F4A7C15
MASK64 = 2**64 - 1


def slot_hash(key: int, slot: int) -> int:
    """SplitMix64's output for state key + slot * GAMMA (mod 2**64), as published (Steele et al. 2014)."""
    z = (key + slot * GAMMA) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


class Stream:
    """Sequential SplitMix64: a word is the output function of the state, then the state steps by GAMMA."""

    R = 3.6541528853610088  # ziggurat base edge for 256 layers (Marsaglia & Tsang 2000)

    def __init__(self, state: int) -> None:
        self.state = int(state)
        f = self.f
        self.v = self.R * f(self.R) + math.sqrt(math.pi / 2) * math.erfc(self.R / math.sqrt(2))
        self.x = [self.v / f(self.R), self.R]  # layer i: [0, x[i]] x [f(x[i]), f(x[i]) + v / x[i]]
        while len(self.x) < 256:
            top = f(self.x[-1]) + self.v / self.x[-1]
            self.x.append(math.sqrt(-2 * math.log(top)) if top < 1 else 0.0)
        self.x.append(0.0)

    @staticmethod
    def f(x: float) -> float:
        return math.exp(-0.5 * x * x)

    def word(self) -> int:
        z = slot_hash(self.state, 0)
        self.state = (self.state + GAMMA) & MASK64
        return z

    def uniform(self) -> float:
        return (self.word() >> 11) * 2.0**-53

    def normal(self) -> float:
        """Ziggurat: pick a layer and a point in it; accept under the curve, else start over."""
        x_ = self.x
        while True:
            z = self.word()
            i, negative, u = z & 255, (z >> 8) & 1, z >> 11
            x = u * (x_[i] * 2.0**-53)
            sign = -1.0 if negative else 1.0
            if u < math.floor(x_[i + 1] / x_[i] * 2.0**53):  # inside the layer's part under the curve
                return sign * x
            if i == 0:  # tail beyond R
                while True:
                    xt = -math.log(((self.word() >> 11) + 1) * 2.0**-53) / self.R
                    yt = -math.log(((self.word() >> 11) + 1) * 2.0**-53)
                    if yt + yt > xt * xt:
                        return sign * (self.R + xt)
            if self.f(x_[i]) + (self.word() >> 11) * 2.0**-53 * (self.v / x_[i]) < self.f(x):
                return sign * x


def alice_choice(u: int, weights) -> tuple[int, int, int]:
    """(class, basis, bit) of one 32-bit number: o = how many cumulative weights C_1..C_11 are <= u."""
    o = sum(1 for k in range(1, 12) if u >= sum(weights[:k]))
    return o // 4, (o // 2) % 2, o % 2


def slots(rng, key, n, slot0, weights, lam, period_ps, delay_ps, jitter_ps, words=None):
    """Reference of clicks.simulate_slots: Alice's arrays and clicks, same draws in the same order.

    Slot i (absolute slot0 + i) hashes to h; Alice's 32 bits are h's low half (or half
    i % 2 of words[i // 2]); a slot of class c is a candidate when h's high half is below
    L_c = ceil(max_s p_any[c][s] 2^32).  Candidates in slot order take a uniform and one
    normal per click from a Stream seeded by one 64-bit draw of rng.
    """
    stream = Stream(rng.integers(0, 2**64, dtype=np.uint64))
    p_any = [[1.0 - math.exp(-sum(lam[c, s])) for s in range(4)] for c in range(3)]
    level = [min(math.ceil(max(p_any[c]) * 2**32), 2**32) for c in range(3)]
    basis, bit, inten, click_t, click_det = [], [], [], [], []
    for i in range(n):
        h = slot_hash(key, slot0 + i)
        u = h & 0xFFFFFFFF if words is None else (int(words[i // 2]) >> (32 * (i % 2))) & 0xFFFFFFFF
        c, b, x = alice_choice(u, weights)
        inten.append(c)
        basis.append(b)
        bit.append(x)
        if (h >> 32) >= level[c]:
            continue
        s = 2 * b + x
        w = stream.uniform() * level[c] / 2**32
        if w >= p_any[c][s]:
            continue
        v = w / p_any[c][s]
        # pattern k (bit j = detector j clicked), probability given at least one click, taken in the
        # kernel's order: the four single clicks, then pairs, triples, all four
        acc = 0.0
        order = [1, 2, 4, 8, 3, 5, 6, 9, 10, 12, 7, 11, 13, 14, 15]
        chosen = order[-1]
        for k in order[:-1]:
            pk = 1.0
            for j in range(4):
                pj = 1.0 - math.exp(-lam[c, s, j])
                pk *= pj if (k >> j) & 1 else 1.0 - pj
            acc += pk / p_any[c][s]
            if v < acc:
                chosen = k
                break
        for j in range(4):
            if (chosen >> j) & 1:
                t = (slot0 + i) * period_ps + delay_ps + jitter_ps[j] * stream.normal()
                click_t.append(int(np.rint(t)))
                click_det.append(j)
    return basis, bit, inten, click_t, click_det


def dead_time(rng, clicks, darks, dead_ps, ap_prob, ap_mean_ps, last_click, pending, t_end):
    """Reference of detectors._dead_time_kernel: events in time order with a heap.

    Afterpulses: per detector, the number of counted clicks before the next one that
    afterpulses is Geometric(ap_prob), drawn at the detector's first click of the call.

    pending: list of 4 lists of afterpulse times (modified in place), last_click: list of 4.
    Ties: stream 1 before stream 2 before afterpulses (lower detector first).
    Returns [(t, det, is_afterpulse)] in time order.
    """
    # heap entries (t, priority, order, det): stream 1, then stream 2, then afterpulses
    heap = []
    for prio, (ts, ds) in ((0, clicks), (1, darks)):
        for n, (t, d) in enumerate(zip(ts, ds)):
            heap.append((int(t), prio, n, int(d)))
    for j in range(4):
        for t in pending[j]:
            heap.append((int(t), 2, j, j))
        pending[j] = []
    heapq.heapify(heap)
    out = []
    to_next_ap = [None] * 4  # counted clicks of det j before the one that afterpulses (drawn lazily)
    while heap:
        t, prio, _, j = heapq.heappop(heap)
        if prio == 2 and t >= t_end:
            pending[j].append(t)
            continue
        if t - last_click[j] < dead_ps[j]:
            continue
        out.append((t, j, prio == 2))
        last_click[j] = t
        if ap_prob[j] <= 0:
            continue
        if to_next_ap[j] is None:  # Bernoulli(ap_prob) trials per click: failures before a success
            q = math.log1p(-ap_prob[j]) if ap_prob[j] < 1 else -math.inf
            to_next_ap[j] = int(min(math.log1p(-rng.random()) / q, 2.0**62))  # capped as in the kernel
        if to_next_ap[j] > 0:
            to_next_ap[j] -= 1
            continue
        to_next_ap[j] = None
        ta = t + dead_ps[j] + int(rng.exponential() * ap_mean_ps[j])
        heapq.heappush(heap, (ta, 2, j, j))
    return out


def tagger(clk_t, clk_det, extra, delay_ps, visible, dead_ps, resolution_ps, ch_number,
           last_tag, bucket, rate_per_ps, capacity):
    """Reference of tagger._tagger_kernel: sort all visible edges, then filter one by one."""
    edges = []  # (delayed time, group, role): detector clicks (group 0) before extras (1 + role)
    for t, d in zip(clk_t, clk_det):
        r = int(d) + 1
        if visible[r]:
            edges.append((int(t) + int(delay_ps[r]), 0, r))
    for r, arr in enumerate(extra):
        if visible[r]:
            edges.extend((int(t) + int(delay_ps[r]), 1 + r, r) for t in arr)
    edges.sort(key=lambda e: (e[0], e[1]))  # stable: input order among equal keys
    out_t, out_ch, missed = [], [], 0
    level, t_last = bucket
    for t, _, r in edges:
        t = (t // resolution_ps) * resolution_ps
        if t - last_tag[r] < dead_ps[r]:
            continue
        last_tag[r] = t
        level = max(0.0, level - (t - t_last) * rate_per_ps)
        t_last = t
        if level + 1.0 > capacity:
            missed += 1
            continue
        level += 1.0
        out_t.append(t)
        out_ch.append(int(ch_number[r]))
    bucket[:] = [level, t_last]
    return out_t, out_ch, missed


def route_photons(rng, n_photons, q, hit):
    """Reference of eve._route_photons: photon to det j with prob q[j], else lost."""
    for _ in range(n_photons):
        r = rng.random()
        edges = np.cumsum(q)
        for j in range(4):
            if r < edges[j]:
                hit[j] = True
                break


def eve_slots(rng, key, slot0, n, weights, period_ps, delay_ps, jitter_ps, mu, t_link,
              t_bob, p_det, eff, center, width, f_ir, f_pns, f_blind, f_ts, shift_ps, pns_block,
              pns_forward, p_bob_z):
    """Reference of eve.simulate_slots_with_eve for one sub-block (n slots), same draws in the same order.

    Returns basis, bit, intensity, click_t, click_det, stats (8 counts, see eve.N_STATS).
    """
    def window(offset):
        return [math.exp(-0.5 * ((offset - center[j]) / width[j]) ** 2) if width[j] > 0 else 1.0
                for j in range(4)]

    eff0 = [eff[j] * window(0.0)[j] for j in range(4)]
    basis, bit, inten, click_t, click_det = [], [], [], [], []
    stats = [0] * 8
    for i in range(n):
        c, b, x = alice_choice(slot_hash(key, slot0 + i) & 0xFFFFFFFF, weights)
        basis.append(b)
        bit.append(x)
        inten.append(c)
        s = 2 * b + x
        a = rng.random()
        hit = [False] * 4
        shift = 0.0
        if a < f_ir + f_pns + f_blind:
            n_ph = int(rng.poisson(mu[c]))
            if n_ph > 0 and (a < f_ir or a >= f_ir + f_pns):  # Eve measures: IR or blinding
                eve_basis = 1 if rng.random() < 0.5 else 0
                eve_bit = x if eve_basis == b else (1 if rng.random() < 0.5 else 0)
                eve_state = 2 * eve_basis + eve_bit
                if a < f_ir:
                    stats[0] += 1
                    route_photons(rng, n_ph, [t_link * p_det[eve_state, j] * eff0[j] for j in range(4)], hit)
                else:
                    bob_basis = 0 if rng.random() < p_bob_z else 1
                    if bob_basis == eve_basis:
                        hit[eve_state] = True
                        stats[3] += 1
            elif n_ph > 0:  # PNS
                forwarded = n_ph
                if n_ph >= 2:
                    stats[1] += 1
                    forwarded = n_ph - 1
                elif rng.random() < pns_block:
                    stats[2] += 1
                    forwarded = 0
                route_photons(rng, forwarded, [pns_forward * t_bob * p_det[s, j] * eff0[j] for j in range(4)], hit)
        elif f_blind == 0.0:
            if f_ts > 0.0 and rng.random() < f_ts:
                shift = shift_ps if rng.random() < 0.5 else -shift_ps
            g = window(shift)
            for j in range(4):
                lam = mu[c] * t_link * p_det[s, j] * eff[j] * g[j]
                hit[j] = rng.random() < 1.0 - math.exp(-lam)
            if shift != 0.0:
                for j in range(4):
                    if hit[j]:
                        stats[4 + (0 if shift > 0 else 2) + j % 2] += 1
        for j in range(4):
            if hit[j]:
                t = (slot0 + i) * period_ps + delay_ps + shift + jitter_ps[j] * rng.standard_normal()
                click_t.append(int(np.rint(t)))
                click_det.append(j)
    return basis, bit, inten, click_t, click_det, stats
