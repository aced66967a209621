"""Physics of the simulated BB84 link: source, fiber, polarization, detectors, Eve, tagger."""
