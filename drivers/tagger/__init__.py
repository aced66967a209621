"""Time taggers: the common interface, the simulated tagger's network client, the
Swabian adapter, and PicoQuant PTU (T2) reading and writing."""
