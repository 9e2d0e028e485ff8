"""The demo site's JSON API behind "Quick apply", as single-page ATS front ends have it.

`POST /api/jobs/{job_id}/applications` takes JSON `{"name", "email"}` (or a plain
form post, when the page's script did not run) and answers JSON, 200 either way:
`{"ok": true, "application": {"ref"}, "job": {"id", "title"}}` when the application
is accepted, `{"ok": false, "errors": [...]}` when it is not. Only `ok` tells a
success from a failure — the case rules on JSON answers are for.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web

from proxy.demo.jobs import Job, job_by_id

MAX_VALUE = 1024                # characters of a name or e-mail address kept

Record = Callable[[web.Request, Job, str, str], str]    # stores one; returns its ref
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def quick_apply_handler(record: Record) -> Handler:
    async def quick_apply(request: web.Request) -> web.StreamResponse:
        job = job_by_id(request.match_info["job_id"])
        if job is None:
            raise web.HTTPNotFound()
        fields: object
        if request.content_type == "application/json":
            try:
                fields = await request.json()
            except ValueError:
                return answer(request, {"ok": False, "errors": ["The request is not JSON."]},
                              status=400)
        elif request.content_type == "application/x-www-form-urlencoded":
            fields = dict(await request.post())
        else:
            raise web.HTTPUnsupportedMediaType()
        name, email = (_text(fields, k) for k in ("name", "email"))
        errors = [f"Please enter your {what}." for what, value in
                  (("name", name), ("e-mail address", email)) if not value]
        if email and "@" not in email:
            errors.append("Please enter a valid e-mail address.")
        if errors:
            return answer(request, {"ok": False, "errors": errors})
        ref = record(request, job, name, email)
        return answer(request, {"ok": True, "application": {"ref": ref},
                                "job": {"id": job.id, "title": job.title}})

    return quick_apply


def _text(fields: object, key: str) -> str:
    value = fields.get(key) if isinstance(fields, dict) else None
    return value.strip()[:MAX_VALUE] if isinstance(value, str) else ""


def answer(request: web.Request, doc: dict[str, object], *, status: int = 200) -> web.Response:
    """JSON, never cached, compressed when the client takes it (as the pages are)."""
    resp = web.json_response(doc, status=status, headers={hdrs.CACHE_CONTROL: "no-store"})
    resp.enable_compression()
    return resp
