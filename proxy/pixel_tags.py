"""Each network's browser tag: base code, the function it registers to track an event,
its noscript image and the CSP hosts it needs.

The page's script (see `pixels.py`) keeps `careersEdge.handlers`, a list of functions
`h(e)` with `e = {event, event_id, data}` (our event name, the id the server-side
send also carries, `data.linksClickedId` / `data.jobName`). `careersEdge.track(es)`
calls every handler once per event id, so anything that learns of an
event in the browser (the head script, the end-of-page data block, a fetch/XHR
completion) tracks it on every pixel by calling `careersEdge.track([e])`. Each
function maps our event name to the network's own (`event_names`, `conversion_ids`,
`send_to`) and skips events the network is not told about.

Base codes follow each network's documented snippet; all load their library from
the network's host by inserting a `<script async>` (allowed by the hosts each
declares, or by `'strict-dynamic'` with the page's nonce).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

import orjson

from proxy.config.model import Pixel
from proxy.conversions.sinks.tiktok import DEFAULT_EVENT_NAMES as TIKTOK_EVENT_NAMES


def js(value: object) -> str:
    """A JSON literal safe inside an inline <script> (no `</script>`, no `<!--`)."""
    return orjson.dumps(value).decode().replace("<", "\\u003c").replace(">", "\\u003e") \
        .replace("&", "\\u0026").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _handler(body: str) -> str:
    """A pixel's hook into `careersEdge.track`: `body` runs with the event item `e`."""
    return "careersEdge.handlers.push(function(e){" + body + "});"


Csp = Mapping[str, tuple[str, ...]]

# --- Meta --------------------------------------------------------------------------

