"""The shipped rules files: each loads, passes `check`, and fires where its comments say.

Every `${VAR}` a file's values name is given a dummy value (an https URL for names ending
_URL / UPSTREAM / _RECORDER, digits for a pixel id, a token otherwise), so a file
that needs a variable its header does not mention still fails here. Each ATS file
is then dry-run with `explain` against the URL shapes its comments claim: the
submit must fire ApplicationCompleted, and look-alikes (a failed submit, another
company's board on the same ATS host) must not.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from proxy.config.load import load_config
from proxy.explain import explain

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "rules"
ALL_FILES = sorted(RULES.glob("*.toml"))
PUBLIC = "https://careers.acme.example"
COMPANY = "acme"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_URL_SUFFIXES = ("_URL", "UPSTREAM", "_RECORDER")


def env_for(path: Path, **given: str) -> dict[str, str]:
    """A value for every `${VAR}` in the file: `given` first, else a dummy of the right shape."""
    env = {}
    for name in sorted(variables(path)):
        if name in given:
            env[name] = given[name]
        elif name.endswith(_URL_SUFFIXES):
            env[name] = f"https://{name.lower().replace('_', '-')}.example"
        elif name.endswith("PIXEL_ID"):
            env[name] = "123456789012345"
        else:
            env[name] = f"{name.lower()}-value"
    return env


def variables(path: Path) -> set[str]:
    """The `${VAR}` names in the file's values (comments may mention others)."""
    found: set[str] = set()

    def walk(value: object) -> None:
        if isinstance(value, str):
            found.update(_VAR.findall(value))
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(tomllib.loads(path.read_text(encoding="utf-8")))
    return found


def fired(report: str) -> list[tuple[str, str]]:
    """(rule name, event) of every rule the explain report says fires."""
    return re.findall(r"^\s+FIRES\s+'([^']+)' → (\w+)$", report, re.MULTILINE)


@dataclass(frozen=True)
class Ats:
    file: str
    upstream: str
    company_var: str
    company: str = COMPANY


ATS = {
    "greenhouse": Ats("greenhouse.toml", "https://job-boards.greenhouse.io", "GREENHOUSE_BOARD"),
    "lever": Ats("lever.toml", "https://jobs.lever.co", "LEVER_COMPANY"),
    "workable": Ats("workable.toml", "https://apply.workable.com", "WORKABLE_ACCOUNT"),
    "smartrecruiters": Ats("smartrecruiters.toml", "https://jobs.smartrecruiters.com",
                           "SMARTRECRUITERS_COMPANY", "Acme"),
}


def ats_env(ats: Ats) -> dict[str, str]:
    return env_for(RULES / ats.file, ATS_UPSTREAM=ats.upstream,
                   **{ats.company_var: ats.company})


@pytest.fixture(scope="module", params=sorted(ATS))
def ats(request) -> Ats:
    return ATS[request.param]


def load(ats: Ats):
    return load_config(RULES / ats.file, env=ats_env(ats))


# --- every file ------------------------------------------------------------------


def test_there_is_a_file_per_ats() -> None:
    names = {p.name for p in ALL_FILES}
    assert {a.file for a in ATS.values()} <= names
    assert {"example.toml", "demo.toml", "ashby.toml", "workday.toml", "pinpoint.toml"} <= names


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.name)
def test_every_file_loads_and_counts_applications(path: Path) -> None:
    config = load_config(path, env=env_for(path))
    completed = [r for r in config.rules if r.event == "ApplicationCompleted"]
    assert completed, f"{path.name} has no ApplicationCompleted rule"
    # every rule's sinks exist (a rule sending nowhere would count silently)
    for rule in config.rules:
        assert rule.send_to and set(rule.send_to) <= set(config.sinks), rule.name


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.name)
def test_every_file_needs_each_of_its_variables(path: Path) -> None:
    """No secret is written into a file: leaving out any variable is refused or warned."""
    from proxy.config.errors import ConfigErrors

    env = env_for(path)
    for name in env:
        partial = {k: v for k, v in env.items() if k != name}
        warnings: list = []
        try:
            load_config(path, env=partial, allow_missing_upstream=True, warnings=warnings)
        except ConfigErrors as e:
            assert name in str(e)
            continue
        assert any(name in str(w) for w in warnings), f"{path.name}: ${{{name}}} unused?"


