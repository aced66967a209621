"""The control's action space: one binary decision per axis, so action index = bit string.

Axes (low bit first): block length (s), reconciliation method, detection gate width (ps),
basis bias (Alice's P(Z), operating parameter `alice.p_z`; Bob's passive splitter stays
fixed).  With 4 axes there are 16 actions; the quantum policy measures one qubit per axis.
"""

from __future__ import annotations

from dataclasses import dataclass

from qkdctl.core.errors import QkdInputError


@dataclass(frozen=True)
class Action:
    """One choice for the next block: block_seconds (s), method (reconciliation), gate_width_ps (ps),
    alice_p_z (Alice's probability of the Z basis)."""

    block_seconds: float
    method: str
    gate_width_ps: float
    alice_p_z: float

    def params(self) -> dict[str, float]:
        """The operating parameters this action sets through the bench (Tuner parameter names)."""
        return {"block.seconds": float(self.block_seconds), "gate.width_ps": float(self.gate_width_ps),
                "alice.p_z": float(self.alice_p_z)}


@dataclass(frozen=True)
class ActionSpace:
    """Two values per axis; action k has bit j of k selecting axis j's value."""

    block_seconds: tuple[float, float] = (0.02, 0.06)
    methods: tuple[str, str] = ("cascade-biconf", "ldpc-blind")
    gate_widths_ps: tuple[float, float] = (150.0, 400.0)
    alice_p_z: tuple[float, float] = (0.7, 0.9)

    def __post_init__(self) -> None:
        for name in ("block_seconds", "methods", "gate_widths_ps", "alice_p_z"):
            if len(getattr(self, name)) != 2:
                raise QkdInputError(f"action space: {name} needs exactly 2 values, got {getattr(self, name)!r}")
        if not all(t > 0 for t in self.block_seconds):
            raise QkdInputError(f"action space: block_seconds must be > 0 s, got {self.block_seconds}")
        if not all(w > 0 for w in self.gate_widths_ps):
            raise QkdInputError(f"action space: gate_widths_ps must be > 0 ps, got {self.gate_widths_ps}")
        if not all(0.0 < p < 1.0 for p in self.alice_p_z):
            raise QkdInputError(f"action space: alice_p_z must lie in (0, 1), got {self.alice_p_z}")

    @property
    def n_axes(self) -> int:
        """Number of binary decisions (qubits of the quantum policy)."""
        return 4

    @property
    def n_actions(self) -> int:
        """Number of actions (2 ** n_axes)."""
        return 2 ** self.n_axes

    def action(self, index: int) -> Action:
        """The action with index `index` (0 .. n_actions - 1)."""
        if not 0 <= int(index) < self.n_actions:
            raise QkdInputError(f"action index {index} out of range 0..{self.n_actions - 1}")
        k = int(index)
        return Action(self.block_seconds[k & 1], self.methods[(k >> 1) & 1], self.gate_widths_ps[(k >> 2) & 1],
                      self.alice_p_z[(k >> 3) & 1])

    def index(self, action: Action) -> int:
        """Index of `action` (QkdInputError if it is not in this space)."""
        for k in range(self.n_actions):
            if self.action(k) == action:
                return k
        raise QkdInputError(f"{action} is not in the action space {self}")

    def to_dict(self) -> dict:
        """JSON-ready form (saved with a policy)."""
        return {"block_seconds": list(self.block_seconds), "methods": list(self.methods),
                "gate_widths_ps": list(self.gate_widths_ps), "alice_p_z": list(self.alice_p_z)}

    @classmethod
    def from_dict(cls, data: dict) -> "ActionSpace":
        """Inverse of to_dict."""
        try:
            return cls(tuple(data["block_seconds"]), tuple(data["methods"]), tuple(data["gate_widths_ps"]),
                       tuple(data["alice_p_z"]))
        except (KeyError, TypeError) as exc:
            raise QkdInputError(f"action space: bad saved form {data!r}: {exc}") from None
