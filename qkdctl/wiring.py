"""Build a live bench from a lab config: drivers, and the embedded simulated bench.

This is where drivers meet the engine.  `open_bench(config)` opens every
instrument of [instruments]; a resource "embedded" is served by the simulated
bench of firmware_sim, started in this process from the [sim] table (with the
config's [timing], [channels] and controller model injected so both sides
agree).  The real drivers talk to it over its real transports.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Mapping

from qkdctl.config import InstrumentConfig, LabConfig
from qkdctl.core.errors import ConfigError, QkdInputError
from qkdctl.hardware import SOFTWARE_PARAMS, Acquisition, Hardware, choice_params, choice_probabilities


def open_tagger(inst: InstrumentConfig):
    """Open the time tagger of [instruments.tagger] (sim_tagger or swabian)."""
    if inst.driver == "sim_tagger":
        from drivers.tagger.sim_client import SimTagger

        return SimTagger.open(inst.resource, timeout_s=inst.timeout_s, **inst.options)
    if inst.driver == "swabian":
        from drivers.tagger.swabian import SwabianTagger

        return SwabianTagger(inst.resource, **inst.options)  # resource = device serial ("" = first)
    raise ConfigError(f"unknown tagger driver {inst.driver!r}; known: sim_tagger, swabian")


def open_alice_host(inst: InstrumentConfig):
    """Open the client of Alice's host of [instruments.alice]."""
    if inst.driver != "sim_alice":
        raise ConfigError(f"unknown Alice host driver {inst.driver!r}; known: sim_alice")
    from drivers.alice_host import AliceHostClient

    return AliceHostClient.open(inst.resource, timeout_s=inst.timeout_s, **inst.options)


def open_voa(inst: InstrumentConfig):
    """Open the attenuator of [instruments.voa] (Keysight N776x family)."""
    from drivers.attenuator import keysight_n776x

    classes = {"keysight_n7761a": keysight_n776x.KeysightN7761A,
               "keysight_n7764a": keysight_n776x.KeysightN7764A,
               "keysight_n7766a": keysight_n776x.KeysightN7766A}
    if inst.driver not in classes:
        raise ConfigError(f"unknown attenuator driver {inst.driver!r}; known: {', '.join(classes)}")
    return classes[inst.driver].open(inst.resource, timeout_s=inst.timeout_s, **inst.options)


def open_polarization(inst: InstrumentConfig):
    """Open the controller of [instruments.polarization] and its SU(2) calibration."""
    from drivers.polarization.calibration import PaddleCalibration, SqueezerCalibration

    if inst.driver == "mpc320":
        from drivers.polarization.mpc320 import Mpc320

        return Mpc320.open(inst.resource, timeout_s=inst.timeout_s, **inst.options), PaddleCalibration()
    if inst.driver == "epc400":
        from drivers.polarization.epc400 import Epc400

        return Epc400.open(inst.resource, timeout_s=inst.timeout_s, **inst.options), SqueezerCalibration()
    raise ConfigError(f"unknown polarization controller driver {inst.driver!r}; known: mpc320, epc400")


class LiveHardware(Hardware):
    """A bench of real drivers (tagger, Alice's host, optional VOA and polarization controller).

    Parameters: voa.1..3 (dB) and voa.on.1..3 when a VOA is present, pol.1..N
    when a controller is present, alice.p_z / alice.p_signal / alice.p_decoy when
    Alice's host takes choice probabilities (SET_CHOICE), gate.offset_ps /
    gate.width_ps (software).  Bob's basis splitter is fixed: only Alice's P(Z) moves.
    """

    def __init__(self, tagger, alice, voa=None, controller=None, calibration=None,
                 mu_at_0db: float = 1.0, gate: Mapping[str, float] | None = None,
                 on_close: Callable[[], None] | None = None) -> None:
        self.tagger, self.alice, self.voa, self.controller = tagger, alice, voa, controller
        self.calibration = calibration
        self.mu_at_0db = mu_at_0db
        self._on_close = on_close
        self._params: dict[str, float] = dict(gate or {})
        if voa is not None:
            for k in (1, 2, 3):
                ch = voa.channel(k - 1)
                self._params[f"voa.{k}"] = float(ch.attenuation_db)
                self._params[f"voa.on.{k}"] = float(bool(ch.output_enabled))
        if controller is not None:
            for i, v in enumerate(controller.get_settings(), start=1):
                self._params[f"pol.{i}"] = float(v)
        if hasattr(alice, "get_choice"):
            from drivers.transport import DeviceError

            try:
                self._params.update(choice_params(*alice.get_choice()))
            except DeviceError:  # a host without a settable source: no alice.* parameters
                pass

    def params(self) -> dict[str, float]:
        return dict(self._params)

    def apply(self, params: Mapping[str, float]) -> None:
        unknown = sorted(set(params) - set(self._params) - SOFTWARE_PARAMS)
        if unknown:
            raise QkdInputError(f"this bench has no operating parameters {unknown}")
        if any(k.startswith("alice.") for k in params):
            merged = {**self._params, **{k: float(v) for k, v in params.items()}}
            self.alice.set_choice(*choice_probabilities(merged))
        pol = {k: v for k, v in params.items() if k.startswith("pol.")}
        if pol:
            settings = [pol.get(f"pol.{i}", self._params[f"pol.{i}"])
                        for i in range(1, self.controller.n_settings + 1)]
            self.controller.set_settings(settings)
        for k in (1, 2, 3):
            if f"voa.{k}" in params:
                self.voa.channel(k - 1).attenuation_db = float(params[f"voa.{k}"])
            if f"voa.on.{k}" in params:
                self.voa.channel(k - 1).output_enabled = bool(params[f"voa.on.{k}"])
        self._params.update({k: float(v) for k, v in params.items()})

    def acquire(self, duration_s: float) -> Acquisition:
        params = self.params()
        tags = self.tagger.read_block(duration_s)
        alice = self.alice.record_for(tags)
        return Acquisition(int(tags.meta.get("block_id", 0)), tags, alice, params)

    def close(self) -> None:
        for inst in (self.tagger, self.alice, self.voa, self.controller):
            if inst is not None:
                with contextlib.suppress(Exception):
                    inst.close()
        if self._on_close is not None:
            on_close, self._on_close = self._on_close, None
            on_close()


