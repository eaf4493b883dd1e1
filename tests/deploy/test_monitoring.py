"""The chart's worker monitoring: the PodMonitor selects the pods the operator starts on the port
they declare, and validates against the Prometheus Operator's CRD; every query of the Grafana
dashboard names a metric and labels the worker's registry really exports."""

import json
import re
from pathlib import Path

import jsonschema
import pytest

from batchinfer_operator.jobs import gather_job, shards_job
from batchinfer_operator.reconcile import run_values
from batchinfer_operator.settings import OperatorSettings
from batchinfer_operator.validation import validate_spec
from tests.deploy import promql
from tests.deploy.render import by_identity, helm_template, read_yaml, unknown_fields, validate
from tests.operator.test_worker_contract import make_cr
from worker import contract
from worker.batch.checkpoint import ChunkStats
from worker.metrics import WorkerMetrics
from worker.outputs import EngineStats

PODMONITOR_CRD = Path(__file__).with_name("crds") / "monitoring.coreos.com_podmonitors.yaml"
# Labels Prometheus puts on every series of a PodMonitor's targets.
TARGET_LABELS = {"namespace", "pod", "container", "endpoint", "job", "instance"}


def one(objects: list[dict], kind: str) -> dict:
    [obj] = [o for o in objects if o["kind"] == kind]
    return obj


def worker_pods() -> list[dict]:
    """The pod templates of both Jobs of a run, as the operator builds them."""
    obj, settings = make_cr(), OperatorSettings()
    spec = validate_spec(obj["spec"], settings)
    run = run_values(obj, spec, settings)
    return [job(obj, spec, run, settings)["spec"]["template"] for job in (shards_job, gather_job)]


def exported() -> tuple[set[str], set[str]]:
    """Sample and label names of the worker's registry, every metric given a value."""
    metrics = WorkerMetrics()
    metrics.set_phase("serving")
    metrics.start_range(0, 10, 10, ChunkStats(lines=1, failed={"invalid_json": 1}), 5)
    metrics.show_load(EngineStats(1, 0, 1, 4))
    metrics.step_time.observe(0.01)
    samples = [s for family in metrics.registry.collect() for s in family.samples]
    return {s.name for s in samples}, {label for s in samples for label in s.labels}


def dashboard_queries(dashboard: dict) -> list[str]:
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            queries.append(var["query"]["query"] if isinstance(var["query"], dict) else var["query"])
    return queries


@pytest.mark.parametrize("extra", [[], ["--set", "watchNamespaces={team-a}"]], ids=["all-namespaces", "team-a"])
def test_the_pod_monitor_selects_every_worker_pod_on_its_named_port(tools, extra):
    monitor = one(helm_template(tools, "--set", "metrics.podMonitor.enabled=true", *extra), "PodMonitor")
    spec = monitor["spec"]
    for pod in worker_pods():
        assert spec["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        [container] = pod["spec"]["containers"]
        [endpoint] = spec["podMetricsEndpoints"]
        assert (endpoint["port"], endpoint["path"]) == (contract.METRICS_PORT_NAME, contract.METRICS_PATH)
        assert endpoint["port"] in {p["name"] for p in container["ports"]}
    assert spec["namespaceSelector"] == ({"matchNames": ["team-a"]} if extra else {"any": True})


def test_the_pod_monitor_validates_against_the_prometheus_operator_crd(chart_all):
    [crd] = read_yaml(PODMONITOR_CRD)
    [version] = [v for v in crd["spec"]["versions"] if v["storage"]]
    schema = version["schema"]["openAPIV3Schema"]
    monitor = one(chart_all, "PodMonitor")
    assert monitor["apiVersion"] == f"{crd['spec']['group']}/{version['name']}"
    jsonschema.Draft7Validator(schema).validate(monitor)
    assert unknown_fields({k: v for k, v in monitor.items() if k != "metadata"}, schema) == []
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["podMetricsEndpoints"][0]["interval"] == "20s"


def test_the_dashboard_is_a_config_map_for_grafanas_sidecar(chart_all, tools):
    objects = by_identity(chart_all)
    config_map = objects[("ConfigMap", "monitoring", "batchinfer-ctl-dashboard")]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert validate(config_map, "1.31")
    [(name, text)] = config_map["data"].items()
    assert name.endswith(".json") and json.loads(text)["uid"] == "batchinfer-workers"
    default = helm_template(tools, "--set", "metrics.dashboard.enabled=true")
    assert one(default, "ConfigMap")["metadata"]["namespace"] == "batchinfer-system"


def test_every_dashboard_query_names_metrics_and_labels_the_worker_exports(chart_all):
    dashboard = json.loads(next(iter(one(chart_all, "ConfigMap")["data"].values())))
    samples, worker_labels = exported()
    monitor = one(chart_all, "PodMonitor")
    pod_labels = {re.sub(r"[^a-zA-Z0-9_]", "_", label) for label in monitor["spec"]["podTargetLabels"]}
    queries = dashboard_queries(dashboard)
    assert len(queries) >= 10
    read = set()
    for query in queries:
        metrics, labels = promql.names(query)
        assert metrics and metrics <= samples, f"{query}: {metrics - samples} not exported"
        assert labels <= worker_labels | TARGET_LABELS | pod_labels, query
        read |= metrics
    # The progress figures the operator reads are on the dashboard too.
    assert {contract.METRIC_INPUT_BYTES_DONE, contract.METRIC_RANGE_END, contract.METRIC_REQUEST_SUCCESS} <= read


def test_the_query_reader_catches_a_misspelled_metric_and_an_unknown_function():
    samples, _ = exported()
    metrics, labels = promql.names('sum by (pod) (rate(batchinfer:input_bytes_done{attempt="current"}[5m]))')
    assert metrics == {"batchinfer:input_bytes_done"} and not metrics <= samples and labels == {"pod", "attempt"}
    with pytest.raises(promql.PromQLError, match="sumx"):
        promql.names("sumx(batchinfer:phase)")
