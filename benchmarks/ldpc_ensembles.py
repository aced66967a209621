"""Variable-degree distributions for high-rate LDPC codes on the BSC: density evolution + LP.

Tool behind the high-rate rows of `qkdctl.core.reconcile.codes.DEGREE_DISTRIBUTIONS`
(`python -m benchmarks.ldpc_ensembles` prints them); not imported by the package.

Density evolution by the Gaussian approximation of Chung, Richardson and Urbanke, "Analysis
of sum-product decoding of low-density parity-check codes using a Gaussian approximation",
IEEE Trans. IT 47, 657 (2001): a check-to-variable message is a consistent Gaussian
N(m, 2m), tracked by its mean m.  On the BSC (crossover q, channel LLR +-L, L = ln((1-q)/q))
the variable-to-check message of a degree-i node is the exact mixture
+-L + N((i-1)m, 2(i-1)m); its E[tanh(v/2)] is computed by quadrature, and at a check of
degree j the mean of tanh(u/2) is exactly the product of the incoming ones, so only the
check output is Gaussian-approximated: m' = sum_j rho_j phi^-1(1 - t^(j-1)) with CRU's
phi(x) = 1 - E[tanh(u/2)], u ~ N(x, 2x) (the "semi-Gaussian" variant: BSC channel kept
exact).  Tracked quantity s = 1 - E[tanh(v/2)] (s0 = 4q(1-q) before the first iteration).

Optimisation (the linear programme of Richardson, Shokrollahi, Urbanke, IEEE Trans. IT 47,
619 (2001) and CRU 2001, section V): with the check side fixed, s_(l+1) = sum_i lambda_i
f_i(m(s_l)) is linear in lambda; decoding succeeds when it is below s (by a margin) on a
grid of s in (0, s0].  For fixed q and average check degree, maximise sum_i lambda_i / i
(the design rate) subject to those constraints, sum lambda = 1, lambda >= 0, lambda_i = 0
above the capped maximum degree, and the BSC stability condition
lambda_2 rho'(1) <= 1 / (2 sqrt(q(1-q))); bisect q for the wanted rate; scan the check
degree.  Check degrees are concentrated (two adjacent values, as PEG builds them); with
`shortened` > 0 they are thinned binomially (each edge survives with probability
1 - shortened), which is what random shortening of a frame does to the decoder's graph, and
the rate is the effective (shortened) one.  Threshold as efficiency: f* = (1 - R) / h(q*).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np
from scipy.optimize import linprog
from scipy.special import expit
from scipy.stats import binom

S_MIN = 1e-7  # s below this counts as decoded
GRID_POINTS = 240  # s grid of the LP constraints (log-spaced in (S_MIN, s0])
MARGIN = 1e-3  # each iteration must shrink s by at least this relative margin
QUAD_POINTS = 801  # quadrature nodes per Gaussian expectation


def binary_entropy(q: float) -> float:
    """h(q) in bits."""
    return float(-q * np.log2(q) - (1 - q) * np.log2(1 - q))


def _one_minus_tanh_mean(shift: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """1 - E[tanh((shift + G)/2)], G ~ N(mean, 2 mean) (mean >= 0), elementwise."""
    shift, mean = np.broadcast_arrays(np.asarray(shift, float), np.asarray(mean, float))
    out = 1.0 - np.tanh(shift / 2.0)
    pos = mean > 1e-12
    if np.any(pos):
        mu, sd, c = mean[pos], np.sqrt(2.0 * mean[pos]), shift[pos]
        centre = c + mu
        # 1 - tanh(x/2) = 2 expit(-x); e^-x times the Gaussian peaks at x = centre - sd^2,
        # so the nodes span from below that point to above the mean
        lo = np.minimum(centre - 10.0 * sd, centre - sd**2 - 10.0 * sd)
        hi = centre + 10.0 * sd
        u = np.linspace(0.0, 1.0, QUAD_POINTS)
        x = lo[:, None] + (hi - lo)[:, None] * u[None, :]
        dens = np.exp(-((x - centre[:, None]) ** 2) / (2 * sd[:, None] ** 2)) / (sd[:, None] * np.sqrt(2 * np.pi))
        vals = 2.0 * expit(-x) * dens
        out[pos] = np.trapezoid(vals, x, axis=1)
    return out


def phi(m: np.ndarray) -> np.ndarray:
    """CRU 2001 phi(m) = 1 - E[tanh(u/2)], u ~ N(m, 2m); phi(0) = 1."""
    return _one_minus_tanh_mean(np.zeros_like(np.asarray(m, float)), m)


@lru_cache(maxsize=1)
def _phi_table() -> tuple[np.ndarray, np.ndarray]:
    m = np.concatenate([[0.0], np.geomspace(1e-8, 400.0, 3000)])
    return m, phi(m)


def phi_inverse(y: np.ndarray) -> np.ndarray:
    """Mean m with phi(m) = y, by interpolation in (log phi) on the tabulated grid; inf at y=0."""
    m_tab, p_tab = _phi_table()
    y = np.asarray(y, float)
    out = np.full(y.shape, np.inf)
    ok = y > p_tab[-1]
    # phi decreases: interpolate m against log phi (ascending after reversal)
    out[ok] = np.interp(np.log(np.clip(y[ok], 1e-300, 1.0)), np.log(p_tab[::-1]), m_tab[::-1])
    out[y >= 1.0] = 0.0
    return out


@dataclass(frozen=True)
class CheckSide:
    """Check-degree distribution, edge perspective: degrees and fractions (sum 1)."""

    degrees: np.ndarray
    rho: np.ndarray

    @property
    def integral(self) -> float:
        """sum_j rho_j / j = checks per edge."""
        return float(np.sum(self.rho / self.degrees))

    @property
    def derivative_at_one(self) -> float:
        """rho'(1) = sum_j rho_j (j - 1)."""
        return float(np.sum(self.rho * (self.degrees - 1)))