def sim_config_of(cfg: LabConfig):
    """The firmware_sim SimConfig of a lab config: [sim] plus the config's timing,
    channel map, source calibration, choice probabilities and controller model
    (so Alice's simulated source does what the protocol's bound assumes)."""
    from firmware_sim.config import SimConfig

    table = {k: (dict(v) if isinstance(v, dict) else v) for k, v in cfg.sim.items()}
    source = dict(table.get("source", {}))
    source.update(pulse_rate_hz=cfg.timing.pulse_rate_hz, sync_divider=cfg.timing.sync_divider,
                  mu_max=cfg.engine.mu_at_0db)
    if cfg.protocol is not None:
        source.update(p_intensity=tuple(cfg.protocol.intensity_probs), p_z=cfg.protocol.key_basis_prob)
        table.setdefault("p_bob_z", cfg.protocol.key_basis_prob)
    table["source"] = source
    tagger = dict(table.get("tagger", {}))
    tagger["channels"] = cfg.channels.model_dump()
    table["tagger"] = tagger
    inst = cfg.instruments
    if inst is not None and inst.polarization is not None:
        model = {"mpc320": "mpc320", "epc400": "epc"}.get(inst.polarization.driver)
        if model is not None:
            controller = dict(table.get("controller", {}))
            controller["model"] = model
            table["controller"] = controller
    try:
        return SimConfig.build(**table)
    except ConfigError as exc:
        raise ConfigError(f"{cfg.source}: [sim]: {exc}") from None


def open_bench(cfg: LabConfig, seed: int = 0) -> LiveHardware:
    """Open every instrument of the config (starting the embedded bench if one is named)."""
    inst = cfg.require_bench()
    named = {"tagger": inst.tagger, "alice": inst.alice, "voa": inst.voa, "polarization": inst.polarization}
    server = None
    if any(i is not None and i.resource == "embedded" for i in named.values()):
        from firmware_sim.serve import SimServer

        server = SimServer.from_config(sim_config_of(cfg), seed)
        res = server.start()
        where = {"tagger": res.tagger, "alice": res.alice, "voa": res.voa,
                 "polarization": res.mpc320 if (inst.polarization and inst.polarization.driver == "mpc320")
                 else res.epc}
        named = {k: (i.model_copy(update={"resource": where[k]}) if i is not None and i.resource == "embedded"
                     else i) for k, i in named.items()}
    opened = []
    try:
        tagger = open_tagger(named["tagger"])
        opened.append(tagger)
        alice = open_alice_host(named["alice"])
        opened.append(alice)
        voa = open_voa(named["voa"]) if named["voa"] is not None else None
        if voa is not None:
            opened.append(voa)
        controller = calibration = None
        if named["polarization"] is not None:
            controller, calibration = open_polarization(named["polarization"])
            opened.append(controller)
    except BaseException:
        for obj in opened:
            with contextlib.suppress(Exception):
                obj.close()
        if server is not None:
            server.stop()
        raise
    gate = {"gate.width_ps": cfg.timing.gate_width_ps}
    if cfg.timing.gate_offset_ps is not None:
        gate["gate.offset_ps"] = cfg.timing.gate_offset_ps
    return LiveHardware(tagger, alice, voa, controller, calibration, mu_at_0db=cfg.engine.mu_at_0db,
                        gate=gate, on_close=server.stop if server is not None else None)
