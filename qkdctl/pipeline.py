"""Post-processing of one key block, from tags to secret key.

acquire -> recover clock -> gate -> sift -> estimate (X fully disclosed, Lim et
al.) -> reconcile Z (Cascade/LDPC over the authenticated channel) -> verify ->
finite-key length from the block's own statistics -> Toeplitz privacy
amplification.  Every figure goes into a BlockReport; a failed security check
returns the report with status 'aborted' and no key.

What a prediction may change: the QBER fed to reconciliation (block sizes,
code rate) is a key-basis figure: the caller's prediction from past Z
(`qber_prior`), else a random sample of Z_SAMPLE_BITS of this block's Z bits,
disclosed and counted as leaked.  Never QBER_X: a polarization rotation about
the x axis raises QBER_Z alone, and reconciliation sized from X would then
under-correct (docs/qml.md).  The key length never uses a prediction: it uses
this block's X-basis errors and the Z errors counted after reconciliation.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import numpy as np

from qkdctl.blockreport import BlockReport
from qkdctl.core.amplify import toeplitz_hash
from qkdctl.core.constants import BASIS_X, BASIS_Z, VACUUM
from qkdctl.core.errors import ProtocolError, QkdInputError, ReconciliationError, SecurityAbort
from qkdctl.core.estimate import Estimate, estimate
from qkdctl.core.keyrate import DecoySettings, DecoyStats, KeyLength, key_length
from qkdctl.core.polstats import click_matrix
from qkdctl.core.records import AliceRecord
from qkdctl.core.sift import SiftedKey, SiftResult, pulses_sent, sift
from qkdctl.core.tags import Clock, GateConfig, Gated, TagBlock, gate, recover_clock
from qkdctl.core.telemetry import block_telemetry
from qkdctl.core.timing import SlotAlignment, align_slots
from qkdctl.core.verify import draw_seed, keys_match, verification_tag
from qkdctl.protocol.reconcile import available_methods, efficiency, reconcile
from qkdctl.select.apply import apply_selection
from qkdctl.select.objective import LabelledBlock, labelled_block
from qkdctl.select.selectors import Selector

QBER_FLOOR = 0.005  # smallest QBER handed to reconciliation (its parameters need q > 0)
Z_SAMPLE_BITS = 2048  # Z bits disclosed to size reconciliation when no prior is given (counted as leaked)
TELEMETRY_WINDOWS = 8  # sub-block windows of the detector telemetry
DEFAULT_CASCADE = "cascade-biconf"  # f 1.09-1.10 at the fastest throughput but the original (docs/reconciliation.md)
CASCADE_MAX_QBER = 0.09  # above this, LDPC (if available) is preferred
KARATSUBA_MAX_BITS = 500_000  # privacy amplification method switch (docs/amplification.md)
LDPC_ABOVE_RTT_S = 1e-3  # round trip beyond which Cascade's ~100 round trips dominate


@dataclass(frozen=True)
class BlockSettings:
    """Everything the pipeline needs besides the data (from the lab config).

    sync_channel, sync_divider: clock recovery; nominal_sync_period_ps: coarse sync
    period (ps) or None; gate: detection gate; mu, p_mu: intensities in force and
    their probabilities; eps_sec/eps_cor: security parameters; qber_abort: abort
    threshold on either basis; method: reconciliation method name.
    """

    sync_channel: int
    sync_divider: int
    nominal_sync_period_ps: float | None
    gate: GateConfig
    mu: tuple[float, float, float]
    p_mu: tuple[float, float, float]
    eps_sec: float
    eps_cor: float
    qber_abort: float
    method: str


@dataclass
class BlockOutcome:
    """Report plus, when the block made key, Alice's and Bob's final keys (equal)."""

    report: BlockReport
    alice_key: np.ndarray | None = None
    bob_key: np.ndarray | None = None
    labelled: LabelledBlock | None = None  # kept events and their errors, once verified (learn=True)


def choose_method(qber_estimate: float, round_trip_s: float = 0.0) -> str:
    """Reconciliation method for a block: Cascade where round trips are cheap (the
    in-process channel), LDPC (one or two round trips) over a slow link or when the
    QBER is beyond Cascade's efficient range."""
    methods = available_methods()
    ldpc = sorted(m for m in methods if m.startswith("ldpc"))
    if ldpc and (round_trip_s > LDPC_ABOVE_RTT_S or qber_estimate > CASCADE_MAX_QBER):
        return "ldpc-blind" if "ldpc-blind" in ldpc else ldpc[0]
    return DEFAULT_CASCADE


