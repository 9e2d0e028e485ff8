"""Random ids for the request path (visitor ids, event ids), cut from 4 KB draws of
the OS CSPRNG.

`os.urandom(16)` per id is one getrandom system call per request; one 4 KB draw
serves 256 ids, so the call is paid once per 256. Still `os.urandom`, never a
seeded generator: an id is as unpredictable as `secrets.token_hex(16)` gives.

Each draw is hex-encoded once and its slots handed out by an `itertools.count`,
whose `__next__` no other thread can interleave (it holds the GIL throughout):
two threads never get the same slot, and a thread that finds the draw used up
takes the first slot of its own new draw. A forked child drops its parent's
draws (`os.register_at_fork`), so parent and child never hand out the same id.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from itertools import count

DRAW_BYTES = 4096
ID_BYTES = 16
_ID_HEX = 2 * ID_BYTES
# RFC 4122 version 4: the version nibble (byte 6) is 4, the variant bits (byte 8) 10.
_VERSION_4 = bytes((b & 0x0F) | 0x40 for b in range(256))
_VARIANT = bytes((b & 0x3F) | 0x80 for b in range(256))


class HexIds:
    """32-hex-digit ids (16 random bytes); with `uuid4`, random version-4 UUIDs in
    hex (122 random bits), as `uuid.uuid4().hex` spells them."""

    __slots__ = ("__weakref__", "_draw", "_uuid4")

    def __init__(self, uuid4: bool = False) -> None:
        self._uuid4 = uuid4
        self._draw: tuple[str, Callable[[], int]] = _EMPTY
        _ALL.add(self)

    def __call__(self) -> str:
        text, take = self._draw
        at = take()
        if at < len(text):
            return text[at:at + _ID_HEX]
        return self._redraw()

    def _redraw(self) -> str:
        raw = os.urandom(DRAW_BYTES)
        if self._uuid4:
            ids = bytearray(raw)
            ids[6::ID_BYTES] = ids[6::ID_BYTES].translate(_VERSION_4)
            ids[8::ID_BYTES] = ids[8::ID_BYTES].translate(_VARIANT)
            raw = bytes(ids)
        text = raw.hex()
        self._draw = (text, count(_ID_HEX, _ID_HEX).__next__)    # slot 0 is this caller's
        return text[:_ID_HEX]

    def _forget(self) -> None:
        self._draw = _EMPTY


_EMPTY: tuple[str, Callable[[], int]] = ("", count().__next__)
_ALL: weakref.WeakSet[HexIds] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for ids in list(_ALL):
        ids._forget()


os.register_at_fork(after_in_child=_after_fork_in_child)

visitor_id = HexIds()
"""A new `linksClickedId`: 32 lowercase hex digits."""
