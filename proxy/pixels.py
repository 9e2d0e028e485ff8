"""Which pixels a page gets, and the markup for them.

Compiled once per rules file: `PixelSet.for_path` picks the pixels whose `paths`
match (cached, bounded); `render` builds the head script (Meta base code, PageView,
the page's data layer), the body part (noscript image, events tracked in the browser
with the same `eventID` as the server-side send) and the CSP hosts they need.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from types import MappingProxyType

import orjson
from cachetools import LRUCache

from proxy.config.model import Pixel, Sink

META_SCRIPT_HOST = "https://connect.facebook.net"
META_IMG_HOST = "https://www.facebook.com"
META_CSP: dict[str, tuple[str, ...]] = {
    "script-src": (META_SCRIPT_HOST,),
    "img-src": (META_IMG_HOST,),
    "connect-src": (META_IMG_HOST,),
}
# Meta's standard events; anything else is sent with trackCustom.
META_STANDARD_EVENTS = frozenset({
    "AddPaymentInfo", "AddToCart", "AddToWishlist", "CompleteRegistration", "Contact",
    "CustomizeProduct", "Donate", "FindLocation", "InitiateCheckout", "Lead", "PageView",
    "Purchase", "Schedule", "Search", "StartTrial", "SubmitApplication", "Subscribe",
    "ViewContent",
})
META_BASE = (
    "!function(f,b,e,v,n,t,s){if(f.fbq)return;n=f.fbq=function(){n.callMethod?"
    "n.callMethod.apply(n,arguments):n.queue.push(arguments)};if(!f._fbq)f._fbq=n;"
    "n.push=n;n.loaded=!0;n.version='2.0';n.queue=[];t=b.createElement(e);t.async=!0;"
    "t.src=v;s=b.getElementsByTagName(e)[0];s.parentNode.insertBefore(t,s)}"
    "(window,document,'script','https://connect.facebook.net/en_US/fbevents.js');"
)


def js(value: object) -> str:
    """A JSON literal safe inside an inline <script> (no `</script>`, no `<!--`)."""
    return orjson.dumps(value).decode().replace("<", "\\u003c").replace(">", "\\u003e") \
        .replace("&", "\\u0026").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


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


TRACK_FN = (
    "careersEdge.track=function(es){es.forEach(function(e){careersEdge.events.push(e);"
    "if(e.fb&&window.fbq)fbq(e.fbm,e.fb,e.data,{eventID:e.event_id})})};"
)


def browser_events(events: Sequence[BrowserEvent], meta_names: Mapping[str, str],
                   has_meta: bool) -> list[dict[str, object]]:
    """Events as the page's script tracks them, names already mapped for Meta."""
    out: list[dict[str, object]] = []
    for ev in events:
        item: dict[str, object] = {"event": ev.name, "event_id": ev.event_id,
                                   "data": dict(ev.data)}
        if has_meta:
            name = meta_names.get(ev.name, ev.name)
            item["fb"] = name
            item["fbm"] = "track" if name in META_STANDARD_EVENTS else "trackCustom"
        out.append(item)
    return out


def tail_events(element_id: str, items: list[dict[str, object]]) -> bytes:
    """Events found after the head was sent, as inert JSON the head script reads.

    A data block is not script, so the page's CSP needs no second hash for it.
    """
    return f'<script type="application/json" id="{element_id}">{js(items)}</script>'.encode()


_PATH_CACHE = 4096       # paths whose pixel choice is remembered


