"""Variable optical attenuators: Keysight N776xA family and a config-driven generic SCPI VOA."""

from drivers.attenuator.generic_scpi import GenericScpiVoa
from drivers.attenuator.keysight_n776x import KeysightN7761A, KeysightN7764A, KeysightN7766A

__all__ = ["GenericScpiVoa", "KeysightN7761A", "KeysightN7764A", "KeysightN7766A"]
