"""Which pixels a page gets, and the markup for them.

Compiled once per rules file: `PixelSet.for_path` picks the pixels whose `paths`
match (cached, bounded); `render` builds the head script (the page's data layer and
dispatch from `page_script`, each network's base code and handler from `pixel_tags`,
PageView, and the events tracked in the browser with the same event id as the
server-side send), the body part (noscript images, html snippets) and the CSP hosts
they need. `PixelSet.compiled` holds all of that but a page's ids and events as
bytes, once per pixel set: `CompiledPixels.head` is what a page's plan calls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from types import MappingProxyType
from typing import Final

from cachetools import LRUCache

from proxy.attribution.consent import ConsentState
from proxy.config.model import Pixel, Sink
from proxy.page_script import BOOTSTRAP
from proxy.pixel_tags import (
    META_BASE,
    META_CSP,
    NETWORK_CSP,
    google_consent,
    google_init,
    js,
    linkedin_init,
    linkedin_noscript,
    meta_init,
    meta_noscript,
    tiktok_init,
)
from proxy.transform.header_plan import HostsKey

__all__ = ["META_BASE", "META_CSP", "BrowserEvent", "Markup", "PixelSet", "js"]

@dataclass(frozen=True, slots=True)
class BrowserEvent:
    """An event the page tracks in the browser: the server-side send has the same id."""

    name: str            # our name, e.g. ApplicationCompleted
    event_id: str
    data: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Markup:
    head_script: str            # inline JS, without the <script> tag (its hash may go in CSP)
    head_html: str              # verbatim snippets for the head
    body_html: str              # verbatim snippets and noscript images for before </body>
    csp_hosts: Mapping[str, tuple[str, ...]]

    def head(self, nonce: str | None) -> bytes:
        if not self.head_script and not self.head_html:
            return b""
        attr = f' nonce="{escape(nonce)}"' if nonce else ""
        script = f"<script{attr}>{self.head_script}</script>" if self.head_script else ""
        return (script + self.head_html).encode()


def browser_events(events: Sequence[BrowserEvent]) -> list[dict[str, object]]:
    """Events as the page's script tracks them: each pixel maps the name itself."""
    return [{"event": ev.name, "event_id": ev.event_id, "data": dict(ev.data)}
            for ev in events]


def tail_events(element_id: str, items: list[dict[str, object]]) -> bytes:
    """Events found after the head was sent, as inert JSON the head script reads.

    A data block is not script, so the page's CSP needs no second hash for it.
    """
    return f'<script type="application/json" id="{element_id}">{js(items)}</script>'.encode()


def tail_id(page_event_id: str) -> str:
    return f"ce-events-{page_event_id}"


_PATH_CACHE = 4096       # paths whose pixel choice is remembered
_TUPLE_CACHE = 256       # pixel tuples whose compiled parts are found by identity