META_SCRIPT_HOST = "https://connect.facebook.net"
META_IMG_HOST = "https://www.facebook.com"
META_CSP: Csp = {
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


def meta_init(pixels: Sequence[Pixel], names: Mapping[str, str]) -> str:
    """Base code, `fbq('init')` per pixel, and the tracker (PageView is per page)."""
    inits = "".join(f"fbq('init',{js(p.pixel_id)});" for p in pixels)
    return META_BASE + inits + _handler(
        f"var n={js(dict(names))}[e.event]||e.event;"
        f"fbq({js(sorted(META_STANDARD_EVENTS))}.indexOf(n)<0?'trackCustom':'track',n,"
        "e.data||{},{eventID:e.event_id})")


def meta_noscript(p: Pixel) -> str:
    return ('<noscript><img height="1" width="1" hidden alt="" '
            f'src="{META_IMG_HOST}/tr?id={escape(p.pixel_id or "")}'
            '&amp;ev=PageView&amp;noscript=1"></noscript>')


# --- TikTok ------------------------------------------------------------------------

TIKTOK_HOST = "https://analytics.tiktok.com"
TIKTOK_CSP: Csp = {"script-src": (TIKTOK_HOST,), "connect-src": (TIKTOK_HOST,),
                   "img-src": (TIKTOK_HOST,)}
# The queue the TikTok SDK (events.js) takes over when it loads: calls made before
# are kept per method, `_i[code]` is each pixel's own queue.
TIKTOK_BASE = (
    "(function(w,d,t){w.TiktokAnalyticsObject=t;var q=w[t]=w[t]||[];"
    "q.methods=['page','track','identify','instances','debug','on','off','once','ready',"
    "'alias','group','enableCookie','disableCookie','holdConsent','revokeConsent',"
    "'grantConsent'];"
    "q.setAndDefer=function(o,m){o[m]=function(){o.push([m].concat("
    "Array.prototype.slice.call(arguments,0)))}};"
    "for(var i=0;i<q.methods.length;i++)q.setAndDefer(q,q.methods[i]);"
    "q.instance=function(c){for(var o=q._i[c]||[],k=0;k<q.methods.length;k++)"
    "q.setAndDefer(o,q.methods[k]);return o};"
    "q.load=function(c,opt){var u='" + TIKTOK_HOST + "/i18n/pixel/events.js';"
    "q._i=q._i||{};q._i[c]=[];q._i[c]._u=u;q._t=q._t||{};q._t[c]=+new Date;"
    "q._o=q._o||{};q._o[c]=opt||{};var s=d.createElement('script');s.async=!0;"
    "s.src=u+'?sdkid='+c+'&lib='+t;var f=d.getElementsByTagName('script')[0];"
    "f.parentNode.insertBefore(s,f)}})(window,document,'ttq');"
)


def tiktok_init(pixels: Sequence[Pixel]) -> str:
    """`ttq.load` and `ttq.page()` per pixel code, and one tracker per pixel."""
    out = [TIKTOK_BASE]
    for p in pixels:
        code = js(p.pixel_code)
        # One pixel: ttq.track as TikTok documents; several: each its own instance,
        # so a pixel's events go to it alone under its own names. The default names are
        # the tiktok sink's: TikTok pairs the browser and server events by name and id.
        target = "ttq" if len(pixels) == 1 else f"ttq.instance({code})"
        names = {**TIKTOK_EVENT_NAMES, **p.event_names}
        out.append(f"ttq.load({code});{target}.page();" + _handler(
            f"var d=e.data||{{}};{target}.track({js(names)}[e.event]||e.event,"
            "d.jobName?{content_name:d.jobName}:{},{event_id:e.event_id})"))
    return "".join(out)


# --- LinkedIn ----------------------------------------------------------------------

LINKEDIN_SCRIPT_HOST = "https://snap.licdn.com"
LINKEDIN_PX_HOST = "https://px.ads.linkedin.com"
LINKEDIN_CSP: Csp = {
    "script-src": (LINKEDIN_SCRIPT_HOST,),
    "img-src": (LINKEDIN_PX_HOST, "https://www.linkedin.com"),
    "connect-src": (LINKEDIN_PX_HOST, "https://www.linkedin.com"),
}
LINKEDIN_LOADER = (
    "(function(l){if(!l){window.lintrk=function(a,b){window.lintrk.q.push([a,b])};"
    "window.lintrk.q=[]}var s=document.getElementsByTagName('script')[0],"
    "b=document.createElement('script');b.async=true;"
    "b.src='" + LINKEDIN_SCRIPT_HOST + "/li.lms-analytics/insight.min.js';"
    "s.parentNode.insertBefore(b,s)})(window.lintrk);"
)


def linkedin_init(pixels: Sequence[Pixel]) -> str:
    """The Insight Tag: partner ids, the loader once, and conversions by id."""
    ids = [p.partner_id for p in pixels]
    conversions: dict[str, list[int]] = {}
    for p in pixels:
        for event, cid in p.conversion_ids.items():
            conversions.setdefault(event, []).append(int(cid))
    return (f"window._linkedin_partner_id={js(ids[0])};(function(w){{"
            "var l=w._linkedin_data_partner_ids=w._linkedin_data_partner_ids||[];"
            f"{js(ids)}.forEach(function(i){{if(l.indexOf(i)<0)l.push(i)}})}})(window);"
            + LINKEDIN_LOADER
            + _handler(f"({js(conversions)}[e.event]||[]).forEach(function(c){{"
                        "window.lintrk('track',{conversion_id:c,event_id:e.event_id})})"))


def linkedin_noscript(p: Pixel) -> str:
    return ('<noscript><img height="1" width="1" hidden alt="" '
            f'src="{LINKEDIN_PX_HOST}/collect/?pid={escape(p.partner_id or "")}'
            '&amp;fmt=gif"></noscript>')


# --- Google (gtag.js, Google Ads) ----------------------------------------------------

GTAG_HOST = "https://www.googletagmanager.com"
GOOGLE_CSP: Csp = {
    "script-src": (GTAG_HOST, "https://www.googleadservices.com",
                   "https://googleads.g.doubleclick.net", "https://www.google.com"),
    "img-src": (GTAG_HOST, "https://www.googleadservices.com",
                "https://googleads.g.doubleclick.net", "https://www.google.com"),
    "connect-src": (GTAG_HOST, "https://www.googleadservices.com",
                    "https://googleads.g.doubleclick.net", "https://www.google.com",
                    "https://pagead2.googlesyndication.com"),
    "frame-src": (GTAG_HOST, "https://td.doubleclick.net"),
}
GTAG_DEFINE = ("window.dataLayer=window.dataLayer||[];"
               "window.gtag=window.gtag||function(){dataLayer.push(arguments)};")


def google_consent(consent_mode: Mapping[str, str]) -> str:
    """Consent Mode v2 `default` from the visitor's consent, before any `config`."""
    values = {k: v.lower() for k, v in consent_mode.items()}
    return GTAG_DEFINE + f"gtag('consent','default',{js(values)});"


def google_init(pixels: Sequence[Pixel]) -> str:
    """gtag.js loaded once, `config` per tag id, conversions by `send_to`."""
    send_to: dict[str, list[str]] = {}
    for p in pixels:
        for event, target in p.send_to.items():
            send_to.setdefault(event, []).append(target)
    loader = (f"(function(d){{var s=d.createElement('script');s.async=!0;"
              f"s.src={js(GTAG_HOST + '/gtag/js?id=' + (pixels[0].tag_id or ''))};"
              "var f=d.getElementsByTagName('script')[0];f.parentNode.insertBefore(s,f)})"
              "(document);")
    configs = "".join(f"gtag('config',{js(p.tag_id)});" for p in pixels)
    return (GTAG_DEFINE + loader + "gtag('js',new Date());" + configs
            + _handler(f"({js(send_to)}[e.event]||[]).forEach(function(s){{"
                        "gtag('event','conversion',{send_to:s,transaction_id:e.event_id})})"))


NETWORK_CSP: Mapping[str, Csp] = {"meta": META_CSP, "tiktok": TIKTOK_CSP,
                                  "linkedin": LINKEDIN_CSP, "google": GOOGLE_CSP}
