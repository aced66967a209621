"""Control policies: the common interface, the classical softmax policy, save/load.

A policy maps feature vectors (qkdctl.control.features) to a probability for every
action of its ActionSpace; `choose` takes the most probable one (deployment) or
samples one with an explicit Generator (training).  Policies are saved as JSON with
their kind, action space, parameters and training record (seeds, episodes, shots);
a loaded policy gives the same probabilities, so it scores the same.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from qkdctl.control.actions import ActionSpace
from qkdctl.control.features import N_FEATURES
from qkdctl.core.errors import QkdInputError


class Policy(ABC):
    """Action probabilities from features; `kind` names the policy family in saved files."""

    kind: str = "policy"

    def __init__(self, space: ActionSpace, training: dict | None = None) -> None:
        self.space = space
        self.training: dict = dict(training or {})

    @abstractmethod
    def probs(self, features: np.ndarray) -> np.ndarray:
        """(N, n_actions) action probabilities for (N, N_FEATURES) features."""

    @abstractmethod
    def get_params(self) -> np.ndarray:
        """Trainable parameters as one flat float64 vector."""

    @abstractmethod
    def set_params(self, theta: np.ndarray) -> None:
        """Set the trainable parameters from a flat vector (length of get_params())."""

    def choose(self, features: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Action index per row: argmax when rng is None, else sampled with rng."""
        return pick_actions(self.probs(features), rng)

    def to_dict(self) -> dict:
        """JSON-ready form: kind, action space, parameters, options, training record."""
        return {"kind": self.kind, "space": self.space.to_dict(), "params": self.get_params().tolist(),
                "options": self.options(), "training": self.training}

    def options(self) -> dict:
        """Constructor options beyond the action space (saved with the policy)."""
        return {}

    def save(self, path: str | Path) -> None:
        """Write the policy as JSON to `path`."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))


def pick_actions(probs: np.ndarray, rng=None) -> np.ndarray:
    """Per row of (N, A) probabilities: the argmax (rng None), or a draw by inverse CDF with one
    uniform per row from rng.random(N)."""
    if rng is None:
        return np.argmax(probs, axis=1)
    u = rng.random(probs.shape[0])[:, None]
    return np.minimum((np.cumsum(probs, axis=1) < u).sum(axis=1), probs.shape[1] - 1)


def check_features(features: np.ndarray) -> np.ndarray:
    """Features as a contiguous (N, N_FEATURES) float64 array (QkdInputError naming the problem)."""
    x = np.ascontiguousarray(features, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != N_FEATURES:
        raise QkdInputError(f"policy features must have shape (N, {N_FEATURES}), got {np.shape(features)}")
    if not np.all(np.isfinite(x)):
        raise QkdInputError("policy features contain NaN or inf")
    return x


class SoftmaxPolicy(Policy):
    """Linear softmax policy: p(a | x) = softmax(W^T [x, 1])_a, W of shape (N_FEATURES + 1, n_actions)."""

    kind = "softmax"

    def __init__(self, space: ActionSpace, weights: np.ndarray | None = None, training: dict | None = None) -> None:
        super().__init__(space, training)
        shape = (N_FEATURES + 1, space.n_actions)
        w = np.zeros(shape) if weights is None else np.asarray(weights, dtype=np.float64).reshape(shape)
        self.weights = w.copy()

    def logits(self, features: np.ndarray) -> np.ndarray:
        """(N, n_actions) logits."""
        x = check_features(features)
        return np.hstack([x, np.ones((x.shape[0], 1))]) @ self.weights

    def probs(self, features: np.ndarray) -> np.ndarray:
        z = self.logits(features)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def grad_log_prob(self, features: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """(N, W.size) gradient of log p(a_i | x_i) with respect to W (flattened)."""
        x = check_features(features)
        xb = np.hstack([x, np.ones((x.shape[0], 1))])
        onehot = np.eye(self.space.n_actions)[np.asarray(actions, dtype=int)]
        return (xb[:, :, None] * (onehot - self.probs(x))[:, None, :]).reshape(x.shape[0], -1)

    def get_params(self) -> np.ndarray:
        return self.weights.ravel().copy()

    def set_params(self, theta: np.ndarray) -> None:
        theta = np.asarray(theta, dtype=np.float64)
        if theta.size != self.weights.size:
            raise QkdInputError(f"softmax policy has {self.weights.size} parameters, got {theta.size}")
        self.weights = theta.reshape(self.weights.shape).copy()


class FixedPolicy(Policy):
    """Always the same action (today's defaults, or a grid point); no parameters."""

    kind = "fixed"

    def __init__(self, space: ActionSpace, action_index: int, training: dict | None = None) -> None:
        super().__init__(space, training)
        space.action(action_index)  # validates the index
        self.action_index = int(action_index)

    def probs(self, features: np.ndarray) -> np.ndarray:
        x = check_features(features)
        p = np.zeros((x.shape[0], self.space.n_actions))
        p[:, self.action_index] = 1.0
        return p

    def get_params(self) -> np.ndarray:
        return np.zeros(0)

    def set_params(self, theta: np.ndarray) -> None:
        if np.size(theta):
            raise QkdInputError("a fixed policy has no parameters")

    def options(self) -> dict:
        return {"action_index": self.action_index}


def policy_from_dict(data: dict, backend=None) -> Policy:
    """Rebuild a saved policy; `backend` (a qkdctl.qml QuantumBackend) is required for kind 'vqc'."""
    if not isinstance(data, dict) or "kind" not in data:
        raise QkdInputError("saved policy: not a policy object (no 'kind')")
    space = ActionSpace.from_dict(data.get("space", {}))
    params = np.asarray(data.get("params", []), dtype=np.float64)
    training = data.get("training", {})
    opts = dict(data.get("options", {}))
    kind = data["kind"]
    if kind == "softmax":
        return SoftmaxPolicy(space, params, training)
    if kind == "fixed":
        return FixedPolicy(space, int(opts.get("action_index", 0)), training)
    if kind == "vqc":
        from qkdctl.control.vqc import VqcPolicy

        if backend is None:
            raise QkdInputError("saved policy of kind 'vqc' needs a quantum backend (e.g. aer, fake:manila)")
        pol = VqcPolicy(space, backend, training=training, **opts)
        pol.set_params(params)
        return pol
    raise QkdInputError(f"saved policy: unknown kind {kind!r}; known: softmax, fixed, vqc")


def read_policy_file(path: str | Path) -> dict:
    """The saved form of a policy file (QkdInputError for a missing or malformed file)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise QkdInputError(f"{p}: policy file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise QkdInputError(f"{p}: not a JSON policy file ({exc})") from None
    if not isinstance(data, dict) or "kind" not in data:
        raise QkdInputError(f"{p}: not a saved policy (no 'kind')")
    return data


def load_policy(path: str | Path, backend=None) -> Policy:
    """Read a policy saved by Policy.save; `backend` is needed for kind 'vqc'."""
    return policy_from_dict(read_policy_file(path), backend)
