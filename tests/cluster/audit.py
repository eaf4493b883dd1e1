"""The API server's own record of every call (its audit log), read back for the tests."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Call:
    user: str
    verb: str
    group: str
    resource: str  # "jobs", "batchinferences/status"
    namespace: str
    name: str
    code: int
    body: Any
    authorized: bool  # RBAC's decision; a 403 can also come from admission (a namespace being deleted)


def calls(audit_log: Path) -> list[Call]:
    out = []
    with open(audit_log, encoding="utf-8") as log:
        for line in log:
            event = json.loads(line)
            ref = event.get("objectRef") or {}
            if event.get("stage") != "ResponseComplete" or not ref.get("resource"):
                continue  # discovery, health checks, half-written stages
            resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
            out.append(Call(user=event["user"]["username"], verb=event["verb"], group=ref.get("apiGroup", ""),
                            resource=resource, namespace=ref.get("namespace", ""), name=ref.get("name", ""),
                            code=(event.get("responseStatus") or {}).get("code", 0),
                            body=event.get("requestObject"),
                            authorized=(event.get("annotations") or {}).get("authorization.k8s.io/decision")
                            != "forbid"))
    return out
