"""Plain HTTP to the test API server, as kubectl does it: a token, the cluster's CA, JSON."""

from pathlib import Path
from typing import Any

import requests


class ApiError(RuntimeError):
    def __init__(self, method: str, path: str, response: requests.Response) -> None:
        super().__init__(f"{method} {path}: HTTP {response.status_code}: {response.text[:1000]}")
        self.status = response.status_code
        self.body = response.text


class KubeClient:
    """`namespace` fills `{ns}` in paths: kube.get("/api/v1/namespaces/{ns}/pods/x")."""

    def __init__(self, url: str, token: str, ca_file: Path, namespace: str = "default") -> None:
        self.url, self.ca_file, self.namespace, self.token = url, ca_file, namespace, token
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    def for_namespace(self, namespace: str) -> "KubeClient":
        return KubeClient(self.url, self.token, self.ca_file, namespace)

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json",
                params: dict[str, str] | None = None) -> Any:
        path = path.replace("{ns}", self.namespace)
        # verify per request: a session's verify loses to REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE in the environment.
        response = self.http.request(method, self.url + path, json=body, params=params, timeout=30,
                                     headers={"Content-Type": content_type}, verify=str(self.ca_file))
        if not response.ok:
            raise ApiError(method, path, response)
        return response.json() if response.content else None

    def get(self, path: str) -> dict[str, Any] | None:
        try:
            return self.request("GET", path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def items(self, path: str, selector: str | None = None) -> list[dict[str, Any]]:
        params = {"labelSelector": selector} if selector else None
        return list((self.request("GET", path, params=params) or {}).get("items") or [])

    def create(self, collection: str, obj: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", collection, obj)

    def patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("PATCH", path, body, "application/merge-patch+json")

    def delete(self, path: str, grace_seconds: int | None = None) -> Any:
        body = None if grace_seconds is None else {"kind": "DeleteOptions", "apiVersion": "v1",
                                                    "gracePeriodSeconds": grace_seconds}
        try:
            return self.request("DELETE", path, body)
        except ApiError as exc:
            if exc.status != 404:
                raise
            return None

    def create_token(self, namespace: str, service_account: str, seconds: int = 7200) -> str:
        """A bound ServiceAccount token from the TokenRequest API (what `kubectl create token` does)."""
        review = self.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token",
                              {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                               "spec": {"expirationSeconds": seconds}})
        return review["status"]["token"]
