"""The Helm chart: lint, render with default and with all options, schema, API validation."""

from __future__ import annotations

import pytest
import yaml
from batchinfer_operator.settings import ENV_PREFIX, OperatorSettings, settings_from_env

from tests.deploy.conftest import VALUES_ALL
from tests.deploy.render import (
    CHART,
    OLDEST_KUBERNETES,
    RenderError,
    by_identity,
    helm,
    helm_template,
    latest_kubernetes,
    validate,
)


def leaf_paths(values: dict, prefix: str = "") -> set[str]:
    """Dotted paths of every option; an empty map or list is itself an option."""
    paths = set()
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            paths |= leaf_paths(value, f"{path}.")
        else:
            paths.add(path)
    return paths


def deployment(objects: list[dict]) -> dict:
    [deploy] = [o for o in objects if o["kind"] == "Deployment"]
    return deploy


def operator_container(objects: list[dict]) -> dict:
    [container] = deployment(objects)["spec"]["template"]["spec"]["containers"]
    return container


def env(container: dict) -> dict[str, str]:
    """The operator's settings environment; every variable must name a setting."""
    variables = {e["name"]: e["value"] for e in container["env"]}
    unknown = {n for n in variables if n.removeprefix(ENV_PREFIX).lower() not in OperatorSettings.model_fields}
    assert unknown == set(), f"the operator reads no such settings: {unknown}"
    return variables


def test_lint_passes_with_default_and_all_values(tools):
    helm(tools, "lint", "--strict", CHART)
    helm(tools, "lint", "--strict", CHART, "--values", VALUES_ALL)


def test_values_all_sets_every_option():
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    every = yaml.safe_load(VALUES_ALL.read_text())
    set_paths = leaf_paths(every)
    missing = [p for p in leaf_paths(defaults) if not any(s == p or s.startswith(f"{p}.") for s in set_paths)]
    assert missing == []


def test_defaults_render_one_cluster_wide_standalone_operator(chart_default):
    assert sorted(o["kind"] for o in chart_default) == [
        "ClusterRole", "ClusterRoleBinding", "Deployment", "Service", "ServiceAccount",
    ]
    spec = deployment(chart_default)["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    container = operator_container(chart_default)
    assert container["image"] == "ghcr.io/batchinfer/operator:0.1.0"
    assert container["command"] == ["kopf"]
    args = container["args"]
    assert args[0] == "run" and "--standalone" in args and "--all-namespaces" in args
    assert args[-2:] == ["-m", "batchinfer_operator"]
    assert "--liveness=http://0.0.0.0:8080/healthz" in args
    probe = container["livenessProbe"]["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert probe == {"path": "/healthz", "port": "health"} and ports == {"health": 8080, "metrics": 9090}
    assert settings_from_env(env(container)) == OperatorSettings(
        worker_image="ghcr.io/batchinfer/worker:0.1.0",
        metrics_port=9090,
        liveness_endpoint="http://0.0.0.0:8080/healthz",
        run_as_user=65532,
    )
    assert container["resources"]["limits"] == {"cpu": "500m", "memory": "256Mi"}


def test_all_options_reach_the_objects(chart_all):
    objects = by_identity(chart_all)
    container = operator_container(chart_all)
    assert container["image"] == "registry.example.com/ml/batchinfer-operator:1.2.3"
    assert container["imagePullPolicy"] == "Always"
    assert "--liveness=http://0.0.0.0:8081/healthz" in container["args"]
    assert {"--namespace=team-a", "--namespace=team-b", "--verbose"} <= set(container["args"])
    assert "--all-namespaces" not in container["args"]
    assert settings_from_env(env(container)) == OperatorSettings(
        worker_image="registry.example.com/ml/batchinfer-worker:1.2.3",
        default_staging_url="s3://staging-bucket/batchinfer",
        namespaces=("team-a", "team-b"),
        allowed_url_schemes=frozenset({"s3", "https"}),
        resync_seconds=2.5,
        metrics_port=9191,
        liveness_endpoint="http://0.0.0.0:8081/healthz",
        run_as_user=30003,
    )
    pod = deployment(chart_all)["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "batchinfer-sa"
    assert pod["securityContext"]["runAsUser"] == 20001
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert pod["tolerations"][0]["tolerationSeconds"] == 60
    for ns in ("team-a", "team-b"):
        assert ("Role", ns, "batchinfer-ctl") in objects
        binding = objects[("RoleBinding", ns, "batchinfer-ctl")]
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "batchinfer-sa", "namespace": "batchinfer-system"}
        ]
    cluster_rules = objects[("ClusterRole", "", "batchinfer-ctl")]["rules"]
    assert {r for rule in cluster_rules for r in rule["resources"]} == {
        "customresourcedefinitions", "namespaces",
    }
    monitor = objects[("ServiceMonitor", "batchinfer-system", "batchinfer-ctl")]
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "15s"}]
    service = objects[("Service", "batchinfer-system", "batchinfer-ctl-metrics")]
    assert service["spec"]["ports"][0]["port"] == 8443


@pytest.mark.parametrize(
    "override",
    [
        "image.tga=latest",           # misspelled nested key
        "watchNamespace={team-a}",    # misspelled top-level key
        "metrics.serviceMonitor.enable=true",
        "logLevel=verbose",           # not one of the allowed values
        "allowedUrlSchemes={file}",   # local paths are never allowed from a CR
        "stagingUrl=/var/staging",
    ],
)
def test_schema_rejects_bad_values(tools, override):
    with pytest.raises(RenderError, match="values don't meet the specifications of the schema"):
        helm_template(tools, "--set", override)


def test_rbac_and_service_account_can_be_brought_by_the_user(tools):
    with pytest.raises(RenderError, match="serviceAccount.name is required"):
        helm_template(tools, "--set", "serviceAccount.create=false")
    objects = helm_template(
        tools, "--set", "serviceAccount.create=false,serviceAccount.name=ops-sa,rbac.create=false"
    )
    assert sorted(o["kind"] for o in objects) == ["Deployment", "Service"]
    assert deployment(objects)["spec"]["template"]["spec"]["serviceAccountName"] == "ops-sa"


def test_metrics_service_can_be_turned_off(tools):
    objects = helm_template(tools, "--set", "metrics.service.enabled=false")
    assert "Service" not in {o["kind"] for o in objects}


@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, latest_kubernetes()])
def test_rendered_objects_validate_against_the_api_schemas(chart_default, chart_all, version):
    skipped = {o["kind"] for o in chart_default + chart_all if not validate(o, version)}
    # Prometheus Operator CRs, no built-in schema (test_monitoring.py checks the PodMonitor against its CRD).
    assert skipped == {"ServiceMonitor", "PodMonitor"}


def test_notes_tell_the_user_what_to_apply_next(tools):
    out = helm(tools, "install", "batchinfer-operator", CHART, "--dry-run=client",
               "--namespace", "batchinfer-system")
    notes = out.split("NOTES:", 1)[1]
    assert "kubectl apply -f manifests/examples/" in notes
    assert "kubectl get bi" in notes
    assert "every namespace" in notes