class PixelSet:
    """The rules file's pixels, compiled once."""

    def __init__(self, pixels: Sequence[Pixel], sinks: Mapping[str, Sink]) -> None:
        self.pixels = tuple(pixels)
        # A plain dict, emptied when full: looked up on every page, where an LRU's
        # bookkeeping would cost more than the pattern matching it saves.
        self._cache: dict[str, tuple[Pixel, ...]] = {}
        self._statics: LRUCache[tuple[int, ...], CompiledPixels] = LRUCache(maxsize=256)
        self._by_tuple: dict[int, tuple[Sequence[Pixel], CompiledPixels]] = {}
        # Browser and server events deduplicate only under the same name: use the
        # mapping of the meta sink that reports to the same pixel.
        self.meta_names: dict[str, Mapping[str, str]] = {}
        for sink in sinks.values():
            if sink.type == "meta" and sink.pixel_id:
                self.meta_names.setdefault(sink.pixel_id, sink.event_names)

    def __bool__(self) -> bool:
        return bool(self.pixels)

    def for_path(self, path: str) -> tuple[Pixel, ...]:
        hit = self._cache.get(path)
        if hit is None:
            hit = tuple(p for p in self.pixels if any(pat.match(path) is not None
                                                       for pat in p.paths))
            if len(self._cache) >= _PATH_CACHE:
                self._cache.clear()
            self._cache[path] = hit
        return hit

    def allowed(self, path: str, consent: ConsentState) -> tuple[Pixel, ...]:
        """The pixels for `path` that the visitor's consent lets run (TCF vendors)."""
        pixels = self.for_path(path)
        if consent.tcf is None or not any(p.tcf_vendor for p in pixels):
            return pixels
        return tuple(p for p in pixels if consent.vendor_ok(p.tcf_vendor))

    def meta_names_for(self, pixels: Sequence[Pixel]) -> Mapping[str, str]:
        for p in pixels:
            if p.type == "meta" and p.pixel_id in self.meta_names:
                return self.meta_names[p.pixel_id]
        return {}

    def csp_hosts_for(self, pixels: Sequence[Pixel]) -> Mapping[str, tuple[str, ...]]:
        """What `render(pixels, …).csp_hosts` will be, before rendering."""
        return self.compiled(pixels).csp_hosts

    def render(self, pixels: Sequence[Pixel], *, page_event_id: str, links_clicked_id: str,
               events: Sequence[BrowserEvent] = (),
               consent_mode: Mapping[str, str] | None = None) -> Markup:
        """Markup for one page. `events` are known now; later ones go in `tail_events`.
        `consent_mode`: the visitor's Google Consent Mode signals (default: granted,
        as pixels are only rendered with consent)."""
        st = self.compiled(pixels)
        script = st.head(None, links_clicked_id, page_event_id, events, consent_mode)[1:-1]
        return Markup(head_script=b"".join(script).decode(), head_html=st.head_html,
                      body_html=st.body_html, csp_hosts=st.csp_hosts)

    def compiled(self, pixels: Sequence[Pixel]) -> CompiledPixels:
        """The parts of `render` that depend on the pixels alone, built once per set.

        `for_path` hands out the same tuple for a path on every page: found by its
        identity first (the entry holds the tuple, so its id is not reused meanwhile).
        """
        hit = self._by_tuple.get(id(pixels))
        if hit is not None and hit[0] is pixels:
            return hit[1]
        compiled = self._static_for(pixels)
        if type(pixels) is tuple:       # a list could change under its id
            if len(self._by_tuple) >= _TUPLE_CACHE:
                self._by_tuple.clear()
            self._by_tuple[id(pixels)] = (pixels, compiled)
        return compiled

    def _static_for(self, pixels: Sequence[Pixel]) -> CompiledPixels:
        """`compiled` by the pixels in the tuple (a TCF-filtered tuple is new per page).

        Keyed by the pixels' identities: an entry keeps its pixels alive, so an id
        in the key cannot be reused by another object while the entry exists.
        """
        key = tuple(map(id, pixels))
        hit = self._statics.get(key)
        if hit is None:
            hit = self._statics[key] = CompiledPixels.build(tuple(pixels),
                                                            self.meta_names_for(pixels))
        return hit


# The head script's fixed text around the values `render` fills in.
SCRIPT_START = ("window.careersEdge=window.careersEdge||{events:[]};"
                "careersEdge.linksClickedId=")
DOM_READY_START = "document.addEventListener('DOMContentLoaded',function(){var d=document." \
    "getElementById("
DOM_READY_END = ");if(d)careersEdge.track(JSON.parse(d.textContent))});"
PAGE_VIEW_START = "fbq('track','PageView',{},{eventID:"

# The same as bytes, each with the quote of the JSON string that follows or ends there.
_START: Final = (SCRIPT_START + '"').encode()
_BOOT: Final = ('";' + BOOTSTRAP).encode()
_PAGE_VIEW_END: Final = b'"});'
_DOM_READY: Final = (DOM_READY_START + '"' + tail_id("")).encode()
_DOM_READY_END: Final = ('"' + DOM_READY_END).encode()
_PAGE_VIEW_DOM_READY: Final = _PAGE_VIEW_END + _DOM_READY

GRANTED_MODE = {"ad_storage": "GRANTED", "ad_user_data": "GRANTED",
                "ad_personalization": "GRANTED"}


def _inside(value: str) -> bytes:
    """`js(value)` without its quotes, as bytes: JSON escapes a string character by
    character, so an id of ASCII letters and digits is its own JSON text (a lone
    surrogate passes the encoding, to fail in `js` as it always did)."""
    encoded = value.encode("utf-8", "surrogatepass")
    return encoded if encoded.isalnum() else js(value)[1:-1].encode()


_OPEN_TAGS: dict[str | None, bytes] = {}
_NONCES_KEPT = 256


def script_open(nonce: str | None) -> bytes:
    """The head script's opening tag: with the page's nonce when it has one."""
    tag = _OPEN_TAGS.get(nonce)
    if tag is None:
        attr = f' nonce="{escape(nonce)}"' if nonce else ""
        tag = f"<script{attr}>".encode()
        if len(_OPEN_TAGS) >= _NONCES_KEPT:      # a nonce per response: start over
            _OPEN_TAGS.clear()
        _OPEN_TAGS[nonce] = tag
    return tag


