"""Marketing consent from the `[consent]` section: the consent cookie, an IAB TCF v2.2
TC string (`euconsent-v2`) and Sec-GPC, decided once per request as a `ConsentState`.

Decisions:
- `honor_gpc = true`: `Sec-GPC: 1` means "no" whether or not consent is required.
  GPC is a legal opt-out signal (e.g. under CCPA), so it also wins over a consent
  cookie or a TC string that says yes.
- `tcf = true` and a TC string in the `euconsent-v2` cookie: the string decides and
  the consent cookie is not read. Purpose 1 (store and/or access information on a
  device) is what pixels and marketing sinks need, and what every cookie of ours
  but `linksClickedId` needs (`storage`). A pixel or sink with `tcf_vendor = N`
  also needs vendor N's consent and purpose 7 (measure advertising performance,
  by consent or by legitimate interest), and no publisher restriction that forbids
  purpose 1 or 7 to that vendor: conversion tracking is purpose 7 in the IAB's list.
  A string that cannot be decoded counts as no consent at all (`tcf_invalid`).
- `tcf = true` without a TC string (the CMP has not asked yet, or does not ask
  this visitor): as without `tcf`.
- `required = true`: yes only when the consent cookie lists one of `granted`
  (comma-, pipe- or space-separated, percent-encoding allowed, any letter case).
- `required = false`: yes unless GPC said no.

Google Consent Mode v2 signals follow Google's TCF mapping: `ad_storage` from
purpose 1, `ad_user_data` from purposes 1 and 7, `ad_personalization` from purposes
3 and 4; without a TC string each is GRANTED exactly when there is consent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote

from cachetools import LRUCache

from proxy.attribution.tcf import TcfError, TcString, decode, purposes_allow
from proxy.config.model import ConsentSection

if TYPE_CHECKING:
    from proxy.config.model import Sink

TCF_COOKIE = "euconsent-v2"
STORAGE_PURPOSE = 1
MEASUREMENT_PURPOSE = 7
PERSONALISATION_PURPOSES = (3, 4)
GRANTED, DENIED = "GRANTED", "DENIED"

_SPLIT = re.compile(r"[,|\s]+")
_MAX_CONSENT_VALUE = 1024
_DECODED = 1024        # TC strings whose decoding is remembered (a visitor sends the same)


@dataclass(frozen=True, slots=True)
class ConsentState:
    """One visitor's consent, as every stage that asks about it sees it."""

    marketing: bool                  # pixels and marketing sinks may run
    storage: bool = True             # cookies beyond linksClickedId may be set and read
    why: str = ""                    # for explain: what decided
    tcf: TcString | None = None
    tcf_invalid: bool = False
    asked: bool = True               # False: consent not required and nobody said no

    def vendor_ok(self, vendor: int | None) -> bool:
        """Whether a pixel or sink with this `tcf_vendor` may run for the visitor."""
        if not self.marketing:
            return False
        if vendor is None or self.tcf is None:
            return True
        return purposes_allow(self.tcf, vendor, (STORAGE_PURPOSE,), (MEASUREMENT_PURPOSE,))

    def allows(self, sink: Sink) -> bool:
        """The routing question: may this sink get the visitor's event?"""
        return not sink.marketing or self.vendor_ok(sink.tcf_vendor)

    def consent_mode(self) -> dict[str, str]:
        """Google Consent Mode v2 signals (names and values as Google spells them)."""
        if self.tcf is None or not self.marketing:
            v = GRANTED if self.marketing else DENIED
            return {"ad_storage": v, "ad_user_data": v, "ad_personalization": v}
        tc = self.tcf

        def granted(*purposes: int) -> str:
            return GRANTED if purposes_allow(tc, None, purposes) else DENIED
        return {"ad_storage": granted(STORAGE_PURPOSE),
                "ad_user_data": granted(STORAGE_PURPOSE, MEASUREMENT_PURPOSE),
                "ad_personalization": granted(*PERSONALISATION_PURPOSES)}

    def event_signals(self) -> dict[str, str]:
        """`Event.consent_mode`: `ad_user_data` and `ad_personalization` for the sinks
        that pass them on; empty when the visitor was never asked (then nothing is
        claimed either way)."""
        if not self.asked:
            return {}
        mode = self.consent_mode()
        return {k: mode[k] for k in ("ad_user_data", "ad_personalization")}


GRANTED_STATE = ConsentState(marketing=True, why="consent not required", asked=False)


class Consent:
    def __init__(self, section: ConsentSection) -> None:
        self.cookie = section.cookie
        self.tcf = section.tcf
        self._required = section.required
        self._honor_gpc = section.honor_gpc
        self._granted = frozenset(g.strip().lower() for g in section.granted)
        self._decoded: LRUCache[str, TcString | None] = LRUCache(maxsize=_DECODED)

    def _decode(self, tc_string: str) -> TcString | None:
        """The decoded string, None when it cannot be read; remembered either way."""
        try:
            return self._decoded[tc_string]
        except KeyError:
            pass
        try:
            tc: TcString | None = decode(tc_string)
        except TcfError:
            tc = None
        self._decoded[tc_string] = tc
        return tc

    def decide(self, cookie_value: str | None, gpc: bool,
               tc_string: str | None = None) -> ConsentState:
        tcf: TcString | None = None
        if self.tcf and tc_string:
            tcf = self._decode(tc_string)
            if tcf is None:
                return ConsentState(False, storage=False, tcf_invalid=True,
                                    why=f"{TCF_COOKIE} cookie unreadable: no consent")
        if gpc and self._honor_gpc:
            storage = tcf is None or STORAGE_PURPOSE in tcf.purposes_consent
            return ConsentState(False, storage=storage, tcf=tcf, why="Sec-GPC: 1 (opt-out)")
        if tcf is not None:
            p1 = STORAGE_PURPOSE in tcf.purposes_consent
            why = (f"TC string (CMP {tcf.cmp_id}, policy version {tcf.policy_version}): "
                   + ("purpose 1 consented" if p1 else "no purpose 1 consent"))
            return ConsentState(p1, storage=p1, tcf=tcf, why=why)
        if not self._required:
            return GRANTED_STATE
        ok = self.allows(cookie_value, gpc=False)
        return ConsentState(ok, why=f"{self.cookie} cookie "
                            + ("grants it" if ok else "absent or not granting"))

    def allows(self, cookie_value: str | None, gpc: bool) -> bool:
        if gpc and self._honor_gpc:
            return False
        if not self._required:
            return True
        if not cookie_value or len(cookie_value) > _MAX_CONSENT_VALUE:
            return False
        if "%" in cookie_value:
            cookie_value = unquote(cookie_value, errors="replace")
        tokens = _SPLIT.split(cookie_value.lower())
        return any(t in self._granted for t in tokens)
