"""A read-only stand-in for the Kubernetes API, just enough for `helm template --dry-run=server`.

`helm template` cannot `lookup` without a cluster, and `make test` has none. Helm's dry-run=server
asks for discovery, maps every rendered kind to a resource, checks whether each object already exists
and runs the chart's `lookup` calls (one object, or a list). This server answers those reads from a
dict of existing objects (e.g. the Secrets of a previous install), so the real helm binary renders an
upgrade.
Writes are refused: dry-run never writes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

# group/version -> [(resource, kind, namespaced)] for every kind the chart renders
RESOURCES: dict[str, list[tuple[str, str, bool]]] = {
    "v1": [
        ("namespaces", "Namespace", False), ("secrets", "Secret", True), ("configmaps", "ConfigMap", True),
        ("services", "Service", True), ("serviceaccounts", "ServiceAccount", True), ("pods", "Pod", True),
        ("persistentvolumeclaims", "PersistentVolumeClaim", True),
        ("persistentvolumes", "PersistentVolume", False), ("resourcequotas", "ResourceQuota", True),
        ("limitranges", "LimitRange", True), ("endpoints", "Endpoints", True),
    ],
    "apps/v1": [("deployments", "Deployment", True), ("statefulsets", "StatefulSet", True)],
    "batch/v1": [("jobs", "Job", True), ("cronjobs", "CronJob", True)],
    "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget", True)],
    "networking.k8s.io/v1": [("networkpolicies", "NetworkPolicy", True)],
    "rbac.authorization.k8s.io/v1": [
        ("roles", "Role", True), ("rolebindings", "RoleBinding", True),
        ("clusterroles", "ClusterRole", False), ("clusterrolebindings", "ClusterRoleBinding", False),
    ],
    "admissionregistration.k8s.io/v1": [
        ("validatingadmissionpolicies", "ValidatingAdmissionPolicy", False),
        ("validatingadmissionpolicybindings", "ValidatingAdmissionPolicyBinding", False),
    ],
}  # fmt: skip


def _resource_list(group_version: str) -> dict[str, Any]:
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": [
            {"name": name, "singularName": kind.lower(), "namespaced": namespaced, "kind": kind,
             "verbs": ["get", "list", "create", "update", "patch", "delete"]}
            for name, kind, namespaced in RESOURCES[group_version]
        ],
    }  # fmt: skip


def _group_list() -> dict[str, Any]:
    groups = []
    for group_version in RESOURCES:
        if "/" in group_version:
            group, version = group_version.split("/")
            entry = {"groupVersion": group_version, "version": version}
            groups.append({"name": group, "versions": [entry], "preferredVersion": entry})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


class _Handler(BaseHTTPRequestHandler):
    objects: ClassVar[
        dict[tuple[str, str, str], dict[str, Any]]
    ] = {}  # (resource, namespace, name) -> object

    def log_message(self, *_: object) -> None:  # keep pytest output clean
        pass

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _not_found(self) -> None:
        self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                         "code": 404, "message": f"{self.path} not found"})  # fmt: skip

    def do_GET(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        if path == "/version":
            return self._send(200, {"major": "1", "minor": "35", "gitVersion": "v1.35.4"})
        if path == "/api":
            return self._send(
                200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
            )
        if path == "/apis":
            return self._send(200, _group_list())
        parts = path.strip("/").split("/")
        group_version = "v1" if parts[0] == "api" else "/".join(parts[1:3])
        rest = parts[2:] if parts[0] == "api" else parts[3:]
        if group_version not in RESOURCES:
            return self._not_found()
        if not rest:
            return self._send(200, _resource_list(group_version))
        namespace = rest[1] if rest[0] == "namespaces" and len(rest) > 2 else ""
        rest = rest[2:] if namespace else rest
        if len(rest) == 1 and (listed := self._list(group_version, rest[0], namespace)):
            return self._send(200, listed)  # as the chart's `lookup` with an empty name asks
        if len(rest) == 2 and (rest[0], namespace, rest[1]) in self.objects:
            return self._send(200, self.objects[(rest[0], namespace, rest[1])])
        return self._not_found()

    def _list(self, group_version: str, resource: str, namespace: str) -> dict[str, Any] | None:
        """The objects of `resource` in `namespace` (every namespace for a path without one); None
        for a resource the server does not know."""
        kind = next((k for name, k, _ in RESOURCES[group_version] if name == resource), None)
        if kind is None:
            return None
        items = [
            obj for (res, ns, _), obj in sorted(self.objects.items())
            if res == resource and (not namespace or ns == namespace)
        ]  # fmt: skip
        return {"kind": f"{kind}List", "apiVersion": group_version, "metadata": {}, "items": items}

    def do_POST(self) -> None:
        self._send(405, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 405})

    do_PUT = do_PATCH = do_DELETE = do_POST


@contextmanager
def fake_kube_api(objects: list[dict[str, Any]], workdir: Path) -> Iterator[Path]:
    """Serves `objects` (existing cluster state) and yields a kubeconfig that points at them."""
    kinds = {kind: name for entries in RESOURCES.values() for name, kind, _ in entries}
    handler = type("Handler", (_Handler,), {"objects": {
        (kinds[o["kind"]], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for o in objects
    }})  # fmt: skip
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    kubeconfig = workdir / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
        "users": [{"name": "fake", "user": {"token": "unused"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
    }))  # fmt: skip
    try:
        yield kubeconfig
    finally:
        server.shutdown()
        server.server_close()
