"""The operators' kits under deploy/, and the Dockerfile, checked by the tools that run them.

- Prometheus: `promtool check rules` and `promtool test rules` (each alert fires when
  it should and not before), `promtool check config`, and every dashboard query
  parsed by promtool as a recording rule;
- Kubernetes: the manifests parse; probes on the admin port, a numeric non-root user,
  a read-only root filesystem with writable volumes where the proxy writes, a grace
  period longer than the drain, resources, secrets from a Secret, the Service on the
  public port only, and a ConfigMap rules file the loader accepts;
- systemd: `systemd-analyze verify`, and the keys the drain and reload depend on;
- compose: stop_grace_period longer than the drain, the nginx config it names;
- the Dockerfile: numeric USER, both ports, an exec-form HEALTHCHECK.
"""

from __future__ import annotations

import configparser
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from proxy.config.env import interpolate
from proxy.config.load import load_config_text
from proxy.serve import DRAIN_SECONDS
from tests.conftest import need_binary
from tests.deploy_files import ALERTS, DASHBOARD, DEPLOY, ROOT, dashboard_exprs

MARGIN = 5.0                          # seconds beyond the drain before a SIGKILL
KUBE = DEPLOY / "kubernetes"
UNIT = DEPLOY / "systemd" / "careers-edge.service"
COMPOSE = DEPLOY / "compose"
ADMIN_PORT = 9180
PUBLIC_PORT = 8080


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    tool = need_binary("promtool")
    return subprocess.run([tool, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


# --- Prometheus and Grafana ------------------------------------------------------------

@pytest.mark.parametrize("args", [("check", "rules", "alerts.yml"),
                                  ("test", "rules", "alerts.test.yml"),
                                  ("check", "config", "prometheus.yml")], ids=" ".join)
def test_promtool_accepts_the_alerts_their_tests_and_the_scrape_config(args) -> None:
    done = promtool(*args, cwd=ALERTS.parent)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    rules = [{"record": f"dashboard:query_{i}", "expr": expr}
             for i, (_, expr) in enumerate(dashboard_exprs())]
    assert len(rules) >= 15
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = promtool("check", "rules", path.name, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules)} rules found" in done.stdout


def test_the_dashboard_is_laid_out_on_grafanas_grid() -> None:
    dash = json.loads(DASHBOARD.read_text())
    panels = dash["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    taken: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
        cells = {(x, y) for x in range(g["x"], g["x"] + g["w"])
                 for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & taken, f"{p['title']} overlaps another panel"
        taken |= cells
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${datasource}" and p["targets"], p["title"]
    assert {v["name"] for v in dash["templating"]["list"]} == {"datasource", "job", "instance"}


# --- Kubernetes -------------------------------------------------------------------------

def kube_objects() -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted(KUBE.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            out[doc["kind"]] = doc
    return out


def test_the_deployment_probes_the_admin_port_and_runs_locked_down() -> None:
    objects = kube_objects()
    assert {"Deployment", "Service", "ConfigMap", "Secret", "PersistentVolumeClaim",
            "Kustomization", "NetworkPolicy", "PodMonitor"} <= set(objects)
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    (box,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in box["ports"]}
    assert ports == {"http": PUBLIC_PORT, "admin": ADMIN_PORT}
    probes = {kind: box[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe",
                                                      "readinessProbe")}
    for kind, probe in probes.items():
        assert ports[probe["port"]] == ADMIN_PORT, kind
    assert probes["livenessProbe"]["path"] == "/_edge/healthz"
    assert probes["readinessProbe"]["path"] == "/_edge/readyz"

    pod_sc, box_sc = pod["securityContext"], box["securityContext"]
    assert pod_sc["runAsNonRoot"] is True
    assert isinstance(pod_sc["runAsUser"], int) and pod_sc["runAsUser"] > 0
    assert pod_sc["runAsUser"] == dockerfile_user()
    assert box_sc["readOnlyRootFilesystem"] is True
    assert box_sc["allowPrivilegeEscalation"] is False
    assert box_sc["capabilities"]["drop"] == ["ALL"]
    # Where the proxy writes: its state, and the workers' shared metrics files in /tmp.
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in box["volumeMounts"]}
    for path in ("/var/lib/careers-edge", "/tmp"):
        assert {"emptyDir", "persistentVolumeClaim"} & set(mounts[path]), path
    assert "configMap" in mounts["/etc/careers-edge"]

    pause = float(box["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] >= pause + DRAIN_SECONDS + MARGIN
    assert box["resources"]["requests"]["cpu"] and box["resources"]["requests"]["memory"]
    assert box["resources"]["limits"]["memory"]


def test_the_service_exposes_the_public_port_only() -> None:
    objects = kube_objects()
    (port,) = objects["Service"]["spec"]["ports"]
    assert port["targetPort"] == "http"
    assert objects["Service"]["spec"]["selector"] == \
        objects["Deployment"]["spec"]["template"]["metadata"]["labels"]


def test_the_configmap_rules_load_with_every_variable_from_the_secret() -> None:
    objects = kube_objects()
    text = objects["ConfigMap"]["data"]["rules.toml"]
    (box,) = objects["Deployment"]["spec"]["template"]["spec"]["containers"]
    from_secret = {e["name"] for e in box["env"]
                   if e.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == "careers-edge"}
    _, named = interpolate(text, {})
    assert set(named) == from_secret == set(objects["Secret"]["stringData"])
    config = load_config_text(text, "configmap rules.toml",
                              env={name: "x" * 32 for name in from_secret})
    assert config.proxy.listen == f"0.0.0.0:{PUBLIC_PORT}"
    assert config.proxy.state.startswith("sqlite:///var/lib/careers-edge/")
    assert config.admin.listen == f"0.0.0.0:{ADMIN_PORT}"


# --- systemd ---------------------------------------------------------------------------

def test_the_systemd_unit_verifies_and_drains_before_it_is_killed(tmp_path: Path) -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str                  # type: ignore[assignment,method-assign]
    unit.read_string(UNIT.read_text())
    service = unit["Service"]
    assert service["KillSignal"] == "SIGTERM" and service["KillMode"] == "mixed"
    assert float(service["TimeoutStopSec"]) >= DRAIN_SECONDS + MARGIN
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["StateDirectory"] == "careers-edge"
    assert service["WorkingDirectory"] == "/var/lib/careers-edge"
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict",
                       "ProtectHome": "yes", "PrivateTmp": "yes", "DynamicUser": "yes",
                       "CapabilityBoundingSet": ""}.items():
        assert service[key] == value, key
    assert unit["Install"]["WantedBy"] == "multi-user.target"

    analyze = shutil.which("systemd-analyze")
    if analyze is None:                     # the keys above are what can be checked
        return
    # verify wants ExecStart's program to exist: this machine's careers-edge.
    here = shutil.which("careers-edge") or str(Path(sys.executable).parent / "careers-edge")
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text().replace("/usr/local/bin/careers-edge", here))
    done = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert not re.search(r"[Uu]nknown|ignoring|[Ii]nvalid", done.stderr), done.stderr


# --- compose ----------------------------------------------------------------------------

def seconds(text: str) -> float:
    m = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", text)
    assert m and text, text
    return int(m.group(1) or 0) * 60 + int(m.group(2) or 0)


def test_compose_drains_before_a_kill_and_its_balancer_names_both_proxies() -> None:
    compose = yaml.safe_load((COMPOSE / "compose.yaml").read_text())
    services = compose["services"]
    edges = [name for name, s in services.items() if s.get("image") == "careers-edge"]
    assert sorted(edges) == ["edge-a", "edge-b"]
    for name in edges:
        assert seconds(services[name]["stop_grace_period"]) >= DRAIN_SECONDS + MARGIN
        assert services[name]["read_only"] is True and "/tmp" in services[name]["tmpfs"]
    (volume,) = services["lb"]["volumes"]
    conf = COMPOSE / volume.split(":")[0]
    assert conf.exists(), f"{volume} names a file that is not there"
    text = conf.read_text()
    servers = re.findall(r"^\s*server\s+([\w.-]+:\d+)", text, re.M)
    assert servers == [f"{name}:{PUBLIC_PORT}" for name in edges]
    rules = (COMPOSE / "rules.toml").read_text()
    config = load_config_text(rules, "compose rules.toml",
                              env={"CAREERS_EDGE_SECRET": "s" * 64})
    assert config.proxy.state.startswith("redis://redis:")
    assert config.proxy.listen == f"0.0.0.0:{PUBLIC_PORT}"
    assert config.admin.listen == f"0.0.0.0:{ADMIN_PORT}"


# --- Dockerfile -------------------------------------------------------------------------

def dockerfile_user() -> int:
    (user,) = re.findall(r"^USER\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.M)
    uid = user.split(":")[0]
    assert uid.isdigit(), f"USER {user} must be numeric for runAsNonRoot to check it"
    return int(uid)


def test_the_dockerfile_runs_as_a_numeric_user_and_checks_its_own_health() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert dockerfile_user() > 0
    (expose,) = re.findall(r"^EXPOSE\s+(.+)$", text, re.M)
    assert set(expose.split()) == {str(PUBLIC_PORT), str(ADMIN_PORT)}
    (health,) = re.findall(r"^HEALTHCHECK .*\\\n\s*CMD (\[.*\])$", text, re.M)
    assert json.loads(health) == ["careers-edge", "healthcheck", "-c",
                                  "/etc/careers-edge/rules.toml"]
    ignore = [line for line in (ROOT / ".dockerignore").read_text().splitlines()
              if line and not line.startswith("#")]
    # Everything out, then back in only what the image is built from.
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M)
    assert ignore[0] == "*"
    sources = {p.rstrip("/") for c in copied for p in c.split()}
    allowed = {p[1:].rstrip("/") for p in ignore if p.startswith("!")}

    def under(path: str, top: str) -> bool:
        return path == top or path.startswith(top + "/")
    assert all(any(under(s, a) for a in allowed) for s in sources), (sources, allowed)
    assert all(any(under(s, a) for s in sources) for a in allowed), (sources, allowed)


def test_the_image_points_careers_edge_outbox_at_the_rules_it_runs() -> None:
    text = (ROOT / "Dockerfile").read_text()
    (entry,) = re.findall(r"^ENTRYPOINT (\[.*\])$", text, re.M)
    run = json.loads(entry)
    rules = run[run.index("-c") + 1]
    assert re.search(rf"^\s+CAREERS_EDGE_CONFIG={re.escape(rules)}\s*$", text, re.M), text


def test_the_operators_texts_name_outbox_with_its_rules_file() -> None:
    texts = {p: p.read_text() for p in (ALERTS, ALERTS.with_name("alerts.test.yml"),
                                          ROOT / "README.md", ROOT / "rules" / "example.toml")}
    uses = [(p.name, m.group(0)) for p, t in texts.items()
            for m in re.finditer(r"careers-edge outbox[^`\n]*", t)]
    assert len(uses) >= 5
    assert all(" -c " in use for _, use in uses), uses
