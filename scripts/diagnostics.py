"""Everything needed to diagnose a failed run, kept before the cluster is deleted (as kind's own e2e does).

Written to .cache/artifacts/ (ARTIFACTS_DIR overrides), replacing what an earlier run left there:

    SUMMARY.txt                      why, when, which cluster, what was collected and what could not be
    kind-logs/                       `kind export logs`: per node the kubelet, containerd and journal logs
    helm-status.txt                  `helm status` and `helm history` of the release
    events.txt, pods.txt, nodes.txt  `kubectl get` of every namespace, oldest event first
    describe/<namespace>/<pod>.txt   `kubectl describe` of every pod that is not Ready (and not done)
    logs/<namespace>/<pod>.log       every container log of the platform's pods (previous instance too)

Every item is collected on its own: one that fails is noted in SUMMARY.txt and the rest still runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

from scripts import config
from scripts.common import Logger

log = Logger("diagnostics")
COMMAND_TIMEOUT_S = 300


def artifacts_dir() -> Path:
    return Path(os.environ.get("ARTIFACTS_DIR") or config.ARTIFACTS)


class Collector:
    """Runs each collection command into a file under `root`, recording what worked and what did not."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.done: list[str] = []
        self.failed: list[str] = []

    def command(self, relative: str, *args: str) -> str:
        """Writes the command's stdout (and stderr) to root/relative; returns stdout ("" on failure)."""
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            result = subprocess.run(
                args, capture_output=True, text=True, env=config.tool_env(), timeout=COMMAND_TIMEOUT_S
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            self.failed.append(f"{relative}: {' '.join(args)}: {error}")
            return ""
        target.write_text(result.stdout + (f"\n--- stderr\n{result.stderr}" if result.stderr else ""))
        if result.returncode:
            self.failed.append(f"{relative}: {' '.join(args[:3])}... exited {result.returncode}")
            return ""
        self.done.append(relative)
        return result.stdout


def kubectl(*args: str) -> tuple[str, ...]:
    return ("kubectl", "--context", config.KUBE_CONTEXT, *args)


def cluster_exists() -> bool:
    try:
        result = subprocess.run(
            ["kind", "get", "clusters"], capture_output=True, text=True, env=config.tool_env(), check=False
        )
    except OSError:
        return False
    return config.CLUSTER_NAME in result.stdout.split()


def pod_is_healthy(pod: dict) -> bool:
    if pod.get("status", {}).get("phase") == "Succeeded":
        return True
    conditions = {c["type"]: c["status"] for c in pod.get("status", {}).get("conditions", [])}
    return conditions.get("Ready") == "True"


def restarted(pod: dict) -> bool:
    return any(status.get("restartCount", 0) for status in pod.get("status", {}).get("containerStatuses", []))


def collect_pods(collector: Collector) -> None:
    """describe of the pods that are not Ready; logs of every pod in the platform's namespaces."""
    listing = collector.command("pods.json", *kubectl("get", "pods", "--all-namespaces", "-o", "json"))
    pods = json.loads(listing)["items"] if listing else []
    platform = set(config.platform_namespaces())
    for pod in pods:
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        if not pod_is_healthy(pod):
            collector.command(
                f"describe/{namespace}/{name}.txt", *kubectl("-n", namespace, "describe", "pod", name)
            )
        if namespace not in platform:
            continue
        logs = kubectl("-n", namespace, "logs", name, "--all-containers", "--prefix", "--timestamps")
        collector.command(f"logs/{namespace}/{name}.log", *logs)
        if restarted(pod):
            collector.command(f"logs/{namespace}/{name}.previous.log", *logs, "--previous")


def write_summary(collector: Collector, reason: str, started: float) -> None:
    lines = [
        f"reason:   {reason}",
        f"time:     {datetime.now(UTC).isoformat(timespec='seconds')}",
        f"cluster:  {config.CLUSTER_NAME} (release {config.RELEASE} in {config.AIRFLOW_NAMESPACE})",
        f"took:     {time.monotonic() - started:.0f} s",
        "",
        f"collected ({len(collector.done)}):",
        *(f"  {item}" for item in collector.done),
        "",
        f"not collected ({len(collector.failed)}):",
        *(f"  {item}" for item in collector.failed),
    ]
    (collector.root / "SUMMARY.txt").write_text("\n".join(lines) + "\n")


def collect_kind_logs(collector: Collector) -> None:
    target = collector.root / "kind-logs"
    collector.command(
        "kind-logs/export.txt", "kind", "export", "logs", str(target), "--name", config.CLUSTER_NAME
    )


def collect_helm(collector: Collector) -> None:
    for what in ("status", "history"):
        collector.command(f"helm-{what}.txt", "helm", what, config.RELEASE, "-n", config.AIRFLOW_NAMESPACE)


def collect_listings(collector: Collector) -> None:
    collector.command("events.txt", *kubectl("get", "events", "--all-namespaces", "--sort-by=.lastTimestamp"))
    collector.command("nodes.txt", *kubectl("get", "nodes", "-o", "wide", "--show-labels"))
    collector.command("pods.txt", *kubectl("get", "pods", "--all-namespaces", "-o", "wide"))


STEPS = {
    "kind logs": collect_kind_logs,
    "helm status and history": collect_helm,
    "events, nodes, pods": collect_listings,
    "pod descriptions and logs": collect_pods,
}


def collect(reason: str) -> Path:
    """Collects the diagnostics into artifacts_dir() and says where they are."""
    started = time.monotonic()
    root = artifacts_dir()
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    collector = Collector(root)
    log(f"collecting into {root} ({reason})")
    if not cluster_exists():
        collector.failed.append(f"everything from the cluster: no kind cluster {config.CLUSTER_NAME}")
    else:
        for index, (name, step) in enumerate(STEPS.items(), start=1):
            step_start = time.monotonic()
            step(collector)
            log(f"({index}/{len(STEPS)}) {name} in {time.monotonic() - step_start:.0f} s")
    write_summary(collector, reason, started)
    log(f"diagnostics in {root}/ ({len(collector.done)} collected, {len(collector.failed)} not: SUMMARY.txt)")
    return root
