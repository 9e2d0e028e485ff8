"""The script every page with pixels shares: one data layer, one dispatch, requests observed.

`window.careersEdge` holds the visitor's `linksClickedId`, `events` (each event
tracked on this page, for a tag manager to read) and `handlers`: one function per
pixel network on the page (registered by `pixel_tags`), given each event item
`{event, event_id, data}` to call its own tag with the item's `event_id` under the
network's name for the event (Meta: `fbq('track', name, data, {eventID})`). A
network never sees an event twice and never watches requests itself.

`careersEdge.track(items)` is the one way an event reaches the handlers: from the
page itself (the head script, or the inert tail block read on DOMContentLoaded), or
from the `X-Careers-Edge-Events` header of a same-origin fetch or XMLHttpRequest
(proxy/handoff.py). It tracks an `event_id` once per page. Having tracked events
from a header, it lists their ids in the `ce_fired` cookie, so the carry cookie
does not bring them back on the next page.

Observing requests is transparent: the wrapped `fetch` returns a promise settling
as the original does (the same Response object, so a streamed body is untouched;
the same rejection); an XMLHttpRequest gets one `readystatechange` listener at
`send` that reads the headers once they are in. Our part runs inside `try` and
never throws into the site. Only responses from the page's own origin are read.
A site script that kept a reference to `fetch` before ours ran is not observed;
the carry cookie covers it. The script is inline and fixed text around a few
values, so the CSP's nonce or hash covers it like the rest of the head script.
"""

from __future__ import annotations

from typing import Final

from proxy.attribution.cookies import FIRED_COOKIE
from proxy.http.headers import EVENTS_HEADER

# FIRED_COOKIE: the cookie the script lists tracked ids in, read back by proxy/handoff.py.
FIRED_MAX: Final = 16              # ids it keeps
CARRY_SECONDS: Final = 300         # a carried event waits this long for a page; marks as long

_BOOTSTRAP: Final = (
    "(function(w,d,ce){"
    "ce.handlers=ce.handlers||[];ce.tracked=ce.tracked||{};"
    "ce.track=function(es){(es||[]).forEach(function(e){"
    "if(!e||!e.event_id||ce.tracked[e.event_id])return;ce.tracked[e.event_id]=1;"
    "ce.events.push(e);ce.handlers.forEach(function(h){try{h(e)}catch(x){}})})};"
    # v: the events header, u: the response's URL
    "ce.fromResponse=function(v,u){"
    "if(!v||String(u).indexOf(location.origin+'/')!==0)return;"
    "var es;try{es=JSON.parse(v)}catch(x){return}if(!Array.isArray(es))return;ce.track(es);"
    "var ok=function(i){return /^[\\w-]{1,64}$/.test(i)},"
    "m=d.cookie.match(/(?:^|;\\s*)@FIRED@=([^;]*)/),ids=(m?m[1].split('.'):[]).filter(ok);"
    "es.forEach(function(e){if(e&&ok(e.event_id)&&ids.indexOf(e.event_id)<0)"
    "ids.push(e.event_id)});"
    "d.cookie='@FIRED@='+ids.slice(-@MAX@).join('.')+';Max-Age=@AGE@;Path=/;SameSite=Lax'"
    "+(location.protocol==='https:'?';Secure':'')};"
    "if(ce.observing)return;ce.observing=1;"
    "var H='@HEADER@',f=w.fetch,X=w.XMLHttpRequest;"
    "if(typeof f==='function')w.fetch=function(){var p=f.apply(this,arguments);"
    "return p&&typeof p.then==='function'?p.then(function(r){"
    "try{ce.fromResponse(r.headers.get(H),r.url)}catch(x){}return r}):p};"
    "if(X&&X.prototype&&typeof X.prototype.send==='function'){var s=X.prototype.send;"
    "X.prototype.send=function(){var x=this,n=0;"
    "try{x.addEventListener('readystatechange',function(){if(!n&&x.readyState>1){n=1;"
    "try{ce.fromResponse(x.getResponseHeader(H),x.responseURL)}catch(e){}}})}catch(e){}"
    "return s.apply(this,arguments)}}"
    "})(window,document,careersEdge);"
)
BOOTSTRAP: Final = (_BOOTSTRAP.replace("@FIRED@", FIRED_COOKIE).replace("@MAX@", str(FIRED_MAX))
                    .replace("@AGE@", str(CARRY_SECONDS)).replace("@HEADER@", EVENTS_HEADER))

