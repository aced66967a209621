import numpy as np
import pytest

from qkdctl.config import load_config
from qkdctl.core.linkmodel import generate_block
from qkdctl.pipeline import process_block

from tests.model_bench import model_settings


_settings = model_settings


@pytest.fixture(scope="module")
def model():
    cfg = load_config("lab_configs/sim_bench.toml")
    return cfg.link_model(distance_km=5.0)


def test_block_makes_identical_keys(model, rng):
    alice, tags = generate_block(model, 10_000_000, rng, sync_divider=100)
    out = process_block(0, tags, alice, _settings(model), rng)
    rep = out.report
    assert rep.status == "ok", rep.abort_reason
    assert rep.verified and rep.key_bits > 0
    np.testing.assert_array_equal(out.alice_key, out.bob_key)
    assert out.alice_key.size == rep.key_bits
    assert 0 < rep.qber_z < 0.05 and 0 < rep.qber_x < 0.05
    assert rep.leaked_bits > 0 and rep.ec_efficiency > 1.0
    assert set(rep.stage_seconds) >= {"gate", "sift", "estimate", "reconcile", "keyrate", "amplify"}
    assert np.sum(rep.counts["click_matrix"]) >= rep.detections


def test_small_block_aborts_on_key_length(model, rng):
    alice, tags = generate_block(model, 100_000, rng, sync_divider=100)
    rep = process_block(0, tags, alice, _settings(model), rng).report
    assert rep.status == "aborted"
    assert "<= 0" in rep.abort_reason or "inconsistent" in rep.abort_reason


def test_qber_threshold_aborts_before_reconciliation(model, rng):
    noisy = model.__class__(**{**model.__dict__, "misalignment": 0.2})
    alice, tags = generate_block(noisy, 1_000_000, rng, sync_divider=100)
    out = process_block(0, tags, alice, _settings(noisy), rng)
    assert out.report.status == "aborted" and "QBER_X" in out.report.abort_reason
    assert out.alice_key is None and out.report.leaked_bits == 0


def test_later_blocks_align_with_alice(model, rng):
    from qkdctl.hardware import ModelHardware

    hw = ModelHardware(model, rng, sync_divider=100)
    hw.acquire(0.0005)  # block 0 is skipped: block 1 starts at a non-zero slot
    acq = hw.acquire(0.01)
    assert acq.alice.first_slot > 0
    rep = process_block(1, acq.tags, acq.alice, _settings(model), rng).report
    assert rep.qber_x < 0.05, rep.abort_reason


def test_verification_tag_counts_as_leakage_and_catches_a_flip(model, rng, monkeypatch):
    import qkdctl.pipeline as pipeline
    from qkdctl.core.verify import tag_length_bits

    alice, tags = generate_block(model, 10_000_000, rng, sync_divider=100)
    real = pipeline.reconcile

    def one_bit_wrong(*args, **kwargs):
        rec = real(*args, **kwargs)
        rec.bob_bits[7] ^= 1  # a residual error the method's confirmation missed
        return rec

    monkeypatch.setattr(pipeline, "reconcile", one_bit_wrong)
    out = pipeline.process_block(0, tags, alice, _settings(model), rng)
    assert out.report.status == "aborted" and "hash tags differ" in out.report.abort_reason
    assert out.alice_key is None and out.report.key_bits == 0
    assert out.report.leaked_bits >= tag_length_bits(out.report.sifted_bits_z, 1e-15)
