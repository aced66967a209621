"""Two-process roles size reconciliation as the pipeline does: past-Z prior kept on both
sides, else a disclosed Z sample (estimate/z_sample -> estimate/z_bits) counted as leaked."""

import math
import threading

import numpy as np
import pytest

import qkdctl.pipeline as pipeline
import qkdctl.roles as roles
from qkdctl.core.constants import BASIS_Z
from qkdctl.core.errors import ProtocolError
from qkdctl.hardware import Acquisition
from qkdctl.pipeline import Z_SAMPLE_BITS, ec_qber, process_block
from qkdctl.protocol.auth import KeyPool
from qkdctl.protocol.channel import in_process_pair
from qkdctl.protocol.messages import Message
from qkdctl.protocol.reconcile import CONFIRM_TAG_BITS
from qkdctl.roles import AliceRole, BobProcessor, past_z_qber
from qkdctl.store.keystore import KeyStore
from tests.e2e.test_two_process import _alice_thread, _Host
from tests.test_pipeline_ec_qber import z_only_block  # noqa: F401  (fixture: QBER_Z >> QBER_X)


class _Recording:
    """Bob's channel end, recording what he sends."""

    def __init__(self, ch):
        self.ch, self.sent = ch, []

    def send(self, msg):
        self.sent.append(msg)
        self.ch.send(msg)

    def __getattr__(self, name):
        return getattr(self.ch, name)


class _Forging(_Recording):
    """Alice's channel end, replacing her estimate/z_bits by a forged message."""

    def __init__(self, ch, forged):
        super().__init__(ch)
        self.forged = forged

    def send(self, msg):
        super().send(self.forged if msg.kind == "estimate/z_bits" else msg)


def _spy_extra_leakage(monkeypatch, module) -> dict:
    """Record, under "extra", the leaked bits beyond the method's that `module` reports."""
    seen = {}
    real = module.report_correction

    def spy(rep, z, corrected, method, leaked, method_leaked, *rest):
        seen["extra"] = leaked - method_leaked
        return real(rep, z, corrected, method, leaked, method_leaked, *rest)

    monkeypatch.setattr(module, "report_correction", spy)
    return seen


def _pipeline_sizing(monkeypatch, block, prior):
    """(EC QBER, leaked bits beyond the method's, report) of process_block on the block."""
    alice, tags, settings = block
    seen = _spy_extra_leakage(monkeypatch, pipeline)
    real_reconcile = pipeline.reconcile

    def spy_reconcile(method, a, b, qber, rng, **kw):
        seen["qber"] = qber
        return real_reconcile(method, a, b, qber, rng, **kw)

    monkeypatch.setattr(pipeline, "reconcile", spy_reconcile)
    rep = process_block(0, tags, alice, settings, np.random.default_rng(1), qber_prior=prior).report
    monkeypatch.undo()
    return seen["qber"], seen["extra"], rep


class _Session:
    """Alice's role in a thread and Bob's processor over an in-process channel."""

    def __init__(self, block, tmp_path, alice_ch=None):
        record, tags, self.settings = block
        a_ch, b_ch = in_process_pair(KeyPool(b"k" * 32), KeyPool(b"k" * 32))
        a_ch = alice_ch(a_ch) if alice_ch else a_ch
        self.alice_store = KeyStore(tmp_path / "keys" / "alice")
        self.bob_store = KeyStore(tmp_path / "keys" / "bob")
        self.alice = AliceRole(_Host(record), self.settings, self.alice_store, np.random.default_rng(2))
        self.errors = []
        self.thread = threading.Thread(target=self._serve, args=(a_ch,), daemon=True)
        self.thread.start()
        self.ch = _Recording(b_ch)
        self.bob = BobProcessor(self.ch)
        self.bob.hello(self.settings)
        self.tags = tags

    def _serve(self, ch):
        try:
            self.alice.serve(ch)
        except Exception as exc:  # the test inspects it
            self.errors.append(exc)

    def block(self, block_id, monkeypatch):
        """(Bob's report, EC QBER, leaked bits beyond the method's) of one block; its key stored on
        both sides (and compared), or the block discarded on both, as the engine does."""
        seen = _spy_extra_leakage(monkeypatch, roles)
        self.ch.sent.clear()
        acq = Acquisition(block_id, self.tags, None, {})
        out = self.bob.process(acq, self.settings, np.random.default_rng(1), b"")
        monkeypatch.undo()
        start = [m for m in self.ch.sent if m.kind == "reconcile/start"]
        if out.report.status == "ok":
            key_id = self.bob.store(out, [self.bob_store])
            np.testing.assert_array_equal(self.alice_store.read(key_id), self.bob_store.read(key_id))
        else:
            self.bob.discard(out.report)
        return out.report, start[0].float("qber") if start else None, seen.get("extra")

    def end(self):
        self.ch.send(Message("run/end", {}))
        self.thread.join(10)


def test_past_z_prior_from_agreed_counts():
    assert past_z_qber(np.array([100, 50, 10]), np.array([3, 2, 0])) == pytest.approx(5 / 160)
    assert past_z_qber(np.zeros(3, np.int64), np.zeros(3, np.int64)) is None


