"""Builds IAB TCF v2 TC strings (core segment) for tests, field by field as the IAB's
format document lays them out; the decoder under test never builds strings."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence


class BitWriter:
    def __init__(self) -> None:
        self.bits: list[str] = []

    def int(self, value: int, width: int) -> BitWriter:
        assert 0 <= value < 1 << width, (value, width)
        self.bits.append(format(value, f"0{width}b"))
        return self

    def flag(self, value: bool) -> BitWriter:
        return self.int(int(value), 1)

    def ids(self, ids: Iterable[int], width: int) -> BitWriter:
        chosen = set(ids)
        self.bits.append("".join("1" if i + 1 in chosen else "0" for i in range(width)))
        return self

    def letters(self, text: str) -> BitWriter:
        for ch in text:
            self.int(ord(ch) - ord("A"), 6)
        return self

    def encode(self) -> str:
        bits = "".join(self.bits)
        bits += "0" * (-len(bits) % 8)
        data = int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""
        return base64.urlsafe_b64encode(data).decode().rstrip("=")


def vendor_section(w: BitWriter, vendors: Sequence[int] = (), *,
                   ranges: Sequence[tuple[int, int]] | None = None,
                   max_id: int | None = None) -> None:
    """A vendor section: a bitfield of `vendors`, or range entries when `ranges` is given."""
    if ranges is not None:
        w.int(max_id if max_id is not None else max((hi for _, hi in ranges), default=0), 16)
        w.flag(True).int(len(ranges), 12)
        for lo, hi in ranges:
            w.flag(lo != hi).int(lo, 16)
            if lo != hi:
                w.int(hi, 16)
        return
    top = max_id if max_id is not None else max(vendors, default=0)
    w.int(top, 16).flag(False).ids(vendors, top)


def tc_string(*, purposes: Iterable[int] = (), purposes_li: Iterable[int] = (),
              vendors: Sequence[int] = (), vendors_li: Sequence[int] = (),
              vendor_ranges: Sequence[tuple[int, int]] | None = None,
              restrictions: Sequence[tuple[int, int, Sequence[tuple[int, int]]]] = (),
              policy_version: int = 4, cmp_id: int = 300, created_ds: int = 17000000000,
              special_features: Iterable[int] = ()) -> str:
    """A v2 core string; policy version 4 is TCF v2.2's."""
    w = BitWriter()
    w.int(2, 6).int(created_ds, 36).int(created_ds + 10, 36).int(cmp_id, 12).int(3, 12)
    w.int(1, 6).letters("DE").int(150, 12).int(policy_version, 6)
    w.flag(True).flag(False).ids(special_features, 12)
    w.ids(purposes, 24).ids(purposes_li, 24).flag(False).letters("DE")
    vendor_section(w, vendors, ranges=vendor_ranges)
    vendor_section(w, vendors_li)
    w.int(len(restrictions), 12)
    for purpose, kind, entries in restrictions:
        w.int(purpose, 6).int(kind, 2).int(len(entries), 12)
        for lo, hi in entries:
            w.flag(lo != hi).int(lo, 16)
            if lo != hi:
                w.int(hi, 16)
    return w.encode()


ALL_PURPOSES = tuple(range(1, 12))
GOOGLE = 755          # Google Advertising Products in the IAB's Global Vendor List
