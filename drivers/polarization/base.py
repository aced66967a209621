"""The common interface of polarization controllers.

A controller has `n_settings` actuators (paddle angles in deg, squeezer voltages in
mV, ...). Tuners read and write them as a tuple of floats in `setting_unit` and map
them to a polarization rotation through a `Calibration`
(drivers.polarization.calibration), so they work in rotation space whatever the
hardware is.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar, Sequence

from drivers.instrument import Instrument
from qkdctl.core.errors import QkdInputError


class PolarizationController(Instrument, ABC):
    """A controller whose settings are a tuple of `n_settings` floats in `setting_unit`."""

    setting_unit: ClassVar[str]
    setting_limits: ClassVar[tuple[float, float]]
    n_settings: ClassVar[int]

    @abstractmethod
    def get_settings(self) -> tuple[float, ...]:
        """Read all actuator settings (in `setting_unit`)."""

    @abstractmethod
    def set_settings(self, values: Sequence[float]) -> None:
        """Apply all actuator settings (in `setting_unit`); returns once they are in force."""

    def check_settings(self, values: Sequence[float]) -> tuple[float, ...]:
        """Validate a settings tuple: length and limits; `QkdInputError` names the bad value."""
        try:
            values = tuple(float(v) for v in values)
        except (TypeError, ValueError):
            raise QkdInputError(f"{self.name}: settings must be {self.n_settings} numbers, got {values!r}") from None
        if len(values) != self.n_settings:
            raise QkdInputError(f"{self.name}: {len(values)} settings given; {self.n_settings} needed")
        low, high = self.setting_limits
        for i, v in enumerate(values):
            if not (math.isfinite(v) and low <= v <= high):
                raise QkdInputError(
                    f"{self.name}: setting {i} = {v!r} {self.setting_unit} out of range; "
                    f"allowed range is [{low:g}, {high:g}] {self.setting_unit}"
                )
        return values
