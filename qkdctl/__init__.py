"""qkdctl: control stack for decoy-state BB84 QKD benches."""

__version__ = "0.1.0"
