"""HTML and XML templates of the demo careers site ("Acme Careers").

Pure functions from values to text; `site.py` owns the HTTP side. The pages look
like a hosted ATS's: absolute links to the site's own origin, a nonce'd inline
script under a strict CSP, JSON-LD on job pages, a stylesheet under /static, and on
each job page a "Quick apply" form that the page's own script sends to the site's
JSON API with fetch.
"""

from __future__ import annotations

import json
from html import escape

from proxy.demo.jobs import COMPANY, COMPANY_URL, JOBS, Job, job_posting

SITE_NAME = "Acme Careers"

STYLESHEET = """\
:root { --ink: #1d2433; --muted: #5b6478; --brand: #0b5fff; --line: #e3e7ef; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.55 system-ui, -apple-system, "Segoe UI", sans-serif;
       color: var(--ink); background: #f7f8fb; }
a { color: var(--brand); text-decoration: none; }
a:hover { text-decoration: underline; }
.topbar { background: #fff; border-bottom: 1px solid var(--line); }
.topbar .inner, main, .footer .inner { max-width: 960px; margin: 0 auto; padding: 0 20px; }
.topbar .inner { display: flex; align-items: center; gap: 24px; height: 64px; }
.brand { display: flex; align-items: center; gap: 10px; font-weight: 700; color: var(--ink); }
.nav { display: flex; gap: 18px; margin-left: auto; }
main { padding: 32px 20px 48px; }
h1 { font-size: 2rem; margin: 0 0 8px; }
.meta { color: var(--muted); margin: 0 0 24px; }
.jobs { list-style: none; padding: 0; margin: 0; display: grid; gap: 12px; }
.job-card { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 18px; }
.job-card h2 { font-size: 1.15rem; margin: 0 0 4px; }
.pill { display: inline-block; padding: 2px 10px; border-radius: 999px; background: #eef3ff;
        color: var(--brand); font-size: .85rem; margin-right: 6px; }
.btn { display: inline-block; background: var(--brand); color: #fff; border: 0;
       padding: 10px 18px; border-radius: 8px; font-weight: 600; cursor: pointer; }
.btn:hover { text-decoration: none; filter: brightness(1.1); }
form.apply { background: #fff; border: 1px solid var(--line); border-radius: 10px;
             padding: 24px; display: grid; gap: 16px; max-width: 560px; }
form.apply label { display: grid; gap: 6px; font-weight: 600; }
form.apply input { font: inherit; padding: 8px 10px; border: 1px solid var(--line);
                   border-radius: 6px; }
.quick-apply { margin-top: 32px; }
#quick-apply-status:empty { display: none; }
.error { background: #fff1f0; border: 1px solid #ffccc7; padding: 10px 14px; border-radius: 8px; }
.footer { border-top: 1px solid var(--line); background: #fff; color: var(--muted);
          font-size: .9rem; padding: 28px 0; }
.footer .cols { display: grid; grid-template-columns: repeat(3, 1fr); gap: 20px; }
.footer ul { list-style: none; padding: 0; margin: 0; }
"""

_LOGO = (
    '<svg width="28" height="28" viewBox="0 0 28 28" aria-hidden="true">'
    '<rect width="28" height="28" rx="6" fill="#0b5fff"/>'
    '<path d="M8 20 L14 7 L20 20 M10.5 15 H17.5" stroke="#fff" stroke-width="2.4" '
    'fill="none" stroke-linecap="round"/></svg>'
)


def _site_script(nonce: str) -> str:
    # Visible proof that the site's own inline script still runs behind the proxy.
    return (
        f'<script nonce="{escape(nonce)}">'
        'document.addEventListener("DOMContentLoaded", function () {'
        ' document.body.dataset.siteScript = "ran"; });</script>'
    )


def layout(base_url: str, title: str, body: str, nonce: str,
           canonical: str | None = None, head_extra: str = "") -> str:
    """A full page: head (meta, stylesheet, nonce'd script), top bar, body, footer."""
    canon = f'<link rel="canonical" href="{escape(canonical)}">\n' if canonical else ""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} | {SITE_NAME}</title>
