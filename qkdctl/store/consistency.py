"""Make the run database and the key stores agree on every key id after a crash.

Order of writes per block: key fsynced in each key store, then the block row
committed.  A crash in between leaves keys no block names: they are dropped
(tombstoned), never delivered.  A block naming a key the store lacks cannot
happen with that order and is reported as corruption.
"""

from __future__ import annotations

from qkdctl.core.errors import QkdInputError
from qkdctl.store.keystore import KeyStore
from qkdctl.store.rundb import RunDB


def reconcile_stores(db: RunDB, stores: list[KeyStore]) -> list[str]:
    """Drop keys that no block row names; return the dropped ids.

    Raises QkdInputError if a block row names a key missing from a store.
    """
    named = db.key_ids()
    dropped: list[str] = []
    for store in stores:
        held = set(store.ids())
        missing = named - held
        if missing:
            raise QkdInputError(
                f"run database names {len(missing)} key id(s) absent from {store.dir}: "
                "the key store is corrupt or from another run"
            )
        for entry in store.entries():
            if entry.key_id not in named and not entry.dropped:
                store.drop(entry.key_id, "block not committed to the run database")
                dropped.append(entry.key_id)
    return dropped
