"""Security policy checks on Kubernetes objects, as pure functions returning violations.

Each returns a list of human-readable findings (empty = compliant), so a failing test
says exactly which object and field broke the rule. Used on the chart, on the kustomize
install and on the worker pods the operator builds.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

RBAC_KINDS = {"Role", "ClusterRole"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}


def _name(obj: dict) -> str:
    meta = obj.get("metadata", {})
    return f"{obj.get('kind')}/{meta.get('namespace', '')}/{meta.get('name')}"


def rbac_violations(objects: Iterable[dict]) -> list[str]:
    """No wildcards anywhere in a rule, and no access to Secrets."""
    found = []
    for obj in objects:
        if obj.get("kind") not in RBAC_KINDS:
            continue
        if "aggregationRule" in obj:
            found.append(f"{_name(obj)}: aggregationRule can pull in any permission")
        for i, rule in enumerate(obj.get("rules") or []):
            where = f"{_name(obj)} rules[{i}]"
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                if any("*" in value for value in rule.get(field, [])):
                    found.append(f"{where}: wildcard in {field}: {rule[field]}")
            if "nonResourceURLs" in rule:
                found.append(f"{where}: nonResourceURLs {rule['nonResourceURLs']}")
            secrets = [r for r in rule.get("resources", []) if r.split("/")[0] == "secrets"]
            if secrets and "" in rule.get("apiGroups", []):
                found.append(f"{where}: grants {rule['verbs']} on {secrets}")
    return found


def pod_specs(objects: Iterable[dict]) -> Iterator[tuple[str, dict]]:
    """(name, pod spec) for every workload and bare pod among objects."""
    for obj in objects:
        kind = obj.get("kind")
        if kind == "Pod":
            yield _name(obj), obj["spec"]
        elif kind in WORKLOAD_KINDS:
            yield _name(obj), obj["spec"]["template"]["spec"]
        elif kind == "CronJob":
            yield _name(obj), obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def _effective(pod: dict, container: dict, key: str):
    """A container's setting, falling back to the pod's securityContext as the kubelet does."""
    own = (container.get("securityContext") or {}).get(key)
    return own if own is not None else (pod.get("securityContext") or {}).get(key)


def container_violations(where: str, pod: dict) -> list[str]:
    """Every container: non-root, read-only root FS, no escalation, no caps, RuntimeDefault."""
    found = []
    if pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC"):
        found.append(f"{where}: shares a host namespace")
    containers = [*pod.get("initContainers", []), *pod.get("containers", [])]
    assert containers, f"{where}: pod spec without containers"
    for c in containers:
        at = f"{where} container {c.get('name')}"
        sc = c.get("securityContext") or {}
        if _effective(pod, c, "runAsNonRoot") is not True:
            found.append(f"{at}: runAsNonRoot is not true")
        if _effective(pod, c, "runAsUser") == 0:
            found.append(f"{at}: runAsUser is 0")
        if sc.get("readOnlyRootFilesystem") is not True:
            found.append(f"{at}: readOnlyRootFilesystem is not true")
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append(f"{at}: allowPrivilegeEscalation is not false")
        if sc.get("privileged"):
            found.append(f"{at}: privileged")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            found.append(f"{at}: capabilities.drop lacks ALL")
        if caps.get("add"):
            found.append(f"{at}: adds capabilities {caps['add']}")
        seccomp = _effective(pod, c, "seccompProfile") or {}
        if seccomp.get("type") != "RuntimeDefault":
            found.append(f"{at}: seccompProfile is {seccomp.get('type')!r}, not RuntimeDefault")
    return found


def workload_violations(objects: Iterable[dict]) -> list[str]:
    return [v for where, pod in pod_specs(objects) for v in container_violations(where, pod)]