_CONSENTS: dict[tuple[tuple[str, str], ...], bytes] = {}
_CONSENTS_KEPT = 64


def _consent_default(consent_mode: Mapping[str, str]) -> bytes:
    """`google_consent` as bytes, kept per signals (a few combinations of two values)."""
    key = tuple(consent_mode.items())
    found = _CONSENTS.get(key)
    if found is None:
        if len(_CONSENTS) >= _CONSENTS_KEPT:
            _CONSENTS.clear()
        found = _CONSENTS[key] = google_consent(consent_mode).encode()
    return found


@dataclass(frozen=True, slots=True)
class CompiledPixels:
    """A set of pixels' markup, all but a page's few values joined once (as bytes)."""

    pixels: tuple[Pixel, ...]          # held so the ids in the cache key stay theirs
    has_meta: bool
    has_google: bool
    init: str                          # every network's base code and tracker
    head_html: str
    body_html: str
    csp_hosts: Mapping[str, tuple[str, ...]]
    hosts_key: HostsKey                # `csp_hosts` as the header plans' cache key
    boot_init: bytes                   # after the visitor id, up to the page's event id
    init_bytes: bytes                  # the same after Google's consent default
    close: bytes                       # the script's end tag and the head snippets
    body: bytes                        # `body_html`, encoded

    def head(self, nonce: str | None, links_clicked_id: str, page_event_id: str,
             events: Sequence[BrowserEvent] = (),
             consent_mode: Mapping[str, str] | None = None) -> list[bytes]:
        """The head snippet in parts, to be joined: the script's opening tag, the
        script (`[1:-1]`, fixed text and this page's values JSON-escaped as `js`
        does), then its end tag and the html snippets."""
        event_id = _inside(page_event_id)
        if self.has_google:
            out = [script_open(nonce), _START, _inside(links_clicked_id), _BOOT,
                   _consent_default(consent_mode or GRANTED_MODE), self.init_bytes]
        else:
            out = [script_open(nonce), _START, _inside(links_clicked_id), self.boot_init]
        if events:
            if self.has_meta:
                out += (event_id, _PAGE_VIEW_END)
            out += (f"careersEdge.track({js(browser_events(events))});".encode(),
                    _DOM_READY, event_id, _DOM_READY_END, self.close)
        elif self.has_meta:
            out += (event_id, _PAGE_VIEW_DOM_READY, event_id, _DOM_READY_END, self.close)
        else:
            out += (_DOM_READY, event_id, _DOM_READY_END, self.close)
        return out

    @classmethod
    def build(cls, pixels: tuple[Pixel, ...], meta_names: Mapping[str, str]) -> CompiledPixels:
        by_type: dict[str, list[Pixel]] = {}
        for p in pixels:
            by_type.setdefault(p.type, []).append(p)
        head_html: list[str] = []
        body_html: list[str] = []
        hosts: dict[str, list[str]] = {}
        init: list[str] = []
        if metas := by_type.get("meta"):
            init.append(meta_init(metas, meta_names))
            body_html.extend(map(meta_noscript, metas))
        if tiktoks := by_type.get("tiktok"):
            init.append(tiktok_init(tiktoks))
        if linkedins := by_type.get("linkedin"):
            init.append(linkedin_init(linkedins))
            body_html.extend(map(linkedin_noscript, linkedins))
        if googles := by_type.get("google"):
            init.append(google_init(googles))
        for kind in by_type:
            for d, hs in NETWORK_CSP.get(kind, {}).items():
                hosts.setdefault(d, []).extend(hs)
        for p in pixels:
            if p.type == "html" and p.html:
                (head_html if p.position == "head" else body_html).append(p.html)
            for d, hs in p.csp.items():
                hosts.setdefault(d, []).extend(hs)
        joined = "".join(init) + (PAGE_VIEW_START + '"' if metas else "")
        csp_hosts = {d: tuple(dict.fromkeys(hs)) for d, hs in hosts.items()}
        return cls(pixels=pixels, has_meta=bool(metas), has_google=bool(googles),
                   init="".join(init),
                   head_html="".join(head_html), body_html="".join(body_html),
                   csp_hosts=MappingProxyType(csp_hosts),
                   hosts_key=tuple(csp_hosts.items()),
                   boot_init=_BOOT + joined.encode(), init_bytes=joined.encode(),
                   close=("</script>" + "".join(head_html)).encode(),
                   body="".join(body_html).encode())
