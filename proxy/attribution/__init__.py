"""Attribution: click ids from landing URLs, the visitor id, signed cookies, consent,
Meta's _fbc/_fbp, and the journey store that outlives the cookies.

The request path calls `visit.Attribution.on_request(...)` (pure) and hands the
`Visit` to `journeys.JourneyStore.record` (memory only; written behind in batches).
The package imports none of its modules itself: the outbox's writer process
imports `journey_rows` alone.
"""
