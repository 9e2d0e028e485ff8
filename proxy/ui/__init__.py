"""The operators' UI: static HTML, CSS and JavaScript served by `endpoints/ui.py`.

No framework and no external asset: `main.js` routes between the views (live,
journey, sinks, rules, funnel), `api.js` speaks to `{prefix}/api/` with the admin
token, `charts.js` draws inline SVG.
"""
