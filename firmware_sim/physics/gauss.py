"""Uniform and standard normal draws inlined into the simulator's kernels.

A sequential SplitMix64 stream (Steele, Lea & Flood, OOPSLA 2014; the same mix64 as
Alice's counter generator): word = mix64(state), then state += GAMMA.  The state is a
plain uint64 that the kernels carry in registers and hand back, so a draw costs a few
multiplies instead of an indirect call into a numpy BitGenerator.

Normals by the ziggurat method of Marsaglia & Tsang (J. Stat. Softw. 5(8), 2000) with
N = 256 layers of equal area v under f(x) = exp(-x^2 / 2), x >= 0:
- layer 0 is the base rectangle [0, r] x [0, f(r)] plus the tail x > r; its pseudo
  width x_0 = v / f(r) (v = r f(r) + integral_r^inf f, from erfc);
- layer i >= 1 is the rectangle [0, x_i] x [f(x_i), f(x_i) + v / x_i] with x_1 = r and
  x_{i+1} = f^-1(f(x_i) + v / x_i) (0 once that reaches 1: the top layer may stick out
  above f(0) = 1, the wedge test below cuts it off, so the draw stays exact).
One 64-bit word gives the layer (8 bits), the sign (1 bit) and U (53 bits): x = U x_i.
x < x_{i+1} (integer compare of U's bits, ~99 % of draws) is under the curve: accept.
Otherwise in layer 0 draw from the tail by Marsaglia's method (x = -ln U1 / r,
y = -ln U2 until 2 y > x^2, return r + x); in layer i >= 1 accept when
f(x_i) + U2 v / x_i < f(x); else start over with a fresh word (a new layer).  The
accepted x is then exactly |N(0, 1)| up to float64 rounding and the 2^-53 grid of U;
no truncated table, the tail is unbounded.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from firmware_sim.physics.alice import GAMMA, mix64
from qkdctl.core.errors import QkdInputError

N_LAYERS = 256
ZIGGURAT_R = 3.6541528853610088
"""Right edge x_1 of the base layer for 256 layers (Marsaglia & Tsang 2000)."""
_U53 = 2.0**-53
_MASK53 = np.uint64((1 << 53) - 1)


def _f(x: float) -> float:
    return math.exp(-0.5 * x * x)


def ziggurat_tables(
    r: float = ZIGGURAT_R, n: int = N_LAYERS
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """(x, k, w, f_x, v): layer edges x[0..n] (x[0] = v / f(r) the base's pseudo width,
    x[n] = 0), k[i] = floor(x[i+1] / x[i] * 2**53) (uint64, the accept bound of U's bits),
    w[i] = x[i] * 2**-53 (U's bits to x), f_x[i] = f(x[i]), and the layer area v."""
    v = r * _f(r) + math.sqrt(math.pi / 2.0) * math.erfc(r / math.sqrt(2.0))
    x = np.zeros(n + 1)
    x[0] = v / _f(r)
    x[1] = r
    for i in range(1, n):
        top = _f(x[i]) + v / x[i]
        x[i + 1] = math.sqrt(-2.0 * math.log(top)) if top < 1.0 else 0.0
    k = np.array([math.floor(x[i + 1] / x[i] * 2.0**53) for i in range(n)], dtype=np.uint64)
    w = x[:n] * _U53
    f_x = np.array([_f(e) for e in x])  # libm exp, as math.exp in the kernels
    return x, k, w, f_x, v


_X, _K, _W, _FX, _V = ziggurat_tables()
_INV_R = 1.0 / ZIGGURAT_R


@njit(cache=True, inline="always")
def next_word(state):
    """(64-bit word, next state) of the SplitMix64 stream at `state`."""
    return mix64(state), state + GAMMA


@njit(cache=True, inline="always")
def next_uniform(state):
    """(U in [0, 1) on the 2**-53 grid, next state)."""
    z, state = next_word(state)
    return np.float64(z >> np.uint64(11)) * _U53, state


@njit(cache=True, inline="always")
def next_normal(state):
    """(standard normal draw, next state): the ziggurat above."""
    while True:
        z, state = next_word(state)
        i = np.int64(z & np.uint64(0xFF))
        neg = (z >> np.uint64(8)) & np.uint64(1)
        u = z >> np.uint64(11)  # 53 bits
        x = np.float64(u) * _W[i]
        if u < _K[i]:
            return (-x if neg else x), state
        if i == 0:  # the tail beyond r
            while True:
                z, state = next_word(state)
                xt = -math.log(np.float64((z >> np.uint64(11)) + np.uint64(1)) * _U53) * _INV_R
                z, state = next_word(state)
                yt = -math.log(np.float64((z >> np.uint64(11)) + np.uint64(1)) * _U53)
                if yt + yt > xt * xt:
                    x = ZIGGURAT_R + xt
                    return (-x if neg else x), state
        z, state = next_word(state)
        if _FX[i] + np.float64(z >> np.uint64(11)) * _U53 * (_V / _X[i]) < math.exp(-0.5 * x * x):
            return (-x if neg else x), state


@njit(cache=True)
def _normals_kernel(state, out):
    for j in range(out.size):
        out[j], state = next_normal(state)
    return state


def standard_normals(state: int, n: int) -> tuple[np.ndarray, int]:
    """n standard normal draws (float64) of the stream at `state` (uint64) and the next state."""
    if not 0 <= int(state) < 2**64:
        raise QkdInputError(f"stream state {state} must be a 64-bit unsigned integer")
    if n < 0:
        raise QkdInputError(f"n must be >= 0, got {n}")
    out = np.empty(int(n))
    return out, int(_normals_kernel(np.uint64(state), out))