def align_record(alice: AliceRecord, tags: TagBlock, clock: Clock, slots: np.ndarray,
                 mu: tuple[float, float, float]) -> tuple[AliceRecord, SlotAlignment]:
    """Alice's record renumbered so that slot 0 is the block's first sync tag.

    Gating numbers slots from the first sync tag seen.  A first guess of where it
    sits in Alice's record comes from the block start (`tags.start_ps`), then the
    whole-sync shift is settled from public data: detections pile up in Alice's
    bright slots (`align_slots`).  `slots` are Bob's gated slot numbers.
    """
    al = align_or_guess(slots, alice.intensity, mu, shift_guess(tags, clock), clock.sync_divider)
    return alice.renumbered(-al.shift), al


def shift_guess(tags: TagBlock, clock: Clock) -> int:
    """First guess of Alice's index of the block's first sync slot, from the block start."""
    return int(round((clock.phase_ps - tags.start_ps) / clock.period_ps))


def align_or_guess(slots: np.ndarray, intensity: np.ndarray, mu: tuple[float, float, float],
                   guess: int, step: int) -> SlotAlignment:
    """`align_slots` on Alice's intensities, or the guess when they do not correlate."""
    try:
        return align_slots(slots, intensity, mu, guess=guess, step=step)
    except QkdInputError:
        # No intensity correlation (e.g. an intercept-resend Eve re-prepares the pulses):
        # keep the block-start guess; a wrong guess shows up as QBER ~ 1/2 and aborts.
        return SlotAlignment(shift=guess, score=float("nan"), runner_up=float("nan"))


def report_sift(rep: BlockReport, tags: TagBlock, clock: Clock, gated: Gated, sifted: SiftResult,
                alignment: SlotAlignment, clicks: list | None) -> None:
    """Fill the report's detection and sifting counts (clicks: the 4x4 click matrix, or None)."""
    rep.gate_rejected_fraction = gated.stats.fraction_rejected
    rep.detections = int(sifted.counts.clicked)
    rep.sifted_bits_z = len(sifted.z)
    rep.sifted_bits_x = len(sifted.x)
    rep.counts = {
        "single": sifted.counts.single,
        "double_same": sifted.counts.double_same,
        "double_cross": sifted.counts.double_cross,
        "multi": sifted.counts.multi,
        "basis_mismatch": sifted.counts.basis_mismatch,
        "kept_per_detector": gated.stats.kept_per_role.tolist(),
        "click_matrix": clicks,
        "overflow": bool(tags.overflow),
        "missed_events": int(tags.missed_events),
        "clock_period_ps": clock.period_ps,
        "missing_sync": clock.n_missing_sync,
        "slot_shift": alignment.shift,
        "slot_alignment": "guess" if alignment.score != alignment.score else "intensity",
    }


def report_estimate(rep: BlockReport, est: Estimate, settings: BlockSettings) -> str | None:
    """Fill QBER_X and gains from the disclosed X basis; the abort reason, or None."""
    rep.qber_x = float(est.qber_basis[BASIS_X])
    rep.qber_by_intensity = {"x": est.qber[BASIS_X].tolist()}
    rep.gains_by_intensity = {"z": est.gain[BASIS_Z].tolist(), "x": est.gain[BASIS_X].tolist()}
    if rep.sifted_bits_z == 0 or rep.sifted_bits_x == 0:
        return "no sifted detections in one basis"
    if not rep.qber_x <= settings.qber_abort:
        return f"QBER_X {rep.qber_x:.4f} above threshold {settings.qber_abort}"
    return None


def ec_qber(qber_z_estimate: float, qber_prior: float | None = None) -> float:
    """QBER handed to reconciliation: the Z prior if given, else this block's sampled QBER_Z,
    clipped to [floor, 0.25]; nan (nothing sampled) gives 0.25."""
    q = qber_prior if qber_prior is not None else qber_z_estimate
    if not q == q:
        return 0.25
    return min(max(q, QBER_FLOOR), 0.25)


