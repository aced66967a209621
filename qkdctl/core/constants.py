"""Codes and numeric defaults shared across the core (one place, no scattered literals)."""

# Basis codes of Alice's record and of Bob's detectors.
BASIS_Z = 0
BASIS_X = 1

# Intensity classes of Alice's record (mu1 > mu2 > mu3).
SIGNAL = 0
DECOY = 1
VACUUM = 2
N_INTENSITIES = 3

# Detector roles (index into Bob's four detectors): passive basis choice,
# H/V measure Z (bit 0/1), D/A measure X (bit 0/1).
DET_H = 0
DET_V = 1
DET_D = 2
DET_A = 3
N_DETECTORS = 4

# Default tagger channel numbering (a lab config may remap it).
DEFAULT_CHANNELS = {"sync": 0, "H": 1, "V": 2, "D": 3, "A": 4}