def concentrated_checks(mean_degree: float, shortened: float = 0.0) -> CheckSide:
    """Checks of degrees floor(d), floor(d)+1 with node-average `mean_degree`, each edge kept
    with probability 1 - `shortened` (random shortening of the frame)."""
    if mean_degree < 2.0 or not 0.0 <= shortened < 1.0:
        raise ValueError(f"need mean_degree >= 2 and 0 <= shortened < 1, got {mean_degree}, {shortened}")
    lo = int(np.floor(mean_degree))
    frac_hi = mean_degree - lo
    node = {lo: 1.0 - frac_hi, lo + 1: frac_hi}
    if shortened > 0.0:
        thinned: dict[int, float] = {}
        for d, w in node.items():
            ks = np.arange(1, d + 1)  # checks left with no edge carry no messages
            for k, pk in zip(ks, binom.pmf(ks, d, 1.0 - shortened)):
                thinned[int(k)] = thinned.get(int(k), 0.0) + w * pk
        node = thinned
    degs = np.array(sorted(d for d, w in node.items() if w > 1e-12), dtype=float)
    w = np.array([node[int(d)] for d in degs])
    rho = w * degs / np.sum(w * degs)
    return CheckSide(degs, rho)


def check_mean(s: np.ndarray, checks: CheckSide) -> np.ndarray:
    """Check-to-variable mean m after variable messages with 1 - E[tanh(v/2)] = s."""
    s = np.asarray(s, float)
    t = 1.0 - s
    out = np.zeros(s.shape)
    for j, r in zip(checks.degrees, checks.rho):
        out += r * phi_inverse(1.0 - t ** (j - 1))
    return out


def variable_terms(q: float, degrees: np.ndarray, m: np.ndarray) -> np.ndarray:
    """f_i(m) = 1 - E[tanh(v/2)] of a degree-i node's outgoing message (BSC q): [len(m), len(degrees)]."""
    llr = np.log((1 - q) / q)
    mean = np.outer(np.asarray(m, float), np.asarray(degrees, float) - 1.0)
    mean = np.where(np.isfinite(mean), mean, 1e6)
    return (1 - q) * _one_minus_tanh_mean(llr, mean) + q * _one_minus_tanh_mean(-llr, mean)


def converges(q: float, var_degrees: np.ndarray, lam: np.ndarray, checks: CheckSide,
              max_iter: int = 2000) -> bool:
    """Density evolution (semi-Gaussian) of the ensemble on BSC(q) reaches s < S_MIN."""
    s = 4 * q * (1 - q)
    for _ in range(max_iter):
        m = check_mean(np.array([s]), checks)
        s_new = float(variable_terms(q, var_degrees, m)[0] @ lam)
        if s_new < S_MIN:
            return True
        if s_new >= s * (1 - 1e-9):
            return False
        s = s_new
    return False


def threshold(var_degrees: np.ndarray, lam: np.ndarray, checks: CheckSide,
              lo: float = 1e-4, hi: float = 0.2, tol: float = 1e-5) -> float:
    """Largest BSC crossover q at which `converges` holds (bisection)."""
    var_degrees, lam = np.asarray(var_degrees, float), np.asarray(lam, float)
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if converges(mid, var_degrees, lam, checks):
            lo = mid
        else:
            hi = mid
    return lo


