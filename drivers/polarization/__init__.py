"""Polarization controllers (EPC-400 voltages, MPC320 paddles over APT) and their SU(2) calibrations."""

from drivers.polarization.base import PolarizationController
from drivers.polarization.calibration import Calibration, PaddleCalibration, SqueezerCalibration
from drivers.polarization.epc400 import Epc400
from drivers.polarization.mpc320 import Mpc320

__all__ = ["Calibration", "Epc400", "Mpc320", "PaddleCalibration", "PolarizationController", "SqueezerCalibration"]