<!-- Acme ATS theme 4.2: tracking snippets belong just before </head> -->
<meta name="description" content="Open positions at {COMPANY}. Apply online in minutes.">
<meta name="generator" content="Acme Hosted ATS">
{canon}<link rel="stylesheet" href="{base_url}/static/site.css">
{_site_script(nonce)}
{head_extra}</head>
<body>
<header class="topbar"><div class="inner">
<a class="brand" href="{base_url}/jobs">{_LOGO}<span>{SITE_NAME}</span></a>
<nav class="nav" aria-label="Main">
<a href="{base_url}/jobs">Open positions</a>
<a href="{base_url}/jobs#teams">Teams</a>
<a href="{base_url}/jobs#benefits">Benefits</a>
<a href="{COMPANY_URL}">{COMPANY}</a>
</nav></div></header>
<main id="content">
{body}
</main>
<footer class="footer"><div class="inner"><div class="cols">
<section><h4>{COMPANY}</h4><p>We move parcels for 40,000 businesses across North America
and Europe. Equal opportunity employer: every qualified applicant is considered without
regard to race, colour, religion, sex, sexual orientation, gender identity, national
origin, disability or veteran status.</p></section>
<section><h4>Candidates</h4><ul>
<li><a href="{base_url}/jobs">All jobs</a></li>
<li><a href="{base_url}/sitemap.xml">Sitemap</a></li>
<li><a href="{COMPANY_URL}/privacy">Privacy notice</a></li>
<li><a href="{COMPANY_URL}/accessibility">Accessibility</a></li></ul></section>
<section><h4>Follow us</h4><ul>
<li><a href="https://www.linkedin.com/company/acme-demo">LinkedIn</a></li>
<li><a href="https://www.instagram.com/acme-demo">Instagram</a></li>
</ul><p>&copy; {COMPANY}. Powered by Acme Hosted ATS.</p></section>
</div></div></footer>
</body>
</html>
"""



def _pills(job: Job) -> str:
    return (f'<span class="pill">{escape(job.department)}</span>'
            f'<span class="pill">{escape(job.employment_text)}</span>')


def job_list_page(base_url: str, nonce: str) -> str:
    cards = "\n".join(
        f'<li class="job-card"><h2><a href="{base_url}/jobs/{job.id}">{escape(job.title)}'
        f'</a></h2><p class="meta">{escape(job.location)} · {escape(job.salary_text)}</p>'
        f'{_pills(job)}<p>{escape(job.summary)}</p></li>'
        for job in JOBS
    )
    body = (
        f"<h1>Open positions</h1>\n<p class=\"meta\">{len(JOBS)} jobs at {COMPANY}</p>\n"
        f'<ul class="jobs">\n{cards}\n</ul>\n'
        '<h2 id="teams">Our teams</h2><p>Engineering, Operations, Logistics, Design, '
        'Customer Success, Finance and People work side by side in five countries.</p>\n'
        f'<h2 id="benefits">Benefits</h2><p>{escape("Health cover, 30 days of leave, ")}'
        "a learning budget and a parcel-shipping discount for friends and family.</p>"
    )
    return layout(base_url, "Open positions", body, nonce, canonical=f"{base_url}/jobs")


def _json_ld(data: dict) -> str:
    # "</" must not appear inside a <script> element: JSON allows "<\/" for it.
    text = json.dumps(data, ensure_ascii=False, indent=2).replace("</", "<\\/")
    return f'<script type="application/ld+json">\n{text}\n</script>\n'


def job_page(base_url: str, job: Job, nonce: str) -> str:
    others = "".join(
        f'<li><a href="{base_url}/jobs/{o.id}">{escape(o.title)}</a></li>'
        for o in JOBS if o.id != job.id
    )
    body = f"""<p><a href="{base_url}/jobs">&larr; All jobs</a></p>
<article class="job">
<h1>{escape(job.title)}</h1>
<p class="meta">{escape(job.location)} · {escape(job.salary_text)} · posted {job.date_posted}</p>
{_pills(job)}
<div class="description">{job.description_html}</div>
<p><a class="btn" href="{base_url}/jobs/{job.id}/apply">Apply now</a></p>
</article>
{_quick_apply(base_url, job)}
<aside><h2>More jobs</h2><ul>{others}</ul></aside>"""
    url = f"{base_url}/jobs/{job.id}"
    return layout(base_url, job.title, body, nonce, canonical=url,
                  head_extra=_json_ld(job_posting(job, base_url)) + _quick_apply_script(nonce))


def _quick_apply(base_url: str, job: Job) -> str:
    # No `required`: the site's API checks the fields and answers with its errors.
    return f"""<section class="quick-apply"><h2>Quick apply</h2>
