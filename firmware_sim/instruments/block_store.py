"""Blocks acquired through the tagger, kept for Alice's host (bounded, thread-safe)."""

from __future__ import annotations

import threading
from collections import OrderedDict

from qkdctl.core.errors import QkdInputError


class BlockStore:
    """The last `capacity` acquired blocks by block_id (oldest evicted first)."""

    def __init__(self, capacity: int = 8) -> None:
        if capacity < 1:
            raise QkdInputError(f"block store capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._lock = threading.Lock()
        self._blocks: OrderedDict[int, object] = OrderedDict()

    def put(self, block) -> None:
        """Keep a block (anything with .block_id and .alice)."""
        with self._lock:
            self._blocks[int(block.block_id)] = block
            while len(self._blocks) > self.capacity:
                self._blocks.popitem(last=False)

    def get(self, block_id: int):
        """The block with this id, or None when never acquired or already evicted."""
        with self._lock:
            return self._blocks.get(int(block_id))

    def ids(self) -> list[int]:
        """Ids of the blocks held, ascending."""
        with self._lock:
            return sorted(self._blocks)
