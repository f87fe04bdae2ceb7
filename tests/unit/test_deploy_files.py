"""The deployment files stay valid and in step with the code (checked offline)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from agora.cli import SERVICES

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose" / "docker-compose.yml"


def test_compose_file_matches_the_compose_specification():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(COMPOSE),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_runs_every_service_and_the_gateway():
    compose = yaml.safe_load(COMPOSE.read_text())
    commands = [tuple(s.get("command", ())) for s in compose["services"].values()]
    for name in SERVICES:
        assert ("agora", "service", name) in commands
    assert ("agora", "gateway") in commands
    assert ("agora", "migrate") in commands


def test_the_image_contains_every_package_the_processes_import():
    dockerfile = (ROOT / "compose" / "Dockerfile").read_text()
    for folder in ("services", "gateway", "agora", "config"):
        assert f"COPY {folder} {folder}" in dockerfile
    assert "-c constraints.txt" in dockerfile


def _stages(dockerfile):
    """``[(base image, alias or None, [instruction lines])]`` of a multi-stage Dockerfile."""
    stages = []
    for raw in dockerfile.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            words = line.split()
            alias = words[3] if len(words) > 3 and words[2].upper() == "AS" else None
            stages.append((words[1], alias, []))
        elif stages:
            stages[-1][2].append(line)
    return stages


def test_the_image_builds_the_storefront_and_serves_it_from_the_default_root():
    """Issue 12: the gateway image holds web/dist, built in a Node.js stage from
    the lockfile (no Node.js in the final image), where gateway.web.root points."""
    from services.chassis.config import load_config

    stages = _stages((ROOT / "compose" / "Dockerfile").read_text())
    assert len(stages) == 2
    (node_image, alias, steps), (python_image, _, final) = stages
    assert node_image.startswith("node:20") and alias
    assert any(s.startswith("RUN npm ci") for s in steps)
    assert "RUN npm run build" in steps
    # The lockfile is copied (and installed) before the sources, for the layer cache.
    lock = next(i for i, s in enumerate(steps) if "package-lock.json" in s)
    assert lock < steps.index("RUN npm run build")
    assert python_image.startswith("python:3.11")
    web = load_config({"AGORA_ENV": "development"}, process="gateway")["gateway"]["web"]
    assert f"COPY --from={alias} /web/dist {web['root']}" in final
    assert f"COPY {web['theme']} {web['theme']}" in final
    # The host's node_modules and build never reach the build context.
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {"web/node_modules", "web/dist", ".venv"} <= set(ignored)


def test_compose_names_the_public_url_it_publishes():
    compose = yaml.safe_load(COMPOSE.read_text())["services"]
    public_url = compose["gateway"]["environment"]["AGORA_PUBLIC_URL"]
    assert public_url == "${AGORA_PUBLIC_URL:-http://localhost:8080}"
    (published,) = compose["gateway"]["ports"]
    assert published.endswith(":8080:8080")
    # Every process derives what it writes from it (the issuer, mailed links).
    assert all("AGORA_AUTH_ISSUER" not in s.get("environment", {}) for s in compose.values())


K8S = ROOT / "k8s"
K8S_VERSION = "1.30"


def _documents(path):
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _base_manifests():
    kustomization = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    return [doc for name in kustomization["resources"] for doc in _documents(K8S / "base" / name)]


def test_kubernetes_manifests_match_the_api_schemas():
    import kubernetes_validate

    manifests = _base_manifests()
    assert manifests
    for manifest in manifests:
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def test_kubernetes_runs_every_service_and_overlays_name_real_deployments():
    deployments = {m["metadata"]["name"]: m for m in _base_manifests() if m["kind"] == "Deployment"}
    commands = {
        tuple(d["spec"]["template"]["spec"]["containers"][0]["command"])
        for d in deployments.values()
    }
    for name in SERVICES:
        assert ("agora", "service", name) in commands
    assert ("agora", "gateway") in commands
    for overlay in ("dev", "production"):
        kustomization = yaml.safe_load(
            (K8S / "overlays" / overlay / "kustomization.yaml").read_text()
        )
        for resource in kustomization["resources"]:
            assert (K8S / "overlays" / overlay / resource / "kustomization.yaml").exists()
        for replica in kustomization.get("replicas", []):
            assert replica["name"] in deployments


def _secret_names(container):
    from_env = {e["secretRef"]["name"] for e in container.get("envFrom", ()) if "secretRef" in e}
    keys = {
        (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for e in container.get("env", ())
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    return from_env, keys


def test_kubernetes_gives_each_process_only_its_own_secrets():
    manifests = {
        m["metadata"]["name"]: m for m in _base_manifests() if m["kind"] in ("Deployment", "Job")
    }
    own = {f"agora-{name}" for name in SERVICES}
    for name in SERVICES:
        container = manifests[f"agora-{name}"]["spec"]["template"]["spec"]["containers"][0]
        from_env, keys = _secret_names(container)
        # Shared addresses, its own secrets, its own broker password.
        assert from_env == {"agora-secrets", f"agora-{name}", f"agora-broker-{name}"}, name
        assert not keys
    gateway = manifests["agora-gateway"]["spec"]["template"]["spec"]["containers"][0]
    # Of the others, only the object store's credentials (images are the gateway's).
    assert _secret_names(gateway) == (
        {"agora-secrets", "agora-broker-gateway", "agora-media"},
        set(),
    )
    # Migrations: the admin role, and of each service's secret its role password only.
    migrate = manifests["agora-migrate"]["spec"]["template"]["spec"]["containers"][0]
    from_env, keys = _secret_names(migrate)
    assert from_env == {"agora-secrets", "agora-migrate"} and not from_env & own
    assert keys == {(f"agora-{n}", f"AGORA_{n.upper()}_DB_PASSWORD") for n in SERVICES}


def test_compose_gives_each_process_only_its_own_secrets():
    compose = yaml.safe_load(COMPOSE.read_text())["services"]
    secret = re.compile(
        r"AGORA_(\w+)_DB_PASSWORD|AGORA_PG_PASSWORD|AGORA_AUTH_KEY_PASSPHRASE"
        r"|AGORA_BROKER_(\w+)_PASSWORD|AGORA_AMQP_PASSWORD"
    )
    for name in (*SERVICES, "gateway"):
        environment = compose[name].get("environment", {})
        found = {key for key in environment if secret.fullmatch(key)}
        expected = {f"AGORA_BROKER_{name.upper()}_PASSWORD"}
        if name in SERVICES:
            expected.add(f"AGORA_{name.upper()}_DB_PASSWORD")
        if name == "auth":
            expected.add("AGORA_AUTH_KEY_PASSPHRASE")
        assert found == expected, name
    migrate = compose["migrate"]["environment"]
    assert "AGORA_PG_PASSWORD" in migrate and "AGORA_AUTH_KEY_PASSPHRASE" not in migrate
    for name in SERVICES:
        assert f"AGORA_{name.upper()}_DB_PASSWORD" in migrate


COMPOSE_TARGETS = ROOT / "compose" / "prometheus-targets.json"


def test_compose_prometheus_scrapes_every_process_on_its_metrics_port():
    """Port 9100 in every container; gateway worker i serves on 9100 + i."""
    import json

    from services.chassis.config import load_config

    compose = yaml.safe_load(COMPOSE.read_text())["services"]
    workers = load_config({"AGORA_ENV": "development"}, process="gateway")["gateway"]["workers"]
    expected = {(f"{name}:9100", name, name) for name in SERVICES}
    expected |= {(f"gateway:{9100 + i}", "gateway", f"gateway-w{i}") for i in range(workers)}
    scraped = set()
    for group in json.loads(COMPOSE_TARGETS.read_text()):
        assert set(group["labels"]) == {"service", "process"}
        for target in group["targets"]:
            scraped.add((target, group["labels"]["service"], group["labels"]["process"]))
    assert scraped == expected
    for name in (*SERVICES, "gateway"):
        environment = compose[name]["environment"]
        assert environment["AGORA_ENV"] == "development", name
        assert environment["AGORA_METRICS_HOST"] == "0.0.0.0", name
        assert str(environment["AGORA_METRICS_PORT"]) == "9100", name


def _mounts(service):
    """(host path resolved from compose/, container path) of each bind mount."""
    mounts = []
    for volume in service.get("volumes", ()):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts.append(((COMPOSE.parent / source).resolve(), target))
    return mounts


def test_compose_runs_prometheus_and_grafana_on_the_repository_config():
    compose = yaml.safe_load(COMPOSE.read_text())["services"]
    prometheus = dict((str(t), s) for s, t in _mounts(compose["prometheus"]))
    config = ROOT / "config" / "prometheus"
    assert prometheus["/etc/prometheus/prometheus.yml"] == config / "prometheus.yml"
    assert prometheus["/etc/prometheus/rules"] == config / "rules"
    assert prometheus["/etc/prometheus/targets/compose.json"] == COMPOSE_TARGETS
    assert "--config.file=/etc/prometheus/prometheus.yml" in compose["prometheus"]["command"]
    grafana = dict((str(t), s) for s, t in _mounts(compose["grafana"]))
    assert grafana["/etc/grafana/provisioning"] == ROOT / "config" / "grafana" / "provisioning"
    assert ROOT / "config" / "grafana" / "dashboards" in grafana.values()
    assert compose["grafana"]["environment"]["AGORA_PROMETHEUS_URL"] == "http://prometheus:9090"
    for source, _target in _mounts(compose["prometheus"]) + _mounts(compose["grafana"]):
        assert source.exists(), source
