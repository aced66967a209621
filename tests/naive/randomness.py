"""Plain reference of the SP 800-90B continuous health tests (repetition count, adaptive proportion)."""


def first_health_failure(samples, rct_cutoff: int, apt_cutoff: int, window: int) -> int:
    """Index of the first sample at which either test fails, or -1 (one fresh stream).

    Repetition count (4.4.1): fail when a value has repeated rct_cutoff times in a row.
    Adaptive proportion (4.4.2): windows of `window` samples; fail when the window's
    first value has occurred apt_cutoff times in the window (counting itself).
    """
    samples = [int(s) for s in samples]
    run_value, run_length = None, 0
    reference, count = None, 0
    for i, v in enumerate(samples):
        if v == run_value:
            run_length += 1
        else:
            run_value, run_length = v, 1
        if run_length >= rct_cutoff:
            return i
        if i % window == 0:
            reference, count = v, 1
        elif v == reference:
            count += 1
            if count >= apt_cutoff:
                return i
    return -1