@dataclass(frozen=True)
class Ensemble:
    """An optimised ensemble: lambda (edge perspective) on `degrees`, its checks, rate, threshold."""

    degrees: np.ndarray
    lam: np.ndarray
    checks: CheckSide
    rate: float
    q_star: float

    @property
    def f_star(self) -> float:
        """Threshold efficiency (1 - R) / h(q*)."""
        return (1.0 - self.rate) / binary_entropy(self.q_star)


def max_rate_lp(q: float, degrees: np.ndarray, checks: CheckSide,
                lambda2_max: float | None = None) -> tuple[float, np.ndarray] | None:
    """Largest rate of a lambda on `degrees` whose DE converges on BSC(q) with these checks.

    Returns (rate, lambda) or None if no lambda satisfies the constraints.
    """
    s0 = 4 * q * (1 - q)
    s = np.geomspace(S_MIN, s0, GRID_POINTS)
    m = check_mean(s, checks)
    f = variable_terms(q, degrees, m)  # [grid, degrees]
    stab = 1.0 / (2.0 * np.sqrt(q * (1 - q)) * checks.derivative_at_one)
    bounds = [(0.0, None)] * degrees.size
    if degrees[0] == 2:
        cap = stab * (1 - MARGIN)
        if lambda2_max is not None:
            cap = min(cap, lambda2_max)
        bounds[0] = (0.0, cap)
    res = linprog(-1.0 / degrees, A_ub=f, b_ub=s * (1 - MARGIN), A_eq=np.ones((1, degrees.size)),
                  b_eq=[1.0], bounds=bounds, method="highs")
    if res.status != 0:
        return None
    lam = np.clip(res.x, 0.0, None)
    lam /= lam.sum()
    return 1.0 - checks.integral / float(np.sum(lam / degrees)), lam


def optimise(rate: float, max_degree: int, mean_check_degrees: np.ndarray, shortened: float = 0.0,
             degrees: np.ndarray | None = None, lambda2_max: float | None = None) -> Ensemble:
    """Best lambda (max BSC threshold) of effective rate `rate` over the given check-degree means."""
    degrees = np.arange(2, max_degree + 1, dtype=float) if degrees is None else np.asarray(degrees, float)
    best: Ensemble | None = None
    for dc in mean_check_degrees:
        checks = concentrated_checks(float(dc), shortened)
        lo, hi, found = 1e-4, 0.2, None
        while hi - lo > 2e-5:
            mid = 0.5 * (lo + hi)
            got = max_rate_lp(mid, degrees, checks, lambda2_max)
            if got is not None and got[0] >= rate:
                lo, found = mid, got
            else:
                hi = mid
        if found is None:
            continue
        cand = Ensemble(degrees, found[1], checks, found[0], lo)
        if best is None or cand.q_star > best.q_star:
            best = cand
    if best is None:
        raise ValueError(f"no ensemble of rate {rate} with degrees <= {max_degree}")
    return best


def rounded(ens: Ensemble, digits: int = 3) -> tuple[tuple[int, float], ...]:
    """The ensemble as a codes.py row: (degree, edge fraction) pairs, fractions rounded, sum 1."""
    keep = ens.lam > 0.5 * 10**-digits
    degs = ens.degrees[keep].astype(int)
    lam = np.round(ens.lam[keep] / ens.lam[keep].sum(), digits)
    lam[np.argmax(lam)] += round(1.0 - lam.sum(), digits)
    return tuple((int(d), float(round(w, digits))) for d, w in zip(degs, lam))


def design_rate(row: tuple[tuple[int, float], ...], mean_check_degree: float) -> float:
    """Design rate of a variable row with concentrated checks of node-average `mean_check_degree`."""
    return 1.0 - 1.0 / (mean_check_degree * sum(w / d for d, w in row))


def previous_row(rate: float) -> tuple[tuple[int, float], ...]:
    """The row a family code of `rate` used before the optimised high-rate row (0.87-0.90)."""
    from qkdctl.core.reconcile import codes as C

    key = round(rate, 2)
    if key >= 0.89:
        return C.DEGREE_DISTRIBUTIONS[0.90]
    return C.DEGREE_DISTRIBUTIONS[0.80] if key >= 0.80 else C.ensemble_of(key)


