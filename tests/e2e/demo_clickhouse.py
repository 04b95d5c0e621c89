"""The demo ClickHouse pair of an installed release, read from inside its pods: the databases the chart
publishes to the sync DAG, the credentials Secret, queries and a comparable snapshot of one side."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from kubernetes import client as k8s
from kubernetes.stream import stream

from .conftest import label_selector

CREDENTIALS_SECRET = "clickhouse-credentials"
SIDES = ("source", "destination")


@dataclass(frozen=True)
class DemoClickHouse:
    core: k8s.CoreV1Api
    release: str
    release_namespace: str
    namespace: str  # where the servers and the credentials Secret live (the chart's first workload namespace)

    def databases(self) -> dict[str, str]:
        """Source and destination database names, as the chart publishes them to the DAG."""
        presets = self.core.read_namespaced_config_map(f"{self.release}-pool-presets", self.release_namespace)
        sync = json.loads(presets.data["presets.json"])["clickhouseSync"]
        return {side: sync[side]["database"] for side in SIDES}

    def password(self, side: str) -> str:
        secret = self.core.read_namespaced_secret(CREDENTIALS_SECRET, self.namespace)
        return base64.b64decode(secret.data[f"{side}-password"]).decode()

    def query(self, side: str, sql: str) -> list[list[str]]:
        """Runs SQL with clickhouse-client inside the server's own pod (tab-separated rows)."""
        service = f"clickhouse-{side}"
        selector = self.core.read_namespaced_service(service, self.namespace).spec.selector
        labels = label_selector(selector)
        pod = self.core.list_namespaced_pod(self.namespace, label_selector=labels).items[0]
        output = stream(
            self.core.connect_get_namespaced_pod_exec, pod.metadata.name, self.namespace,
            command=["clickhouse-client", f"--password={self.password(side)}", "--query", sql],
            stderr=True, stdin=False, stdout=True, tty=False,
        )  # fmt: skip
        if "Received exception from server" in output or output.startswith("Code: "):
            raise RuntimeError(f"clickhouse-client on {service} failed for {sql!r}:\n{output}")
        return [line.split("\t") for line in output.splitlines() if line]

    def snapshot(self, side: str) -> dict[str, tuple[str, ...]]:
        """Object name -> (engine, row count, order-independent checksum) of one side's database."""
        database = self.databases()[side]
        objects = self.query(
            side, f"SELECT name, engine FROM system.tables WHERE database = '{database}' ORDER BY name"
        )
        snapshot: dict[str, tuple[str, ...]] = {}
        for name, engine in objects:
            if name.startswith(".inner.") or engine in {"View", "MaterializedView"}:
                snapshot[name] = (engine,)
                continue
            columns = [row[0] for row in self.query(
                side, f"SELECT name FROM system.columns WHERE database = '{database}' AND table = '{name}'",
            )]  # fmt: skip
            hashed = ", ".join(f"toString({column})" for column in columns)
            ((count, checksum),) = self.query(
                side, f"SELECT count(), sum(cityHash64({hashed})) FROM {database}.`{name}`"
            )
            snapshot[name] = (engine, count, checksum)
        return snapshot


SKIP_PATTERNS = ("copy", "test", "backup", "dict")  # the sync DAG's default skip patterns


def expected_copy(source: dict[str, tuple[str, ...]]) -> tuple[dict[str, tuple[str, ...]], set[str]]:
    """What the destination must equal after a default sync, and the source objects it skips."""
    skipped = {name for name in source if any(pattern in name for pattern in SKIP_PATTERNS)}
    return {name: value for name, value in source.items() if name not in skipped}, skipped