def report_correction(rep: BlockReport, z: SiftedKey, corrected: np.ndarray, method: str, leaked_bits: int,
                      method_leaked_bits: int, round_trips: int, success: bool,
                      settings: BlockSettings) -> tuple[np.ndarray, str | None]:
    """Fill QBER_Z (the bits reconciliation changed in Bob's key), leakage and f; return the
    error mask and the abort reason, or None."""
    wrong = corrected != z.bob_bit  # the bits reconciliation corrected: Bob's errors
    rep.qber_z = float(wrong.mean())
    rep.qber_by_intensity["z"] = [
        float(wrong[z.intensity == k].mean()) if np.any(z.intensity == k) else float("nan")
        for k in range(3)
    ]
    rep.method = method
    rep.leaked_bits = int(leaked_bits)
    rep.round_trips = int(round_trips)
    rep.ec_efficiency = efficiency(method_leaked_bits, z.bob_bit.size, rep.qber_z)
    if not success:
        return wrong, "reconciliation failed: the method's confirmation found keys still differ"
    if rep.qber_z > settings.qber_abort:
        return wrong, f"QBER_Z {rep.qber_z:.4f} above threshold {settings.qber_abort}"
    return wrong, None


def key_length_of(n_key, m_key, n_test, m_test, leaked_bits: int, settings: BlockSettings) -> KeyLength:
    """Finite-key length from a block's public counts per intensity (Z detections, Z errors,
    X detections, X errors) and the bits leaked by reconciliation and verification."""
    stats = DecoyStats(n_key=tuple(n_key), m_key=tuple(m_key), n_test=tuple(n_test),
                       m_test=tuple(m_test), leak_ec_bits=leaked_bits)
    return key_length(stats, DecoySettings(settings.mu, settings.p_mu, settings.eps_sec, settings.eps_cor))


def report_key_length(rep: BlockReport, z_intensity: np.ndarray, wrong: np.ndarray, est: Estimate,
                      settings: BlockSettings) -> tuple[KeyLength, str | None]:
    """Key length of the block from its counts; fills keyrate_terms; the abort reason, or None."""
    kl = key_length_of(np.bincount(z_intensity, minlength=3), np.bincount(z_intensity[wrong], minlength=3),
                       est.sampled[BASIS_X], est.errors[BASIS_X], rep.leaked_bits, settings)
    rep.keyrate_terms = kl.as_dict()
    inconsistent = [f for f in kl.flags if "inconsistent" in f]
    if inconsistent:
        return kl, "decoy statistics inconsistent with the bounds: " + "; ".join(inconsistent)
    if not kl.has_key:
        why = "; ".join(kl.flags)
        return kl, f"finite-key length {kl.length_bits:.0f} <= 0" + (f" ({why})" if why else "")
    return kl, None


def _abort(report: BlockReport, reason: str) -> BlockOutcome:
    report.status = "aborted"
    report.abort_reason = reason
    return BlockOutcome(report)


def block_auth_key(auth_key: bytes, block_id: int) -> bytes:
    """The reconciliation channel's key for one block: keyed BLAKE2b of the block id.

    Each block's session restarts its sequence numbers, so a key shared by every block
    would let frames recorded in one block be replayed into the next; a key derived
    per block (64 bytes, a PRF of the pre-shared key) makes them fail the MAC.
    """
    if len(auth_key) < 32:
        raise QkdInputError(f"auth_key must hold >= 32 bytes, got {len(auth_key)}")
    mac = hashlib.blake2b(int(block_id).to_bytes(8, "little", signed=True), key=auth_key[:64],
                          person=b"qkdctl-ec-block", digest_size=64)
    return mac.digest()


