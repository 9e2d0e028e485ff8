"""Streaming HTML transform: codecs, link rewriting, snippet injection, CSP, headers.

Pure stages (no I/O). The request path uses `headers.should_transform`, then
`csp.apply_csp` and `headers.transformed_headers` on the response head, and an
`html.HtmlTransform` on the body.
"""
