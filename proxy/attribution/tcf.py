"""IAB TCF v2 (v2.0 and v2.2) TC strings: the core segment, decoded without trust.

A TC string is dot-separated base64url segments; the first is the core segment, a
bit string laid out by the IAB's "Consent string and vendor list formats v2":

    Version 6 · Created 36 · LastUpdated 36 · CmpId 12 · CmpVersion 12 ·
    ConsentScreen 6 · ConsentLanguage 12 · VendorListVersion 12 ·
    TcfPolicyVersion 6 · IsServiceSpecific 1 · UseNonStandardTexts 1 ·
    SpecialFeatureOptIns 12 · PurposesConsent 24 (bit 152) ·
    PurposesLITransparency 24 · PurposeOneTreatment 1 · PublisherCC 12 ·
    vendor consents · vendor legitimate interests · publisher restrictions

where each vendor section is MaxVendorId 16 · IsRangeEncoding 1 · then either a
bitfield of MaxVendorId bits or NumEntries 12 and entries (IsARange 1 ·
StartOrOnlyVendorId 16 · EndVendorId 16 when a range). v2.2 changed the policy
(policy version 4 and later), not the layout, so one decoder reads both.

Every problem (bad base64, a string cut short, a range out of order or past
MaxVendorId, a version other than 2) raises `TcfError`; nothing else is raised
for any input. Disclosed-vendor and publisher segments are not needed here and
are not read.
"""

from __future__ import annotations

import base64
import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

MAX_TC_STRING = 4096        # characters: what a browser keeps of a cookie
_B64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")


class TcfError(ValueError):
    """A TC string that cannot be read: treated as no consent."""


class _Bits:
    """A big-endian bit reader that raises `TcfError` instead of reading past the end.

    The bits are held as a text of 0s and 1s: a field is then one slice and one
    `int(…, 2)`, cheap whatever its width or position."""

    def __init__(self, data: bytes) -> None:
        self._len = len(data) * 8
        self._bits = format(int.from_bytes(data, "big"), f"0{self._len}b") if data else ""
        self.pos = 0

    def read(self, n: int) -> int:
        end = self.pos + n
        if end > self._len:
            raise TcfError(f"cut short: field at bit {self.pos} needs {n} bits, "
                           f"{self._len - self.pos} left")
        field = self._bits[self.pos:end]
        self.pos = end
        return int(field, 2) if n else 0

    def flag(self) -> bool:
        return self.read(1) == 1

    def letters(self) -> str:
        return "".join(chr(ord("A") + self.read(6)) for _ in range(2))


@dataclass(frozen=True, slots=True)
class VendorSet:
    """Vendor ids as a bitfield (bit 1 is vendor 1) or as sorted id ranges."""

    max_id: int
    bitfield: int = 0
    ranges: tuple[tuple[int, int], ...] = ()

    def __contains__(self, vendor: int) -> bool:
        if not 1 <= vendor <= self.max_id:
            return False
        if self.ranges:
            return _in_ranges(self.ranges, vendor)
        return bool((self.bitfield >> (self.max_id - vendor)) & 1)

    def ids(self) -> list[int]:
        """Every id in the set (for tests and explain; bounded by 65535)."""
        return [v for v in range(1, self.max_id + 1) if v in self]


def _in_ranges(ranges: tuple[tuple[int, int], ...], vendor: int) -> bool:
    """`ranges` sorted and disjoint (as `_ranges` returns them)."""
    i = bisect_right(ranges, (vendor, 0xFFFF)) - 1
    return i >= 0 and ranges[i][1] >= vendor


def _ranges(bits: _Bits, count: int, max_id: int) -> tuple[tuple[int, int], ...]:
    """Range entries, sorted and merged so that a look-up is one bisection."""
    out: list[tuple[int, int]] = []
    for _ in range(count):
        is_range = bits.flag()
        lo = bits.read(16)
        hi = bits.read(16) if is_range else lo
        if not 1 <= lo <= hi <= max_id:
            raise TcfError(f"vendor range {lo}-{hi} outside 1-{max_id}")
        out.append((lo, hi))
    out.sort()
    merged: list[tuple[int, int]] = []
    for lo, hi in out:
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return tuple(merged)


def _vendors(bits: _Bits) -> VendorSet:
    max_id = bits.read(16)
    if bits.flag():
        return VendorSet(max_id, ranges=_ranges(bits, bits.read(12), max_id))
    return VendorSet(max_id, bitfield=bits.read(max_id))