@pytest.mark.parametrize("name", sorted(ATS))
def test_check_command_accepts_each_ats_file(name: str) -> None:
    ats = ATS[name]
    env = {**os.environ, **ats_env(ats)}
    env.pop("CAREERS_EDGE_UPSTREAM", None)
    done = subprocess.run([sys.executable, "-m", "proxy", "check", "-c", str(RULES / ats.file)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "valid" in done.stdout
    assert ats.upstream in done.stdout


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.name)
def test_check_command_accepts_every_file(path: Path) -> None:
    """`careers-edge check` itself, as DevOps run it, on every shipped file."""
    env = {**os.environ, **env_for(path)}
    env.pop("CAREERS_EDGE_UPSTREAM", None)
    done = subprocess.run([sys.executable, "-m", "proxy", "check", "-c", str(path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"{path}: valid")


def test_check_command_refuses_an_ats_file_without_its_secrets() -> None:
    ats = ATS["lever"]
    env = {**os.environ, **ats_env(ats)}
    del env["META_ACCESS_TOKEN"]
    done = subprocess.run([sys.executable, "-m", "proxy", "check", "-c", str(RULES / ats.file)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "META_ACCESS_TOKEN" in done.stdout + done.stderr


# --- each ATS: the submit fires, look-alikes do not --------------------------------

LEVER_ID = "5f2b8c1e-3d4a-4b6f-9e21-7a0c4d8e1f3b"
SR_UUID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
SR_CID = "5f0c1a2b3c4d5e6f7a8b9c0d"

# (method, public path, status, Location as the ATS sends it or None, expected job_id)
SUBMITS = {
    "greenhouse": ("POST", "/acme/jobs/4012345", 302,
                   "https://job-boards.greenhouse.io/acme/jobs/4012345/confirmation", "4012345"),
    "lever": ("POST", f"/acme/{LEVER_ID}/apply", 302,
              f"https://jobs.lever.co/acme/{LEVER_ID}/thanks", LEVER_ID),
    "workable": ("POST", "/api/v1/jobs/A1B2C3D4E5/apply", 201, None, "A1B2C3D4E5"),
    "smartrecruiters": ("POST", f"/oneclick-ui/api/company/{SR_CID}/publication/{SR_UUID}/apply",
                        201, None, SR_UUID),
}

# Confirmation pages and form views (GET, status 200): (path, event, job_id)
PAGES = {
    "greenhouse": [("/acme/jobs/4012345", "ConversationStart", "4012345"),
                   ("/acme/jobs/4012345/confirmation", "ApplicationCompleted", "4012345"),
                   ("/embed/job_app/confirmation?for=acme&token=4012345",
                    "ApplicationCompleted", "4012345")],
    "lever": [(f"/acme/{LEVER_ID}/apply", "ConversationStart", LEVER_ID),
              (f"/acme/{LEVER_ID}/thanks", "ApplicationCompleted", LEVER_ID)],
    "workable": [("/api/v1/jobs/A1B2C3D4E5/form", "ConversationStart", "A1B2C3D4E5")],
    "smartrecruiters": [(f"/oneclick-ui/company/Acme/publication/{SR_UUID}?dcr_ci=Acme",
                         "ConversationStart", SR_UUID)],
}

# Requests that must fire nothing: (method, path, status, Location)
QUIET = {
    "greenhouse": [("POST", "/acme/jobs/4012345", 200, None),            # form shown again
                   ("POST", "/otherco/jobs/4012345", 302,
                    "https://job-boards.greenhouse.io/otherco/jobs/4012345/confirmation"),
                   ("GET", "/otherco/jobs/4012345/confirmation", 200, None),
                   ("GET", "/acme", 200, None)],
    "lever": [("POST", f"/acme/{LEVER_ID}/apply", 200, None),
              ("POST", f"/acme/{LEVER_ID}/apply", 302, "https://jobs.lever.co/acme"),
              ("POST", f"/otherco/{LEVER_ID}/apply", 302,
               f"https://jobs.lever.co/otherco/{LEVER_ID}/thanks"),
              ("POST", "/parseResume", 200, None),
              ("GET", f"/acme/{LEVER_ID}", 200, None)],
    "workable": [("POST", "/api/v1/jobs/A1B2C3D4E5/apply", 422, None),   # errors in the form
                 ("POST", "/api/v1/jobs/A1B2C3D4E5/apply", 409, None),   # bot check refused
                 ("GET", "/acme/j/A1B2C3D4E5/", 200, None)],
    "smartrecruiters": [("POST", f"/oneclick-ui/api/company/{SR_CID}/attachment/resume", 200, None),
                        ("POST", f"/oneclick-ui/api/company/{SR_CID}/publication/{SR_UUID}/apply",
                         403, None),
                        ("GET", f"/oneclick-ui/api/company/{SR_CID}/publication/{SR_UUID}/config",
                         200, None),
                        ("GET", f"/oneclick-ui/company/Other/publication/{SR_UUID}", 200, None)],
}


def test_the_submit_fires_application_completed(ats: Ats) -> None:
    name = ats.file.removesuffix(".toml")
    method, path, status, location, job_id = SUBMITS[name]
    report = explain(load(ats), method, PUBLIC + path, status=status, location=location)
    events = [event for _, event in fired(report)]
    assert events == ["ApplicationCompleted"], report
    assert re.search(rf"^\s+job_id = {re.escape(job_id)}$", report, re.MULTILINE), report
    # every sink the rule names is reached (or skipped for a missing click id), none undefined
    assert "undefined sink" not in report
    for sink in ("talroo", "meta", "appcast", "webhook"):
        assert re.search(rf"^  {sink} \(\w+\): ", report, re.MULTILINE), report


def test_pages_fire_their_events(ats: Ats) -> None:
    config = load(ats)
    for path, event, job_id in PAGES[ats.file.removesuffix(".toml")]:
        report = explain(config, "GET", PUBLIC + path, status=200)
        assert [e for _, e in fired(report)] == [event], report
        assert re.search(rf"^\s+job_id = {re.escape(job_id)}$", report, re.MULTILINE), report


def test_look_alikes_fire_nothing(ats: Ats) -> None:
    config = load(ats)
    for method, path, status, location in QUIET[ats.file.removesuffix(".toml")]:
        report = explain(config, method, PUBLIC + path, status=status, location=location)
        assert fired(report) == [], f"{method} {path} {status}:\n{report}"


def test_lever_reads_the_job_title_from_the_apply_page(tmp_path: Path) -> None:
    page = ('<html><head><title>Acme - Senior Engineer</title></head><body>'
            '<div class="posting-header"><div class="posting-headline"><h2>Senior Engineer</h2>'
            '<div class="posting-categories">Berlin</div></div></div><form></form></body></html>')
    report = explain(load(ATS["lever"]), "GET", f"{PUBLIC}/acme/{LEVER_ID}/apply", status=200,
                     body=page.encode())
    assert "job_name = Senior Engineer" in report, report


def test_greenhouse_reads_the_job_title_from_the_job_page() -> None:
    page = ('<html><body><div class="job__title"><h1 class="section-header">Data Analyst</h1>'
            '</div><form id="application-form"></form></body></html>')
    report = explain(load(ATS["greenhouse"]), "GET", f"{PUBLIC}/acme/jobs/4012345", status=200,
                     body=page.encode())
    assert "job_name = Data Analyst" in report, report


def test_pixels_go_on_the_companys_own_pages_only(ats: Ats) -> None:
    config = load(ats)
    own = {"greenhouse": "/acme/jobs/1", "lever": f"/acme/{LEVER_ID}",
           "workable": "/acme/j/A1B2C3D4E5/", "smartrecruiters": "/Acme/744000081085955-x"}
    name = ats.file.removesuffix(".toml")
    pixel = config.pixels[0]
    assert any(p.match(own[name]) is not None for p in pixel.paths)
    assert all(p.match("/otherco/jobs/1") is None for p in pixel.paths)
