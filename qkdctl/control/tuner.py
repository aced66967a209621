"""The engine side of adaptive control: a Tuner that applies a trained policy between blocks.

After each block the policy reads the block history's features and chooses the
next block's length ("block.seconds", from the next acquisition), gate width
("gate.width_ps"), Alice's P(Z) ("alice.p_z", from the next acquisition) and
reconciliation method (Proposal.extra["method"], from the next processed block).  The engine records the decision like any tuner's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from qkdctl.blockreport import BlockReport
from qkdctl.control.features import block_features
from qkdctl.control.policy import Policy, policy_from_dict, read_policy_file
from qkdctl.tune.base import Probe, Proposal, Tuner


class ControlTuner(Tuner):
    """Greedy decisions of `policy`; the decision of the first block is made with no history."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.name = f"control:{policy.kind}"

    def start_run(self, db, run_id: str) -> None:
        """A VQC policy records its sampler jobs in the run database's job ledger from now on."""
        if self.policy.kind == "vqc":
            from qkdctl.qml.ledger import JobLedger

            self.policy.ledger = JobLedger.open(db.path.parent, run_id, self.policy.backend)

    def propose(self, history: Sequence[BlockReport], params: Mapping[str, float],
                probe: Probe | None = None) -> Proposal | None:
        x = block_features(history)
        k = int(self.policy.choose(x[None, :])[0])
        act = self.policy.space.action(k)
        shots = getattr(self.policy, "shots", 0) if self.policy.kind == "vqc" else 0
        return Proposal(act.params(), f"policy {self.policy.kind}: action {k} {act}",
                        extra={"method": act.method, "action": k, "shots": shots})


def control_tuner(cfg, base_dir: Path) -> ControlTuner:
    """ControlTuner from a [control] table (qkdctl.config.ControlConfig); the policy path is
    relative to `base_dir` (the config's folder).  A 'vqc' policy opens cfg.backend."""
    path = Path(cfg.policy)
    if not path.is_absolute():
        path = base_dir / path
    data = read_policy_file(path)
    backend = None
    if data["kind"] == "vqc":
        from qkdctl.qml.backends import open_backend

        backend = open_backend(cfg.backend, seed=cfg.seed)
    return ControlTuner(policy_from_dict(data, backend))