@dataclass(frozen=True, slots=True)
class Restriction:
    """A publisher restriction: for `purpose`, the vendors in `vendors` get `kind`
    (0 not allowed, 1 require consent, 2 require legitimate interest)."""

    purpose: int
    kind: int
    vendors: tuple[tuple[int, int], ...]

    def covers(self, vendor: int) -> bool:
        return _in_ranges(self.vendors, vendor)


NOT_ALLOWED = 0


@dataclass(frozen=True, slots=True)
class TcString:
    version: int
    created: float                  # unix seconds
    last_updated: float
    cmp_id: int
    cmp_version: int
    consent_screen: int
    consent_language: str
    vendor_list_version: int
    policy_version: int
    is_service_specific: bool
    use_non_standard_texts: bool
    special_features: frozenset[int]
    purposes_consent: frozenset[int]
    purposes_li: frozenset[int]
    purpose_one_treatment: bool
    publisher_cc: str
    vendor_consents: VendorSet
    vendor_li: VendorSet
    restrictions: tuple[Restriction, ...]

    def restricted(self, purpose: int, vendor: int) -> bool:
        """The publisher does not allow `vendor` to use `purpose` at all."""
        return any(r.purpose == purpose and r.kind == NOT_ALLOWED and r.covers(vendor)
                   for r in self.restrictions)


def _set(value: int, width: int) -> frozenset[int]:
    """Bit 1 (the leftmost of `width`) is id 1."""
    return frozenset(i + 1 for i in range(width) if (value >> (width - 1 - i)) & 1)


def decode(tc_string: str) -> TcString:
    """The core segment of `tc_string`; `TcfError` for anything malformed."""
    if not tc_string or len(tc_string) > MAX_TC_STRING:
        raise TcfError("empty or too long")
    core = tc_string.split(".", 1)[0]
    if not _B64URL.fullmatch(core):
        raise TcfError("the core segment is not base64url")
    core = core.rstrip("=")
    try:
        data = base64.urlsafe_b64decode(core + "=" * (-len(core) % 4))
    except ValueError as exc:        # binascii.Error: a length base64 cannot have
        raise TcfError("the core segment is not base64url") from exc
    bits = _Bits(data)
    version = bits.read(6)
    if version != 2:
        raise TcfError(f"version {version}: only TCF v2 strings are read")
    created, updated = bits.read(36) / 10, bits.read(36) / 10
    cmp_id, cmp_version, screen = bits.read(12), bits.read(12), bits.read(6)
    language = bits.letters()
    gvl, policy = bits.read(12), bits.read(6)
    service_specific, non_standard = bits.flag(), bits.flag()
    special = _set(bits.read(12), 12)
    consents, li = _set(bits.read(24), 24), _set(bits.read(24), 24)
    p1_treatment = bits.flag()
    country = bits.letters()
    vendor_consents = _vendors(bits)
    vendor_li = _vendors(bits)
    restrictions = []
    for _ in range(bits.read(12)):
        purpose, kind = bits.read(6), bits.read(2)
        restrictions.append(Restriction(purpose, kind, _ranges(bits, bits.read(12), 0xFFFF)))
    return TcString(
        version=version, created=created, last_updated=updated, cmp_id=cmp_id,
        cmp_version=cmp_version, consent_screen=screen, consent_language=language,
        vendor_list_version=gvl, policy_version=policy, is_service_specific=service_specific,
        use_non_standard_texts=non_standard, special_features=special,
        purposes_consent=consents, purposes_li=li, purpose_one_treatment=p1_treatment,
        publisher_cc=country, vendor_consents=vendor_consents, vendor_li=vendor_li,
        restrictions=tuple(restrictions))


def purposes_allow(tc: TcString, vendor: int | None, consent: Sequence[int],
                   consent_or_li: Sequence[int] = ()) -> bool:
    """Whether the TC string lets `vendor` (None: no vendor check) use the purposes:
    `consent` need the user's consent; `consent_or_li` accept legitimate interest
    too (the purpose's LI transparency and, for a vendor, the vendor's LI)."""
    for p in consent:
        if p not in tc.purposes_consent:
            return False
    for p in consent_or_li:
        if p in tc.purposes_consent and (vendor is None or vendor in tc.vendor_consents):
            continue
        if p in tc.purposes_li and (vendor is None or vendor in tc.vendor_li):
            continue
        return False
    if vendor is None:
        return True
    if vendor not in tc.vendor_consents:
        return False
    return not any(tc.restricted(p, vendor) for p in (*consent, *consent_or_li))
