"""The deployment files, checked as far as this machine allows (no Docker engine, no cluster):
the Dockerfile with hadolint and by structure, the wheel it installs, deploy/compose.yaml
against the Compose Specification schema, deploy/k8s/ against the Kubernetes JSON schemas, and
that what they configure is real (settings, commands, routes, feeds, probes)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from dockerfile_parse import DockerfileParser
from newsmon.alerter.routes import parse_routes
from newsmon.fetcher.feeds import parse_feeds
from newsmon.shared.services import SERVICE_NAMES
from newsmon.shared.settings import Settings

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the venv's tools: hadolint, check-jsonschema, ...
K8S = REPO / "deploy" / "k8s"
SETTING_VARIABLES = {f"NEWSMON_{name.upper()}" for name in Settings.model_fields}


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)


# --- Dockerfile ----------------------------------------------------------------------------


def test_dockerfile_passes_hadolint() -> None:
    result = _run(str(BIN / "hadolint"), "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def _stages() -> list[list[dict[str, Any]]]:
    parser = DockerfileParser(path=str(REPO / "Dockerfile"))
    stages: list[list[dict[str, Any]]] = []
    for instruction in parser.structure:
        if instruction["instruction"] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def test_image_is_multi_stage_non_root_with_entrypoint_and_healthcheck() -> None:
    stages = _stages()
    assert len(stages) >= 2
    final = {i["instruction"]: i["value"] for i in stages[-1]}
    final_text = "\n".join(i["content"] for i in stages[-1])
    assert "slim" in Path(REPO / "Dockerfile").read_text().split("ARG PYTHON_IMAGE=", 1)[1]
    user = final["USER"].split(":")[0]
    assert user not in ("0", "root")
    assert final["ENTRYPOINT"] == '["newsmon"]'
    assert "/healthz" in final["HEALTHCHECK"]
    assert "COPY --from=build" in final_text
    # No build tools in the final stage: nothing is compiled or installed there.
    for tool in ("apt-get", "gcc", "build-essential", "pip install", "pip wheel"):
        assert tool not in final_text, tool
    for name in ("NEWSMON_METRICS_HOST", "NEWSMON_METRICS_PORT", "NEWSMON_LOG_FORMAT"):
        assert name in final["ENV"]
        assert name in SETTING_VARIABLES


def test_dockerignore_lets_in_what_the_dockerfile_copies() -> None:
    allowed = {
        line[1:].rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    for stage in _stages():
        for instruction in stage:
            if instruction["instruction"] != "COPY" or "--from=" in instruction["value"]:
                continue
            *sources, _target = instruction["value"].split()
            for source in sources:
                assert source.rstrip("/") in allowed, source
                assert (REPO / source).exists(), source


def test_the_wheel_the_image_installs_builds_with_its_entry_point(tmp_path: Path) -> None:
    result = _run(sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path), ".")
    assert result.returncode == 0, result.stderr[-2000:]
    [wheel] = tmp_path.glob("newsmon-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "newsmon/cli.py" in names
    assert "newsmon/shared/kafka.py" in names
    assert not [n for n in names if n.split("/")[0] in ("services", "shared", "tests")]
    [entry_points] = [n for n in names if n.endswith("entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "newsmon = newsmon.cli:main" in text


# --- Compose ---------------------------------------------------------------------------------


def test_compose_file_follows_the_compose_specification() -> None:
    result = _run(
        str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
        "deploy/compose.yaml",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())
    return loaded


def test_compose_runs_each_service_in_its_own_containers() -> None:
    services = _compose()["services"]
    commands: dict[str, list[str]] = {}
    instance_ids = []
    for name, service in services.items():
        if "command" in service and service.get("image", "").startswith("${NEWSMON_IMAGE"):
            [command] = service["command"]
            commands.setdefault(command, []).append(name)
            environment = service["environment"]
            assert set(environment) <= SETTING_VARIABLES, name
            instance_ids.append(environment["NEWSMON_INSTANCE_ID"])
    assert {k: len(v) for k, v in commands.items()} == {
        "fetcher": 2, "classifier": 2, "alerter": 2, "notifier": 1, "web": 1,
    }  # fmt: skip
    assert set(commands) == set(SERVICE_NAMES)
    # Every replica starts by default (the alerter's standby included).
    assert not [n for names in commands.values() for n in names if "profiles" in services[n]]
    assert len(set(instance_ids)) == len(instance_ids), "each replica needs its own id"
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "prometheus" in services
    assert "grafana" in services
    for volume in services["grafana"]["volumes"] + services["prometheus"]["volumes"]:
        source = volume.split(":")[0]
        if source.startswith("./"):
            assert (REPO / "deploy" / source).exists(), source


# --- Kubernetes ------------------------------------------------------------------------------


def test_manifests_follow_the_kubernetes_schemas() -> None:
    files = sorted(str(p.relative_to(REPO)) for p in K8S.glob("*.yaml"))
    result = _run(str(BIN / "kubernetes-validate"), "--strict", "--quiet", *files)
    assert result.returncode == 0, result.stdout + result.stderr


def _documents() -> Iterator[dict[str, Any]]:
    for path in sorted(K8S.glob("*.yaml")):
        yield from (d for d in yaml.safe_load_all(path.read_text()) if d)


def _by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in _documents() if d["kind"] == kind}


def test_every_service_has_a_deployment_with_probes_resources_and_a_budget() -> None:
    deployments = _by_kind("Deployment")
    budgets = _by_kind("PodDisruptionBudget")
    assert set(deployments) == {f"newsmon-{s}" for s in SERVICE_NAMES}
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]
        [container] = pod["spec"]["containers"]
        assert container["args"] == [name.removeprefix("newsmon-")]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["resources"]["requests"]
        assert container["resources"]["limits"]["memory"]
        assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        assert {e["name"] for e in container.get("env", [])} <= SETTING_VARIABLES
        labels = deployment["spec"]["selector"]["matchLabels"]
        assert budgets[name]["spec"]["selector"]["matchLabels"] == labels


def test_configmaps_hold_real_settings_routes_and_feeds() -> None:
    maps = _by_kind("ConfigMap")
    assert set(maps["newsmon-config"]["data"]) <= SETTING_VARIABLES
    assert parse_routes(tomllib.loads(maps["newsmon-routes"]["data"]["routes.toml"]))
    assert parse_feeds(maps["newsmon-feeds"]["data"]["feeds.toml"])
    secret = _by_kind("Secret")["newsmon-secrets"]
    mounted = "/etc/newsmon/secrets/"
    files = [v for v in maps["newsmon-config"]["data"].values() if v.startswith(mounted)]
    for deployment in _by_kind("Deployment").values():
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        files += [e["value"] for e in container.get("env", []) if mounted in e.get("value", "")]
    assert len(files) == 3  # the SASL password, the Slack webhook, the web token
    assert all(f.removeprefix(mounted) in secret["stringData"] for f in files)


def test_hpa_scales_a_deployment_on_consumer_lag() -> None:
    [hpa] = _by_kind("HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"]["name"] in _by_kind("Deployment")
    [metric] = hpa["spec"]["metrics"]
    assert metric["external"]["metric"]["name"] == "newsmon_consumer_lag_messages"
    adapter = _by_kind("ConfigMap")["prometheus-adapter"]["data"]["config.yaml"]
    assert "newsmon_consumer_lag_messages" in adapter


@pytest.mark.parametrize(
    "path", ["deploy/compose.yaml", *[f"deploy/k8s/{p.name}" for p in sorted(K8S.glob("*.yaml"))]]
)
def test_deployment_files_name_only_existing_metrics(path: str) -> None:
    from newsmon.shared.metrics import Metrics

    names = {m.name for m in Metrics().registry.collect()}
    text = (REPO / path).read_text()
    for word in set(text.replace("'", " ").replace("{", " ").replace("(", " ").split()):
        if word.startswith("newsmon_") and word.endswith(("_messages", "_total", "_seconds")):
            assert word.removesuffix("_total") in names or word in names, word
