"""The right edge of the Merkle tree, kept in memory by the single writer.

The frontier is the list of perfect subtrees that make up a tree of size n (one per set
bit of n, largest first). Appending a leaf merges equal-sized neighbours, and every
merge is a new perfect node that the store persists, so any proof for any past size can
later be served from O(log n) stored nodes.
"""

from __future__ import annotations

from collections.abc import Callable

from depository.tlog.merkle import EMPTY_ROOT, node_hash

NodeRow = tuple[int, int, bytes]  # (level, k, hash): leaves [k·2^level, (k+1)·2^level)


class Frontier:
    """Perfect subtrees on the right edge: ``[(level, hash), ...]``, levels decreasing."""

    __slots__ = ("size", "stack")

    def __init__(self, size: int = 0, stack: list[tuple[int, bytes]] | None = None) -> None:
        self.size = size
        self.stack: list[tuple[int, bytes]] = stack or []

    def copy(self) -> Frontier:
        return Frontier(self.size, list(self.stack))

    def append(self, leaf_hash: bytes, out: list[NodeRow]) -> None:
        """Add the next leaf; every perfect node it completes goes to ``out``."""
        index = self.size
        self.size += 1
        stack = self.stack
        level = 0
        h = leaf_hash
        while stack and stack[-1][0] == level:
            h = node_hash(stack.pop()[1], h)
            level += 1
            out.append((level, index >> level, h))
        stack.append((level, h))

    def root(self) -> bytes:
        if not self.stack:
            return EMPTY_ROOT
        h = self.stack[-1][1]
        for _, left in reversed(self.stack[:-1]):
            h = node_hash(left, h)
        return h

    @classmethod
    def load(cls, size: int, node: Callable[[int, int], bytes]) -> Frontier:
        """Rebuild the frontier of a tree of ``size`` from stored perfect nodes."""
        stack: list[tuple[int, bytes]] = []
        start = 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                stack.append((level, node(level, start >> level)))
                start += 1 << level
        return cls(size, stack)
