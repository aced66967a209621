"""Simulated bench: physics of a decoy-state BB84 link plus emulated instrument firmware.

`SimBench` (firmware_sim.bench) holds the shared physical state; instruments in
firmware_sim.instruments read and write it.  Imports nothing of qkdctl but qkdctl.core.
"""
