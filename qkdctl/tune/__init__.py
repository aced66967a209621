"""Tuners: retune the bench between key blocks (classical and QML, one interface)."""
