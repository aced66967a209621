"""Error-correction kernels (Cascade, LDPC): pure functions on numpy arrays, no I/O."""