class PixelSet:
    """The rules file's pixels, compiled once."""

    def __init__(self, pixels: Sequence[Pixel], sinks: Mapping[str, Sink]) -> None:
        self.pixels = tuple(pixels)
        # A plain dict, emptied when full: looked up on every page, where an LRU's
        # bookkeeping would cost more than the pattern matching it saves.
        self._cache: dict[str, tuple[Pixel, ...]] = {}
        self._statics: LRUCache[tuple[int, ...], _Static] = LRUCache(maxsize=256)
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

    def meta_names_for(self, pixels: Sequence[Pixel]) -> Mapping[str, str]:
        for p in pixels:
            if p.type == "meta" and p.pixel_id in self.meta_names:
                return self.meta_names[p.pixel_id]
        return {}

    def csp_hosts_for(self, pixels: Sequence[Pixel]) -> Mapping[str, tuple[str, ...]]:
        """What `render(pixels, …).csp_hosts` will be, before rendering."""
        return self._static_for(pixels).csp_hosts

    def render(self, pixels: Sequence[Pixel], *, page_event_id: str, links_clicked_id: str,
               events: Sequence[BrowserEvent] = ()) -> Markup:
        """Markup for one page. `events` are known now; later ones go in `tail_events`."""
        st = self._static_for(pixels)
        script = [SCRIPT_START, js(links_clicked_id), ";"]
        if st.has_meta:
            script += [st.meta_init, "fbq('track','PageView',{},{eventID:", js(page_event_id),
                       "});"]
        script.append(TRACK_FN)
        if events:
            items = browser_events(events, st.meta_names, st.has_meta)
            script.append(f"careersEdge.track({js(items)});")
        script += [DOM_READY_START, js(tail_id(page_event_id)), DOM_READY_END]
        return Markup(head_script="".join(script), head_html=st.head_html,
                      body_html=st.body_html, csp_hosts=st.csp_hosts)

    def _static_for(self, pixels: Sequence[Pixel]) -> _Static:
        """The parts of `render` that depend on the pixels alone, built once per set.

        Keyed by the pixels' identities: an entry keeps its pixels alive, so an id
        in the key cannot be reused by another object while the entry exists.
        """
        key = tuple(map(id, pixels))
        hit = self._statics.get(key)
        if hit is None:
            hit = self._statics[key] = _Static.build(tuple(pixels),
                                                     self.meta_names_for(pixels))
        return hit


# The head script's fixed text around the values `render` fills in.
SCRIPT_START = ("window.careersEdge=window.careersEdge||{events:[]};"
                "careersEdge.linksClickedId=")
DOM_READY_START = "document.addEventListener('DOMContentLoaded',function(){var d=document." \
    "getElementById("
DOM_READY_END = ");if(d)careersEdge.track(JSON.parse(d.textContent))});"


@dataclass(frozen=True, slots=True)
class _Static:
    pixels: tuple[Pixel, ...]          # held so the ids in the cache key stay theirs
    has_meta: bool
    meta_names: Mapping[str, str]
    meta_init: str                     # base code and fbq('init') per Meta pixel
    head_html: str
    body_html: str
    csp_hosts: Mapping[str, tuple[str, ...]]

    @classmethod
    def build(cls, pixels: tuple[Pixel, ...], meta_names: Mapping[str, str]) -> _Static:
        metas = [p for p in pixels if p.type == "meta" and p.pixel_id]
        head_html: list[str] = []
        body_html: list[str] = []
        hosts: dict[str, list[str]] = {}
        meta_init = ""
        if metas:
            meta_init = META_BASE + "".join(f"fbq('init',{js(p.pixel_id)});" for p in metas)
            body_html.extend(
                '<noscript><img height="1" width="1" style="display:none" alt="" '
                f'src="{META_IMG_HOST}/tr?id={escape(p.pixel_id or "")}'
                '&amp;ev=PageView&amp;noscript=1"></noscript>' for p in metas)
            for d, hs in META_CSP.items():
                hosts.setdefault(d, []).extend(hs)
        for p in pixels:
            if p.type == "html" and p.html:
                (head_html if p.position == "head" else body_html).append(p.html)
            for d, hs in p.csp.items():
                hosts.setdefault(d, []).extend(hs)
        return cls(pixels=pixels, has_meta=bool(metas), meta_names=meta_names,
                   meta_init=meta_init,
                   head_html="".join(head_html), body_html="".join(body_html),
                   csp_hosts=MappingProxyType(
                       {d: tuple(dict.fromkeys(hs)) for d, hs in hosts.items()}))


def tail_id(page_event_id: str) -> str:
    return f"ce-events-{page_event_id}"
