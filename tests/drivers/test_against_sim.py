"""The drivers over real transports against the independently written emulators (firmware_sim).

VOA: pyvisa-py TCPIP SOCKET and pyserial socket:// to the SCPI TCP service; EPC-400 and
MPC320: pyserial on the emulators' ptys. Disagreements between the two readings of the
manual were resolved on both sides (N7764A slot numbers 1, 3, 5, 7; power control; MDC).
"""

import time

import pytest

from drivers.attenuator.keysight_n776x import KeysightN7764A
from drivers.polarization.calibration import PaddleCalibration, fidelity
from drivers.polarization.epc400 import Epc400
from drivers.polarization.mpc320 import Mpc320
from drivers.transport import DeviceError
from firmware_sim.bench import SimBench
from firmware_sim.config import SimConfig
from firmware_sim.faults import Faults
from firmware_sim.instruments.epc400 import Epc400Firmware
from firmware_sim.instruments.mpc320_apt import Mpc320Firmware
from firmware_sim.instruments.ptys import PtyPort
from firmware_sim.instruments.servers import TcpService
from firmware_sim.instruments.voa_scpi import VoaFirmware
from qkdctl.core.errors import InstrumentError

N7764A_SLOTS = (1, 3, 5, 7)  # a real N7764A addresses its four attenuators as slots 1, 3, 5, 7


@pytest.fixture
def bench():
    return SimBench(SimConfig(), seed=7)


@pytest.fixture
def faults():
    return Faults()


@pytest.fixture
def voa_port(bench, faults):
    service = TcpService("voa", VoaFirmware(bench, faults["voa"], slots=N7764A_SLOTS).session, faults["voa"])
    service.start()
    yield service.port
    service.stop()


@pytest.fixture
def epc_path(bench, faults):
    port = PtyPort("epc", Epc400Firmware(bench), faults["epc"])
    port.start()
    yield port.path
    port.stop()


@pytest.fixture
def mpc_path(bench, faults):
    port = PtyPort("mpc", Mpc320Firmware(bench), faults["mpc"])
    port.start()
    yield port.path
    port.stop()


@pytest.mark.parametrize("scheme", ["TCPIP0::127.0.0.1::{}::SOCKET", "socket://127.0.0.1:{}"])
def test_voa_settings_reach_the_bench(scheme, voa_port, bench):
    with KeysightN7764A.open(scheme.format(voa_port), timeout_s=1.0) as voa:
        assert "N7764A" in voa.identity()
        voa.channel(2).attenuation_db = 17.25
        assert voa.channel(2).attenuation_db == pytest.approx(17.25)
        assert bench.attenuation_db(3) == pytest.approx(17.25)
        voa.channel(0).wavelength_nm = 1310
        assert voa.channel(0).wavelength_nm == pytest.approx(1310.0)
        voa.channel(3).output_enabled = False
        assert voa.channel(3).output_enabled is False
        assert bench.output_enabled(4) is False


def test_voa_error_queue_reports_firmware_errors(voa_port):
    with KeysightN7764A.open(f"TCPIP0::127.0.0.1::{voa_port}::SOCKET",
                             timeout_s=1.0) as voa:
        with pytest.raises(DeviceError, match=r"':INP9:ATT 1': instrument errors: -1\d\d"):
            voa._set(":INP9:ATT 1")
        voa.channel(0).attenuation_db = 1.0  # queue drained: the next write is clean


def test_voa_faults_raise_within_timeout_and_recover(voa_port, faults, bench):
    with KeysightN7764A.open(f"socket://127.0.0.1:{voa_port}",
                             timeout_s=0.2, retries=0) as voa:
        for fault, message in ((dict(drop_replies=True), "timeout"), (dict(corrupt=True), "garbled")):
            faults["voa"].set(**fault)
            start = time.monotonic()
            with pytest.raises(InstrumentError, match=message):
                voa.channel(0).attenuation_db
            assert time.monotonic() - start < 0.2 + 0.4
            faults["voa"].set(drop_replies=False, corrupt=False)
            voa.transport.discard_input()
            assert voa.channel(0).attenuation_db == pytest.approx(bench.attenuation_db(1))