def test_two_process_sizes_from_z_as_the_pipeline(z_only_block, tmp_path, monkeypatch):
    """Block 1 (no prior): the same Z sample as process_block, the same EC QBER and leakage
    accounting; block 2: the past-Z prior agreed by both sides, no sample, the pipeline's
    choice for that prior."""
    session = _Session(z_only_block, tmp_path)
    rep, q, extra = session.block(0, monkeypatch)
    q_pipe, extra_pipe, rep_pipe = _pipeline_sizing(monkeypatch, z_only_block, None)
    samples = [m for m in session.ch.sent if m.kind == "estimate/z_sample"]
    assert len(samples) == 1 and samples[0].array("positions", np.int64).size == Z_SAMPLE_BITS
    assert rep.verified, rep.abort_reason  # (too few bits for finite-key length: no key stored)
    assert rep.qber_z > rep.qber_x + 0.025  # the asymmetry of the case
    assert abs(q - rep.qber_z) < 0.012  # sized from the Z sample, not QBER_X
    assert q == q_pipe and extra == extra_pipe == CONFIRM_TAG_BITS + Z_SAMPLE_BITS
    assert rep.qber_x == rep_pipe.qber_x and rep.sifted_bits_z == rep_pipe.sifted_bits_z
    prior = session.bob.qber_prior
    assert prior == session.alice.qber_prior == pytest.approx(rep.qber_z)

    rep2, q2, extra2 = session.block(1, monkeypatch)
    q2_pipe, extra2_pipe, _ = _pipeline_sizing(monkeypatch, z_only_block, prior)
    assert not [m for m in session.ch.sent if m.kind == "estimate/z_sample"]
    assert rep2.verified, rep2.abort_reason
    assert q2 == q2_pipe == ec_qber(math.nan, prior)
    assert extra2 == extra2_pipe == CONFIRM_TAG_BITS
    session.end()
    assert not session.errors and session.alice.summary.blocks == 2


def test_bob_refuses_forged_z_sample_bits_and_sends_nothing_more(z_only_block, tmp_path, monkeypatch):
    forged = Message("estimate/z_bits", {"bits": np.full(Z_SAMPLE_BITS, 2, dtype=np.uint8)})
    session = _Session(z_only_block, tmp_path, alice_ch=lambda ch: _Forging(ch, forged))
    with pytest.raises(ProtocolError, match="other than 0/1"):
        session.block(0, monkeypatch)
    assert session.ch.sent[-1].kind == "estimate/z_sample"  # no reconcile/start, nothing after


def _alice_at_z_sample(rng, tmp_path):
    """Alice after her estimate/bits; returns the Bob end, the Z count, her thread and its errors."""
    record, b_ch, thread, errors = _alice_thread(rng, tmp_path)
    slots = np.arange(0, 4000, 7, dtype=np.int64)
    b_ch.send(Message("sift/request", {"block_id": 0, "slots": slots, "guess": 0, "sync_divider": 1000}))
    shift = b_ch.recv(5).expect("sift/disclose").int("shift")
    inside = slots[(slots + shift >= 0) & (slots + shift < len(record))]
    basis = record.basis[inside + shift]
    z, x = inside[basis == BASIS_Z], inside[basis != BASIS_Z]
    b_ch.send(Message("sift/keep", {"z": z, "x": x}))
    b_ch.recv(5).expect("estimate/bits")
    return b_ch, z.size, thread, errors


@pytest.mark.parametrize("case", ["short", "duplicate", "outside", "dtype", "kind"])
def test_alice_refuses_forged_z_sample_and_discloses_nothing(rng, tmp_path, case):
    b_ch, n_z, thread, errors = _alice_at_z_sample(rng, tmp_path)
    pos = np.arange(min(Z_SAMPLE_BITS, n_z), dtype=np.int64)
    forged = {
        "short": Message("estimate/z_sample", {"positions": pos[:-1]}),
        "duplicate": Message("estimate/z_sample", {"positions": np.r_[pos[:-1], pos[-2]]}),
        "outside": Message("estimate/z_sample", {"positions": pos + 1}),
        "dtype": Message("estimate/z_sample", {"positions": pos.astype(np.float64)}),
        "kind": Message("reconcile/start", {"method": b"cascade-biconf", "qber": 0.02}),
    }[case]
    b_ch.send(forged)
    thread.join(5)
    assert len(errors) == 1 and isinstance(errors[0], ProtocolError)
    with pytest.raises(ProtocolError, match="no message"):
        b_ch.recv(0.2)  # no estimate/z_bits, nothing else


@pytest.mark.parametrize("case", ["sample", "qber"])
def test_alice_with_a_prior_refuses_a_sample_request_or_another_qber(rng, tmp_path, monkeypatch, case):
    class _AliceWithPrior(AliceRole):
        def __init__(self, *args):
            super().__init__(*args)
            self.qber_prior = 0.03

    monkeypatch.setattr(roles, "AliceRole", _AliceWithPrior)
    b_ch, n_z, thread, errors = _alice_at_z_sample(rng, tmp_path)
    b_ch.send({
        "sample": Message("estimate/z_sample", {"positions": np.arange(min(Z_SAMPLE_BITS, n_z), dtype=np.int64)}),
        "qber": Message("reconcile/start", {"method": b"cascade-biconf", "qber": 0.02}),
    }[case])
    thread.join(5)
    assert len(errors) == 1 and isinstance(errors[0], ProtocolError)
    assert ("unexpected message kind" if case == "sample" else "past-Z prior") in str(errors[0])
    with pytest.raises(ProtocolError, match="no message"):
        b_ch.recv(0.2)
