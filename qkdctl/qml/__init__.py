"""Quantum backends (aer | fake | ibm), the job ledger, and the QML tuners (docs/qml_backends.md)."""