@pytest.mark.parametrize("scheme", ["TCPIP0::127.0.0.1::{}::SOCKET", "socket://127.0.0.1:{}"])
def test_voa_late_reply_and_disconnect_then_recovery(scheme, voa_port, faults, bench):
    with KeysightN7764A.open(scheme.format(voa_port), timeout_s=0.2,
                             retries=0) as voa:
        faults["voa"].set(delay_s=0.3)
        start = time.monotonic()
        with pytest.raises(InstrumentError, match="timeout"):
            voa.channel(0).attenuation_db
        assert time.monotonic() - start < 0.2 + 0.4
        faults["voa"].set(delay_s=0.0)
        time.sleep(0.3)  # the late attenuation reply arrives now; it must not answer the next query
        assert voa.channel(0).wavelength_nm == pytest.approx(bench.wavelength_m(1) * 1e9)
        faults["voa"].set(disconnect=True)
        with pytest.raises(InstrumentError):
            voa.channel(0).attenuation_db
        faults["voa"].set(disconnect=False)
        voa.transport.retries = 2  # a retry reopens the link if the disconnect showed as timeouts
        assert voa.channel(0).attenuation_db == pytest.approx(bench.attenuation_db(1))


def test_voa_default_slot_numbering_matches_emulator(voa_port, bench):
    with KeysightN7764A.open(f"socket://127.0.0.1:{voa_port}", timeout_s=1.0) as voa:
        voa.channel(1).attenuation_db = 3.0
        assert bench.attenuation_db(2) == pytest.approx(3.0)
        voa.channel(3).attenuation_db = 3.0


def test_voa_power_control_matches_emulator(voa_port):
    with KeysightN7764A.open(f"socket://127.0.0.1:{voa_port}", timeout_s=0.5,
                             retries=0) as voa:
        voa.channel(0).power_control_enabled = True


def test_epc_settings_reach_the_bench(epc_path, bench):
    with Epc400.open(epc_path, timeout_s=1.0) as epc:
        epc.set_settings([1200, -3400, 0, 4999.6])
        assert epc.get_settings() == (1200.0, -3400.0, 0.0, 5000.0)
        assert bench.epc_voltage_mv(2) == pytest.approx(-3400.0)
        assert epc.channels[3].voltage_mv == 5000.0


def test_epc_errors_and_faults(epc_path, faults):
    with Epc400.open(epc_path, timeout_s=0.2, retries=0) as epc:
        with pytest.raises(DeviceError, match="Error-3"):
            epc._set("V5,0")
        faults["epc"].set(drop_replies=True)
        start = time.monotonic()
        with pytest.raises(InstrumentError, match="timeout"):
            epc.get_settings()
        assert time.monotonic() - start < 0.2 + 0.4
        faults["epc"].set(drop_replies=False)
        assert epc.get_settings() == (0.0, 0.0, 0.0, 0.0)


def test_epc_dc_mode_matches_emulator(epc_path):
    with Epc400.open(epc_path, timeout_s=1.0) as epc:
        epc.set_dc_mode()


def test_mpc320_moves_home_status_info(mpc_path, bench):
    with Mpc320.open(mpc_path, timeout_s=1.0, move_timeout_s=3.0) as mpc:
        info = mpc.hardware_info()
        assert info.model.startswith("MPC320")
        mpc.identify()
        mpc.set_settings((30.0, 85.0, 120.0))
        assert mpc.get_settings() == pytest.approx((30.0, 85.0, 120.0), abs=170 / 1370)
        assert bench.paddle_deg(2) == pytest.approx(85.0, abs=170 / 1370)
        u = PaddleCalibration().rotation(mpc.get_settings())
        assert fidelity(u, PaddleCalibration().rotation((30.0, 85.0, 120.0))) > 0.999
        mpc.home(1)
        assert mpc.paddles[0].angle_deg == pytest.approx(0.0)
        assert "ENABLED" in repr(mpc.status(1).flags)


def test_mpc320_disabled_paddle_and_move_timeout(mpc_path, faults):
    with Mpc320.open(mpc_path, timeout_s=0.5, move_timeout_s=0.3) as mpc:
        mpc.set_enabled(2, False)
        with pytest.raises(DeviceError, match="HW_RICHRESPONSE for 0x0453"):
            mpc.move_to_deg(2, 10.0)
        mpc.set_enabled(2, True)
        faults["mpc"].set(drop_replies=True)
        start = time.monotonic()
        with pytest.raises(InstrumentError, match="MOT_MOVE_ABSOLUTE"):
            mpc.move_to_deg(1, 60.0)
        assert time.monotonic() - start < 0.3 + 0.4
        faults["mpc"].set(drop_replies=False)
        mpc.move_to_deg(1, 61.0)
        assert mpc.paddles[0].angle_deg == pytest.approx(61.0, abs=170 / 1370)