<form class="apply" id="quick-apply" method="post" novalidate
      action="{base_url}/api/jobs/{job.id}/applications">
<label>Full name <input name="name" autocomplete="name"></label>
<label>Email <input type="email" name="email" autocomplete="email"></label>
<button class="btn" type="submit">Quick apply</button>
<p id="quick-apply-status" role="status"></p>
</form></section>"""


def _quick_apply_script(nonce: str) -> str:
    """The single-page way: the form goes to the site's API as JSON over fetch, and the
    page shows the answer without leaving (without JavaScript the form posts as usual)."""
    return (
        f'<script nonce="{escape(nonce)}">'
        'document.addEventListener("DOMContentLoaded", function () {'
        ' var form = document.getElementById("quick-apply");'
        ' if (!form) return;'
        ' var status = document.getElementById("quick-apply-status");'
        ' form.addEventListener("submit", function (ev) {'
        '  ev.preventDefault();'
        '  var f = form.elements;'
        '  fetch(form.action, {method: "POST", headers: {"Content-Type": "application/json",'
        '    "Accept": "application/json"},'
        '    body: JSON.stringify({name: f.namedItem("name").value,'
        '                          email: f.namedItem("email").value})})'
        '   .then(function (r) { return r.json(); })'
        '   .then(function (doc) {'
        '     status.dataset.result = doc.ok ? "accepted" : "rejected";'
        '     status.textContent = doc.ok ? "Thank you! Your application " +'
        '       doc.application.ref + " has been received." : doc.errors.join(" ");'
        '   }, function () {'
        '     status.dataset.result = "error";'
        '     status.textContent = "Something went wrong. Please try again.";'
        '   });'
        ' });'
        '});</script>\n'
    )


def apply_page(base_url: str, job: Job, nonce: str, error: str | None = None) -> str:
    err = f'<p class="error" role="alert">{escape(error)}</p>\n' if error else ""
    body = f"""<p><a href="{base_url}/jobs/{job.id}">&larr; Back to the job</a></p>
<h1>{escape(job.title)}</h1>
<p class="meta">Apply for this position · {escape(job.location)}</p>
{err}<form class="apply" method="post" enctype="multipart/form-data"
      action="{base_url}/jobs/{job.id}/apply">
<input type="hidden" name="job_title" value="{escape(job.title)}">
<label>Full name <input name="name" required autocomplete="name"></label>
<label>Email <input type="email" name="email" required autocomplete="email"></label>
<label>Résumé (PDF or Word) <input type="file" name="resume" accept=".pdf,.doc,.docx"></label>
<p class="meta">By applying you agree to our privacy notice. We keep applications for
six months.</p>
<button class="btn" type="submit">Submit application</button>
</form>"""
    return layout(base_url, f"Apply: {job.title}", body, nonce)


def thanks_page(base_url: str, job: Job, name: str | None, nonce: str) -> str:
    who = f", {escape(name)}" if name else ""
    body = f"""<h1>Thank you{who}!</h1>
<p>Your application for <strong>{escape(job.title)}</strong> has been received.
Our recruiting team reviews every application and will be in touch within ten days.</p>
<p><a href="{base_url}/jobs">See other open positions</a></p>"""
    return layout(base_url, "Application received", body, nonce)


def not_found_page(base_url: str, nonce: str) -> str:
    body = (f"<h1>Page not found</h1><p>This position may have been filled. "
            f'<a href="{base_url}/jobs">See all open positions</a>.</p>')
    return layout(base_url, "Not found", body, nonce)


def sitemap(base_url: str) -> str:
    urls = [f"  <url><loc>{base_url}/jobs</loc><changefreq>daily</changefreq></url>"]
    urls += [
        f"  <url><loc>{base_url}/jobs/{job.id}</loc><lastmod>{job.date_posted}</lastmod></url>"
        for job in JOBS
    ]
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
            + "\n".join(urls) + "\n</urlset>\n")
