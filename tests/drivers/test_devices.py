"""Read-only checks against real instruments; run only with `--device-address KIND=RESOURCE`.

Kinds: n7764a, n7766a, epc400, mpc320. Nothing here moves a paddle or changes a setting.
"""

import pytest

from drivers.attenuator.keysight_n776x import KeysightN7764A, KeysightN7766A
from drivers.polarization.epc400 import Epc400
from drivers.polarization.mpc320 import Mpc320

pytestmark = pytest.mark.device

DRIVERS = {"n7764a": KeysightN7764A, "n7766a": KeysightN7766A, "epc400": Epc400, "mpc320": Mpc320}


def _address(config: pytest.Config, kind: str) -> str:
    for item in config.getoption("--device-address"):
        key, _, resource = item.partition("=")
        if key.strip().lower() == kind:
            return resource.strip()
    pytest.skip(f"no --device-address {kind}=RESOURCE given")


@pytest.mark.parametrize("kind", ["n7764a", "n7766a"])
def test_attenuator_identity_and_readback(request, kind):
    with DRIVERS[kind].open(_address(request.config, kind)) as voa:
        assert kind.upper() in voa.identity().upper()
        for channel in voa.channels:
            low, high = voa.attenuation_limits_db
            assert low <= channel.attenuation_db <= high


def test_epc400_reads_voltages(request):
    with Epc400.open(_address(request.config, "epc400")) as epc:
        assert all(-5000 <= v <= 5000 for v in epc.get_settings())


def test_mpc320_info_and_status(request):
    with Mpc320.open(_address(request.config, "mpc320")) as mpc:
        assert mpc.hardware_info().model.upper().startswith("MPC")
        assert all(0.0 <= a <= 170.0 for a in mpc.get_settings())
