"""Adaptive protocol control: reinforcement-learning policies that choose, per block, the
block length, the reconciliation method and the detection gate width (docs/control.md).

actions.py   the action space (one binary axis per decision; 3 axes = 8 actions)
features.py  telemetry of the block history -> the policy's input vector
surrogate.py a fast per-block model of the simulated bench (calibrated against SimBench)
policy.py    the classical softmax policy, REINFORCE training, save/load of any policy
vqc.py       the variational-quantum-circuit (Born-rule) policy, SPSA training
rollout.py   episodes on an environment, reward = secret bits per second of wall time
tuner.py     the engine side: a Tuner that applies the policy's decision between blocks
"""
