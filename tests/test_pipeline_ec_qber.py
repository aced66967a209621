"""Reconciliation is sized from the key basis Z (a sample or a past-Z prior), never from QBER_X."""

import dataclasses
import math

import numpy as np
import pytest

import qkdctl.pipeline as pipeline
from qkdctl.config import load_config
from qkdctl.core.constants import BASIS_Z
from qkdctl.core.linkmodel import generate_block
from qkdctl.pipeline import Z_SAMPLE_BITS, ec_qber, process_block

from tests.model_bench import model_settings


def test_ec_qber_prefers_prior_then_z_estimate():
    assert ec_qber(0.03) == pytest.approx(0.03)
    assert ec_qber(0.03, qber_prior=0.02) == pytest.approx(0.02)
    assert ec_qber(0.0) == pipeline.QBER_FLOOR
    assert ec_qber(math.nan) == 0.25


@pytest.fixture(scope="module")
def z_only_block():
    """A block whose extra errors are all in Z (Alice's Z bits flipped at 4 % on the bench's own ~3 %), as a rotation about x gives."""
    rng = np.random.default_rng(7)
    model = load_config("lab_configs/sim_bench.toml").link_model(distance_km=5.0)
    alice, tags = generate_block(model, 10_000_000, rng, sync_divider=100)
    flip = (alice.basis == BASIS_Z) & (rng.random(len(alice)) < 0.04)
    alice = dataclasses.replace(alice, bit=(alice.bit ^ flip).astype(np.uint8))
    settings = model_settings(model)
    return alice, tags, settings


@pytest.mark.parametrize("prior", [None, 0.045])
def test_reconciliation_sized_from_z(z_only_block, monkeypatch, prior):
    alice, tags, settings = z_only_block
    seen = {}
    real = pipeline.reconcile

    def spy(method, a, b, qber, rng, **kw):
        seen["qber"] = qber
        out = real(method, a, b, qber, rng, **kw)
        seen["leaked"] = out.leaked_bits + out.confirm_bits
        return out

    monkeypatch.setattr(pipeline, "reconcile", spy)
    rep = process_block(0, tags, alice, settings, np.random.default_rng(1), qber_prior=prior).report
    assert rep.qber_z > rep.qber_x + 0.025  # the asymmetry of the case
    if prior is None:
        assert abs(seen["qber"] - rep.qber_z) < 0.012  # sampled Z, not QBER_X
        assert rep.leaked_bits >= seen["leaked"] + Z_SAMPLE_BITS  # the disclosed sample counts as leaked
    else:
        assert seen["qber"] == pytest.approx(prior)
        assert rep.leaked_bits < seen["leaked"] + Z_SAMPLE_BITS


def test_block_auth_key_differs_per_block_and_needs_32_bytes():
    from qkdctl.core.errors import QkdInputError
    from qkdctl.pipeline import block_auth_key

    key = bytes(range(64))
    a, b = block_auth_key(key, 7), block_auth_key(key, 8)
    assert len(a) == 64 and a != b and a == block_auth_key(key, 7)
    assert block_auth_key(bytes(64), 7) != a
    with pytest.raises(QkdInputError, match="32 bytes"):
        block_auth_key(bytes(16), 1)


def test_local_processor_carries_the_last_verified_qber_z(z_only_block, monkeypatch):
    from types import SimpleNamespace

    from qkdctl.engine import LocalProcessor

    alice, tags, settings = z_only_block
    priors = []
    real = pipeline.process_block

    def spy(*args, qber_prior=None, **kw):
        priors.append(qber_prior)
        return real(*args, qber_prior=qber_prior, **kw)

    monkeypatch.setattr("qkdctl.engine.process_block", spy)
    proc = LocalProcessor()
    acq = SimpleNamespace(block_id=0, tags=tags, alice=alice)
    first = proc.process(acq, settings, np.random.default_rng(1), bytes(64)).report
    assert first.verified and proc.qber_prior == first.qber_z
    proc.process(SimpleNamespace(block_id=1, tags=tags, alice=alice), settings, np.random.default_rng(2), bytes(64))
    assert priors == [None, first.qber_z]


def test_a_channel_failure_aborts_the_block_not_the_run(z_only_block, monkeypatch):
    from qkdctl.core.errors import ProtocolError

    alice, tags, settings = z_only_block

    def broken(*args, **kw):
        raise ProtocolError("no reply within 30 s")

    monkeypatch.setattr(pipeline, "reconcile", broken)
    out = process_block(0, tags, alice, settings, np.random.default_rng(1), qber_prior=0.03)
    assert out.report.status == "aborted" and out.alice_key is None and out.bob_key is None
    assert "reconciliation channel: no reply within 30 s" in out.report.abort_reason