def process_block(
    block_id: int,
    tags: TagBlock,
    alice: AliceRecord,
    settings: BlockSettings,
    rng: np.random.Generator,
    qber_prior: float | None = None,
    auth_key: bytes | None = None,
    selector: Selector | None = None,
    learn: bool = False,
) -> BlockOutcome:
    """Run the whole post-processing of one block; never raises on a security failure.

    qber_prior: QBER expected in Z (e.g. the last block's corrected rate), used only
    to parametrize reconciliation.  auth_key: pre-shared key of the authenticated
    channel (simulation draws one from rng when None).  Bad input (malformed tags,
    impossible settings) raises QkdInputError.  selector: keeps a subset of the sifted
    events (public features only, same rule in both bases) before estimation and
    reconciliation; None keeps all (qkdctl.select, docs/selection.md).  learn: once the
    block verified, return its kept events with their errors (`labelled`) for selectors
    of later blocks.
    """
    rep = BlockReport(block_id=block_id, n_tags=len(tags))
    stage: dict[str, float] = {}
    t0 = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t0
        now = time.perf_counter()
        stage[name] = now - t0
        t0 = now

    rep.stage_seconds = stage
    clock = recover_clock(tags, settings.sync_channel, settings.sync_divider,
                          settings.nominal_sync_period_ps)
    gated = gate(tags, clock, settings.gate)
    alice, alignment = align_record(alice, tags, clock, gated.slot, settings.mu)
    pulses = pulses_sent(alice)  # the one pass over Alice's whole record
    rep.telemetry = block_telemetry(gated, alice.intensity, alice.first_slot,
                                    min(TELEMETRY_WINDOWS, len(alice)),
                                    n_vacuum=int(pulses[:, VACUUM].sum()))
    lap("gate")
    sifted = sift(gated, alice, rng, pulses=pulses)
    report_sift(rep, tags, clock, gated, sifted, alignment, click_matrix(gated, alice).tolist())
    if selector is not None:
        sifted, rep.selection = apply_selection(selector, gated, sifted)
    lap("sift")
    est = estimate(sifted, rng, disclose_x=True, sample_count=None if qber_prior is not None else Z_SAMPLE_BITS)
    z_disclosed = int(est.sampled[BASIS_Z].sum())
    reason = report_estimate(rep, est, settings)
    lap("estimate")
    if reason:
        return _abort(rep, reason)

    z = sifted.z
    q_ec = ec_qber(float(est.qber_basis[BASIS_Z]), qber_prior)
    method = choose_method(q_ec) if settings.method == "auto" else settings.method
    try:
        key = None if auth_key is None else block_auth_key(auth_key, block_id)
        rec = reconcile(method, z.alice_bit, z.bob_bit, q_ec, rng, auth_key=key)
    except ReconciliationError as exc:
        return _abort(rep, f"reconciliation failed: {exc}")
    except ProtocolError as exc:  # forged/replayed/late message: the block is lost, the run goes on
        return _abort(rep, f"reconciliation channel: {exc}")
    lap("reconcile")
    wrong, reason = report_correction(rep, z, rec.bob_bits, rec.method,
                                      rec.leaked_bits + rec.confirm_bits + z_disclosed,
                                      rec.leaked_bits, rec.round_trips, rec.success, settings)
    if reason:
        return _abort(rep, reason)
    # Verification (eps_cor): Alice publishes a seed and her polynomial-hash tag; Bob compares.
    seed = draw_seed(z.alice_bit.size, settings.eps_cor, rng)
    tag_a, tag_bits = verification_tag(z.alice_bit, seed, settings.eps_cor)
    tag_b, _ = verification_tag(rec.bob_bits, seed, settings.eps_cor)
    rep.leaked_bits += tag_bits  # counted in full (Lim's log2(2/eps_cor) term is kept too)
    rep.verified = keys_match(tag_a, tag_b)
    lap("verify")
    if not rep.verified:
        return _abort(rep, "verification failed: hash tags differ after reconciliation")
    labelled = labelled_block(gated, sifted) if learn else None  # errors known to both parties now

    kl, reason = report_key_length(rep, z.intensity, wrong, est, settings)
    lap("keyrate")
    if reason:
        out = _abort(rep, reason)
        out.labelled = labelled
        return out

    n = z.alice_bit.size
    seed = rng.integers(0, 2, n + kl.key_length_bits - 1, dtype=np.uint8)
    # Single-threaded Karatsuba for block-sized keys: the parallel FFT wins only past
    # ~1e6 bits, and its threads stall when the machine is busy.
    pa_method = "karatsuba" if n <= KARATSUBA_MAX_BITS else "auto"
    alice_key = toeplitz_hash(z.alice_bit, seed, kl.key_length_bits, method=pa_method)
    bob_key = toeplitz_hash(rec.bob_bits, seed, kl.key_length_bits, method=pa_method)
    lap("amplify")
    rep.key_bits = int(kl.key_length_bits)
    if not np.array_equal(alice_key, bob_key):  # cannot happen after verification
        raise SecurityAbort("amplified keys differ although verification passed")
    return BlockOutcome(rep, alice_key, bob_key, labelled)

