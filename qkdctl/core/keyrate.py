"""Finite-key secret key length of three-intensity decoy-state BB84.

Bounds of Lim, Curty, Walenta, Xu, Zbinden, Phys. Rev. A 89, 022307 (2014),
arXiv:1311.7129, Eqs. (1)-(5).  Lim's X basis is the *key* basis; qkdctl's key
basis is Z (BASIS_Z).  This module names everything by role: ``key`` = our Z =
Lim's X, ``test`` = our X = Lim's Z (see docs/keyrate.md for the table).

Pure Python ``math`` on scalars: one evaluation takes tens of microseconds.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from qkdctl.core.errors import QkdInputError

_LN2 = math.log(2.0)
# Lim et al. split eps_sec into 21 parts (Hoeffding, decoy and phase-error steps).
_EPS_SPLIT = 21.0


def binary_entropy(p: float) -> float:
    """h(p) = -p log2 p - (1-p) log2(1-p) in bits; h(0) = h(1) = 0."""
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -p * math.log2(p) - (1.0 - p) * math.log2(1.0 - p)


def hoeffding_delta(n: float, eps: float) -> float:
    """Hoeffding deviation delta(n, eps) = sqrt(n/2 * ln(1/eps)) (counts)."""
    return math.sqrt(0.5 * n * math.log(1.0 / eps))


def phase_error_gamma(eps_sec: float, ratio: float, n_test1: float, n_key1: float) -> float:
    """Lim's gamma(a, b, c, d): random-sampling correction of the phase-error rate.

    gamma = sqrt( (c+d)(1-b)b / (c d ln2) * log2( (c+d)/(c d (1-b) b) * 21^2/a^2 ) )
    with a = eps_sec, b = ratio v/s (0 < b < 1), c = s_test1, d = s_key1 (> 0).
    A non-positive log argument (never met for meaningful inputs) gives 0.
    """
    c, d, b = n_test1, n_key1, ratio
    cd = c * d
    var = (1.0 - b) * b
    log_arg = (c + d) / (cd * var) * (_EPS_SPLIT / eps_sec) ** 2
    if log_arg <= 1.0:
        return 0.0
    return math.sqrt((c + d) * var / (cd * _LN2) * math.log2(log_arg))


def check_decoy_settings(mu: tuple[float, float, float], p_mu: tuple[float, float, float]) -> None:
    """Raise QkdInputError unless mu1 > mu2 + mu3, mu2 > mu3 >= 0 and p_mu is a distribution."""
    if len(mu) != 3 or len(p_mu) != 3:
        raise QkdInputError(
            f"need exactly three intensities and three probabilities, got {len(mu)} and {len(p_mu)}"
        )
    mu1, mu2, mu3 = (float(m) for m in mu)
    if not all(math.isfinite(m) for m in (mu1, mu2, mu3)):
        raise QkdInputError(f"intensities must be finite, got {list(mu)}")
    if mu3 < 0.0:
        raise QkdInputError(f"intensity mu3 = {mu3} must be >= 0")
    if not mu2 > mu3:
        raise QkdInputError(f"intensities need mu2 > mu3, got mu2 = {mu2}, mu3 = {mu3}")
    if not mu1 > mu2 + mu3:
        raise QkdInputError(
            f"intensities need mu1 > mu2 + mu3, got mu1 = {mu1}, mu2 + mu3 = {mu2 + mu3}"
        )
    if any(not (0.0 < p < 1.0) for p in p_mu):
        raise QkdInputError(f"intensity probabilities must each lie in (0, 1), got {list(p_mu)}")
    total = math.fsum(p_mu)
    if abs(total - 1.0) > 1e-9:
        raise QkdInputError(f"intensity probabilities must sum to 1, got sum {total!r}")


@dataclass(frozen=True)
class DecoySettings:
    """Protocol constants of one evaluation.

    mu: mean photon numbers (mu1 signal, mu2 decoy, mu3 weak/vacuum), photons per pulse.
    p_mu: probabilities of sending each intensity.  eps_sec, eps_cor: secrecy and
    correctness parameters (Lim's eps_sec, eps_cor).
    """

    mu: tuple[float, float, float]
    p_mu: tuple[float, float, float]
    eps_sec: float
    eps_cor: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "mu", tuple(float(m) for m in self.mu))
        object.__setattr__(self, "p_mu", tuple(float(p) for p in self.p_mu))
        check_decoy_settings(self.mu, self.p_mu)
        for name in ("eps_sec", "eps_cor"):
            v = getattr(self, name)
            if not (0.0 < v < 1.0):
                raise QkdInputError(f"{name} = {v} must lie in (0, 1)")


@dataclass(frozen=True)
class DecoyStats:
    """Block statistics per intensity (index 0 signal mu1, 1 decoy mu2, 2 vacuum mu3).

    n_key/m_key: detections/errors with Alice and Bob both in the key basis (our Z,
    Lim's X).  n_test/m_test: the same in the test basis (our X, Lim's Z).
    leak_ec_bits: bits disclosed by error correction (Lim's lambda_EC).
    Counts may be expected (non-integer) values from a link model.
    """

    n_key: tuple[float, float, float]
    m_key: tuple[float, float, float]
    n_test: tuple[float, float, float]
    m_test: tuple[float, float, float]
    leak_ec_bits: float

    def __post_init__(self) -> None:
        for name in ("n_key", "m_key", "n_test", "m_test"):
            v = tuple(float(x) for x in getattr(self, name))
            if len(v) != 3:
                raise QkdInputError(f"DecoyStats.{name} needs 3 values (one per intensity), got {len(v)}")
            if any(not math.isfinite(x) or x < 0.0 for x in v):
                raise QkdInputError(f"DecoyStats.{name} must be finite and >= 0, got {list(v)}")
            object.__setattr__(self, name, v)
        for err, det in (("m_key", "n_key"), ("m_test", "n_test")):
            for k, (m, n) in enumerate(zip(getattr(self, err), getattr(self, det))):
                if m > n:
                    raise QkdInputError(f"DecoyStats.{err}[{k}] = {m} exceeds {det}[{k}] = {n}")
        if sum(self.n_key) <= 0.0:
            raise QkdInputError("DecoyStats.n_key is empty: no detections in the key basis")
        if sum(self.n_test) <= 0.0:
            raise QkdInputError("DecoyStats.n_test is empty: no detections in the test basis")
        leak = float(self.leak_ec_bits)
        if not math.isfinite(leak) or leak < 0.0:
            raise QkdInputError(f"DecoyStats.leak_ec_bits = {leak} must be finite and >= 0")
        object.__setattr__(self, "leak_ec_bits", leak)


@dataclass(frozen=True)
class KeyLength:
    """Every intermediate bound of one key-length evaluation (for the BlockReport).

    Names follow roles (key = our Z = Lim's X; test = our X = Lim's Z); suffix _l
    lower bound, _u upper bound.  Counts are detections (bits).  ``flags`` names
    every decoy statistic that is inconsistent with its bound; ``key_length_bits``
    is floor(length_bits) when positive and no blocking flag is set, else 0.
    """

    finite: bool
    n_key_total: float
    n_test_total: float
    m_test_total: float
    qber_key: float
    qber_test: float
    delta_n_key: float
    delta_n_test: float
    delta_m_test: float
    n_key_minus: tuple[float, float, float]
    n_key_plus: tuple[float, float, float]
    n_test_minus: tuple[float, float, float]
    n_test_plus: tuple[float, float, float]
    m_test_minus: tuple[float, float, float]
    m_test_plus: tuple[float, float, float]
    tau0: float
    tau1: float
    s_key0_l: float
    s_key1_l: float
    s_test0_l: float
    s_test1_l: float
    v_test1_u: float
    phase_ratio: float
    gamma: float
    phi_key_u: float
    leak_ec_bits: float
    eps_cost_bits: float
    length_bits: float
    key_length_bits: int
    flags: tuple[str, ...]

    @property
    def has_key(self) -> bool:
        """True when the block yields a positive key length."""
        return self.key_length_bits > 0

    def as_dict(self) -> dict:
        """Plain dict of every figure (JSON-friendly)."""
        d = asdict(self)
        d["flags"] = list(self.flags)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d


def _tau(n: int, mu: tuple[float, float, float], p_mu: tuple[float, float, float]) -> float:
    """tau_n = sum_k p_k e^-k k^n / n!: probability that Alice sends n photons."""
    return math.fsum(p * math.exp(-m) * m**n for m, p in zip(mu, p_mu)) / math.factorial(n)


def _bounds(counts, total, eps, mu, p_mu, finite):
    """Hoeffding-widened, intensity-normalised counts (e^k/p_k)(n_k -+ delta)."""
    delta = hoeffding_delta(total, eps) if finite and total > 0.0 else 0.0
    minus = tuple(math.exp(m) / p * (c - delta) for c, m, p in zip(counts, mu, p_mu))
    plus = tuple(math.exp(m) / p * (c + delta) for c, m, p in zip(counts, mu, p_mu))
    return delta, minus, plus


def _vacuum_lower(minus, plus, mu, tau0):
    """Lim Eq. (2): s_0 >= tau0 (mu2 n^-_mu3 - mu3 n^+_mu2) / (mu2 - mu3)."""
    _, mu2, mu3 = mu
    return tau0 * (mu2 * minus[2] - mu3 * plus[1]) / (mu2 - mu3)


def _single_lower(minus, plus, mu, tau0, tau1, s0_l):
    """Lim Eq. (3): single-photon lower bound from the three intensities."""
    mu1, mu2, mu3 = mu
    a = (mu2 * mu2 - mu3 * mu3) / (mu1 * mu1)
    num = minus[1] - plus[2] - a * (plus[0] - s0_l / tau0)
    den = mu1 * (mu2 - mu3) - mu2 * mu2 + mu3 * mu3
    return tau1 * mu1 * num / den


def key_length(stats: DecoyStats, settings: DecoySettings, finite: bool = True) -> KeyLength:
    """Secret key length (bits) of one block: Lim et al. (2014) Eq. (1).

    l = s_key0_l + s_key1_l (1 - h(phi_key_u)) - leak_EC - 6 log2(21/eps_sec) - log2(2/eps_cor).
    finite=False drops every finite-size term (Hoeffding deltas, gamma and the eps
    costs): the asymptotic three-intensity bound on the same statistics.
    """
    mu, p_mu = settings.mu, settings.p_mu
    eps = settings.eps_sec / _EPS_SPLIT
    tau0 = _tau(0, mu, p_mu)
    tau1 = _tau(1, mu, p_mu)
    n_key_tot = math.fsum(stats.n_key)
    n_test_tot = math.fsum(stats.n_test)
    m_test_tot = math.fsum(stats.m_test)
    m_key_tot = math.fsum(stats.m_key)

    d_nk, nk_minus, nk_plus = _bounds(stats.n_key, n_key_tot, eps, mu, p_mu, finite)
    d_nt, nt_minus, nt_plus = _bounds(stats.n_test, n_test_tot, eps, mu, p_mu, finite)
    d_mt, mt_minus, mt_plus = _bounds(stats.m_test, m_test_tot, eps, mu, p_mu, finite)

    flags: list[str] = []
    s_key0_raw = _vacuum_lower(nk_minus, nk_plus, mu, tau0)
    s_test0_raw = _vacuum_lower(nt_minus, nt_plus, mu, tau0)
    if s_key0_raw < 0.0:
        flags.append("s_key0_l<0: vacuum lower bound negative, 0 used")
    if s_test0_raw < 0.0:
        flags.append("s_test0_l<0: vacuum lower bound negative, 0 used")
    # A negative lower bound on a count is valid but empty: the count is >= 0 anyway.
    s_key0 = max(s_key0_raw, 0.0)
    s_test0 = max(s_test0_raw, 0.0)
    s_key1 = _single_lower(nk_minus, nk_plus, mu, tau0, tau1, s_key0)
    s_test1 = _single_lower(nt_minus, nt_plus, mu, tau0, tau1, s_test0)
    _, mu2, mu3 = mu
    v_test1 = tau1 * (mt_plus[1] - mt_minus[2]) / (mu2 - mu3)  # Lim Eq. (4)

    blocking = False
    if s_key1 <= 0.0:
        flags.append("s_key1_l<=0: no single-photon key-basis events can be certified")
        blocking = True
    if s_test1 <= 0.0:
        flags.append("s_test1_l<=0: no single-photon test-basis events, phase error unbounded")
        blocking = True
    if v_test1 < 0.0:
        flags.append("v_test1_u<0: decoy error counts inconsistent (negative error upper bound)")
        blocking = True

    ratio = v_test1 / s_test1 if s_test1 > 0.0 else math.nan
    gamma = 0.0
    if blocking:
        phi = 0.5
    elif ratio >= 0.5:
        flags.append("phi_key_u>=0.5: phase error bound at or above 1/2")
        phi = 0.5
    else:
        if finite and ratio > 0.0:
            gamma = phase_error_gamma(settings.eps_sec, ratio, s_test1, s_key1)
        phi = ratio + gamma  # Lim Eq. (5)
        if phi >= 0.5:
            flags.append("phi_key_u>=0.5: phase error bound at or above 1/2")
    h_phi = 1.0 if phi >= 0.5 else binary_entropy(phi)

    eps_cost = 0.0
    if finite:
        eps_cost = 6.0 * math.log2(_EPS_SPLIT / settings.eps_sec) + math.log2(2.0 / settings.eps_cor)
    length = s_key0 + max(s_key1, 0.0) * (1.0 - h_phi) - stats.leak_ec_bits - eps_cost
    key_bits = 0 if blocking or length <= 0.0 else int(math.floor(length))
    return KeyLength(
        finite=finite,
        n_key_total=n_key_tot,
        n_test_total=n_test_tot,
        m_test_total=m_test_tot,
        qber_key=m_key_tot / n_key_tot,
        qber_test=m_test_tot / n_test_tot,
        delta_n_key=d_nk,
        delta_n_test=d_nt,
        delta_m_test=d_mt,
        n_key_minus=nk_minus,
        n_key_plus=nk_plus,
        n_test_minus=nt_minus,
        n_test_plus=nt_plus,
        m_test_minus=mt_minus,
        m_test_plus=mt_plus,
        tau0=tau0,
        tau1=tau1,
        s_key0_l=s_key0_raw,
        s_key1_l=s_key1,
        s_test0_l=s_test0_raw,
        s_test1_l=s_test1,
        v_test1_u=v_test1,
        phase_ratio=ratio,
        gamma=gamma,
        phi_key_u=phi,
        leak_ec_bits=stats.leak_ec_bits,
        eps_cost_bits=eps_cost,
        length_bits=length,
        key_length_bits=key_bits,
        flags=tuple(flags),
    )


def gllp_rate(
    q_key0: float, q_key1: float, e1_phase: float, q_key: float, e_key: float, ec_efficiency: float
) -> float:
    """Asymptotic GLLP decoy rate (bits per pulse) with exactly known yields (infinite decoys).

    R = q_key0 + q_key1 (1 - h(e1_phase)) - f_EC q_key h(e_key), where q_key0/q_key1 are
    the per-pulse probabilities of a key-basis detection from a vacuum / single-photon
    pulse, e1_phase the single-photon test-basis error rate, q_key the per-pulse
    key-basis detection probability and e_key its QBER.  Negative values mean no key.
    """
    return q_key0 + q_key1 * (1.0 - binary_entropy(e1_phase)) - ec_efficiency * q_key * binary_entropy(e_key)
