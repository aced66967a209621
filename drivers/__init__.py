"""Instrument drivers: transports, declarative parameters, attenuators, polarization controllers.

Rule of the rooms: this package imports nothing of `qkdctl` except `qkdctl.core`
errors and types. One class per instrument, typed `Parameter`s with units and
limits, every command in one place; `close()` and context managers everywhere.
"""
