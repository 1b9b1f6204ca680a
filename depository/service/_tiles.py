"""C2SP tlog-tiles: the log as static, cacheable tiles of Merkle tree hashes.

Paths (relative to the log's prefix, here the server root):

- ``/checkpoint``: the latest signed checkpoint;
- ``/tile/<L>/<N>[.p/<W>]``: 256 (or ``W``) consecutive hashes at tree height ``8·L``;
  hash ``i`` of tile ``N`` is MTH(D[(N·256+i)·256^L : (N·256+i+1)·256^L]);
- ``/tile/entries/<N>[.p/<W>]``: the leaves themselves, each a big-endian uint16
  length followed by the leaf bytes.

``N`` is written in 3-digit groups, all but the last prefixed by ``x``
(1234067 → ``x001/x234/067``). The store keeps every perfect subtree (``node(level, k)``
and the leaf hashes), so a tile at level ``L`` is one range read of level ``8·L``.
Only data covered by the latest signed checkpoint is served: a client verifies a
checkpoint first and fetches only the tiles it implies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT  # 256
MAX_LEVEL = 63
_GROUP_X = re.compile(r"x\d{3}\Z")
_GROUP = re.compile(r"\d{3}\Z")
_DECIMAL = re.compile(r"(0|[1-9]\d*)\Z")


class TilePathError(ValueError):
    """The path is not a valid tlog-tiles tile path."""


@dataclass(frozen=True)
class TileRef:
    """A parsed tile path: ``level`` is None for an entry bundle."""

    level: int | None
    index: int
    width: int  # 256 for a full tile

    @property
    def partial(self) -> bool:
        return self.width < TILE_WIDTH

    def path(self) -> str:
        lvl = "entries" if self.level is None else str(self.level)
        return f"tile/{lvl}/{encode_index(self.index)}" + (
            f".p/{self.width}" if self.partial else "")

    def needed_size(self) -> int:
        """The smallest tree size that contains every hash of this tile."""
        level = self.level or 0
        return int((self.index * TILE_WIDTH + self.width) * (TILE_WIDTH ** level))


def encode_index(n: int) -> str:
    """``N`` as zero-padded 3-digit groups, all but the last prefixed by ``x``."""
    if n < 0:
        raise ValueError("tile index must be non-negative")
    groups = [f"{n % 1000:03d}"]
    n //= 1000
    while n > 0:
        groups.append(f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(reversed(groups))


def parse_tile_path(rest: str) -> TileRef:
    """Parse what follows ``tile/``: ``<L>/<N>[.p/<W>]`` or ``entries/<N>[.p/<W>]``."""
    parts = rest.split("/")
    if len(parts) < 2:
        raise TilePathError("a tile path is tile/<L>/<N>[.p/<W>]")
    head, groups = parts[0], parts[1:]
    width = TILE_WIDTH
    if len(groups) >= 2 and groups[-2].endswith(".p"):
        w = groups[-1]
        if not _DECIMAL.match(w) or not 1 <= int(w) <= TILE_WIDTH - 1:
            raise TilePathError("a partial tile's width W must be 1-255 without leading "
                                "zeros")
        width = int(w)
        groups = [*groups[:-2], groups[-2][:-2]]
    if head == "entries":
        level: int | None = None
    elif _DECIMAL.match(head) and int(head) <= MAX_LEVEL:
        level = int(head)
    else:
        raise TilePathError("the tile level L must be 0-63 without leading zeros, or "
                            "'entries'")
    if len(groups) > 7:  # 3·7 digits: far beyond any 64-bit index of a 256-wide tile
        raise TilePathError("the tile index has too many groups")
    if not _GROUP.match(groups[-1]) or not all(_GROUP_X.match(g) for g in groups[:-1]):
        raise TilePathError("the tile index N must be 3-digit groups, all but the last "
                            "prefixed with 'x' (e.g. x001/x234/067)")
    if len(groups) > 1 and groups[0] == "x000":
        raise TilePathError("the tile index must not have leading x000 groups")
    index = 0
    for g in groups:
        index = index * 1000 + int(g.lstrip("x"))
    return TileRef(level, index, width)


def available(ref: TileRef, tree_size: int) -> bool:
    """Whether a tree of ``tree_size`` holds every hash of ``ref``."""
    return ref.needed_size() <= tree_size


def hash_range(ref: TileRef) -> tuple[int, int, int]:
    """(tree level, first k, end k) of the hashes the tile lists."""
    level = ref.level or 0
    first = ref.index * TILE_WIDTH
    return level * TILE_HEIGHT, first, first + ref.width


def encode_bundle(leaves: list[bytes]) -> bytes:
    """An entry bundle: each leaf as a big-endian uint16 length and its bytes."""
    out = bytearray()
    for leaf in leaves:
        if len(leaf) > 0xFFFF:
            raise ValueError(f"entry of {len(leaf)} bytes exceeds the bundle limit (65535)")
        out += len(leaf).to_bytes(2, "big")
        out += leaf
    return bytes(out)
