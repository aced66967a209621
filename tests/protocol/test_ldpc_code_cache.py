"""The on-disk LDPC code cache keys on the degree-distribution row: a changed row is rebuilt."""

import numpy as np

from qkdctl.core.reconcile import codes as C
from qkdctl.protocol import ldpc_roles as R


def test_changed_row_is_not_loaded_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("QKDCTL_CACHE_DIR", str(tmp_path))
    R.family_code.cache_clear()
    first = R.family_code(0.88, 1024)
    assert len(list((tmp_path / "ldpc_codes").glob("*.npz"))) == 1
    monkeypatch.setitem(C.DEGREE_DISTRIBUTIONS, 0.93, ((3, 1.0),))  # a regular row instead
    R.family_code.cache_clear()
    second = R.family_code(0.88, 1024)
    R.family_code.cache_clear()
    assert len(list((tmp_path / "ldpc_codes").glob("*.npz"))) == 2
    assert np.all(np.diff(second.h_csc.indptr) == 3)
    assert not np.all(np.diff(first.h_csc.indptr) == 3)