def frame_failures(row_of: Callable[[float], tuple[tuple[int, float], ...]], qber: float,
                   f_values: list[float], frames: int, rng: np.random.Generator,
                   frame_n: int = 65536, key_bits: int = 50_000, max_iter: int = 300,
                   stall_iter: int = 40) -> list[dict]:
    """One-shot BP on frames laid out as ldpc-blind would at each f, codes built from `row_of(rate)`.

    Each frame holds `key_bits` key bits with exactly round(qber * key_bits) errors; the code,
    puncturing and shortening come from `choose_layout` at that f (PEG codes of `frame_n`
    columns, seed `CODE_SEED`).  Returns per f: code rate, punctured bits, failures, mean BP
    iterations.  The same `rng` state gives the same frames for every row.
    """
    from qkdctl.core.reconcile import codes as C
    from qkdctl.core.reconcile import ldpc as L
    from qkdctl.protocol.ldpc_roles import CODE_SEED

    state = rng.bit_generator.state
    out = []
    built: dict[float, C.LdpcCode] = {}
    for f in f_values:
        rates = L.candidate_rates(C.FAMILY_RATES, frame_n, 2 * key_bits, qber, f)
        for r in rates:
            if r not in built:
                built[r] = C.build_code(r, frame_n, CODE_SEED, dist=row_of(r))
        lay = L.choose_layout({r: built[r] for r in rates}, 2 * key_bits, qber, f, 0.0)
        dec = L.SyndromeDecoder(lay.code, max_iter=max_iter, stall_iter=stall_iter,
                                columns=np.sort(np.concatenate([lay.key_pos, lay.punct_pos])))
        priors = L.error_priors(lay, qber)
        rng.bit_generator.state = state
        fail = iters = 0
        for _ in range(frames):
            key_a = rng.integers(0, 2, lay.k, dtype=np.uint8)
            err = np.zeros(lay.k, np.uint8)
            err[rng.choice(lay.k, int(round(qber * lay.k)), replace=False)] = 1
            pad = rng.integers(0, 2, lay.punct_pos.size, dtype=np.uint8)
            y = L.frame_bits(lay, key_a ^ err, np.zeros_like(pad))
            target = L.syndrome(lay.code, L.frame_bits(lay, key_a, pad)) ^ L.syndrome(lay.code, y)
            res = dec.decode(target, priors)
            fail += not (res.converged and np.array_equal((y ^ res.error)[lay.key_pos], key_a))
            iters += res.iterations
        out.append({"f": f, "rate": lay.code.rate, "punct": int(lay.punct_pos.size),
                    "failed": fail, "frames": frames, "iterations": iters / frames})
    return out


def main() -> None:
    """Print optimised rows for the given effective rates (the table in codes.py), or with
    --measure QBER the one-shot frame failures of the previous and the current rows."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", type=float, nargs="+", default=[0.80, 0.85, 0.9])
    ap.add_argument("--max-degree", type=int, default=20)
    ap.add_argument("--shortened", type=float, default=0.0)
    ap.add_argument("--check-degrees", type=float, nargs=3, default=[16, 60, 1],
                    metavar=("FROM", "TO", "STEP"))
    ap.add_argument("--measure", type=float, default=None, metavar="QBER")
    ap.add_argument("--f", type=float, nargs="+", default=[1.13, 1.10, 1.085, 1.07])
    ap.add_argument("--frames", type=int, default=40)
    args = ap.parse_args()
    if args.measure is not None:
        from qkdctl.core.reconcile.codes import ensemble_of

        for name, row_of in (("previous", previous_row), ("current", ensemble_of)):
            for r in frame_failures(row_of, args.measure, args.f, args.frames,
                                    np.random.default_rng(1)):
                print(f"{name:8s} qber {args.measure} f {r['f']}: rate {r['rate']} punct {r['punct']} "
                      f"failed {r['failed']}/{r['frames']} iterations {r['iterations']:.0f}")
        return
    dcs = np.arange(args.check_degrees[0], args.check_degrees[1] + 1e-9, args.check_degrees[2])
    for r in args.rates:
        ens = optimise(r, args.max_degree, dcs, args.shortened)
        row = rounded(ens)
        design = 1.0 - (1.0 - r) * (1.0 - args.shortened)  # rate of the code before shortening
        print(f"effective rate {r:.4f} (code rate {design:.3f}, {args.shortened:.3f} shortened): "
              f"q* {ens.q_star:.4f} f* {ens.f_star:.4f} "
              f"check degrees {ens.checks.degrees.min():.0f}-{ens.checks.degrees.max():.0f}")
        print(f"    {design:.2f}: {row},")


if __name__ == "__main__":
    main()
