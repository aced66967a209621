"""Learned selection of detection events and disclosure-light QBER prediction (docs/selection.md)."""
