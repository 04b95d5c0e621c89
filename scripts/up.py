"""`make up`: the platform on a local kind cluster, the sync DAG run once, the UI address printed.

Every phase is a function called in this process (no `make` call back): tools, Docker engine, node
image, cluster, images, load (push, in registry mode), install, ready, DAG run. The image tag is
computed once (it hashes every image source) and passed to the phases that need it. Each phase
prints its progress and duration; a failing phase names itself and says where to look. Phase
timings go to .cache/timings.json for `make e2e` and `make bench`.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from scripts import cluster, config, images, node_image, platform_api, registry, shell_steps

SYNC_DAG_ID = "clickhouse_db_sync"


@dataclass(frozen=True)
class Phase:
    name: str
    run: Callable[[], object]
    where_to_look: str


def run_sync_dag() -> str:
    state = platform_api.run_dag_once(SYNC_DAG_ID)
    if state != "success":
        raise RuntimeError(f"DAG run of {SYNC_DAG_ID} ended in state {state!r}")
    return state


def images_to_nodes(every_image: list[config.Image], tag: str) -> Phase:
    """`kind load` into the nodes; in registry mode (`make e2e`) a push to the local registry instead,
    from which the nodes pull with the release's credential (the production-shaped release pulls the
    same references there: containerd's CRI forgets a `kind load`ed reference once the same image is
    pulled under another name, so the two releases must not mix the two ways)."""
    if config.registry_mode():
        return Phase(
            "push",
            lambda: registry.push_for_install(tag),
            f"the error above; docker logs {config.REGISTRY_CONTAINER}; `make registry`",
        )
    return Phase(
        "load",
        lambda: images.load(every_image, tag),
        f"the error above (kind's message, free space); docker images '{config.repository_prefix()}/*'",
    )


def phases(tag: str) -> list[Phase]:
    """The steps of `make up`, in order, all with the same image tag."""
    namespace = config.AIRFLOW_NAMESPACE
    every_image = list(config.images())
    steps = [
        Phase("tools", shell_steps.tools, "scripts/tools.sh (TOOLS_SOURCE=download|go)"),
        Phase("docker", shell_steps.docker_engine, "scripts/docker/ensure-engine.sh"),
        Phase("node image", node_image.main, ".cache/node-image/; NODE_IMAGE_SOURCE=build|official"),
        Phase("cluster", cluster.up, f"docker ps; kind export logs --name {config.CLUSTER_NAME}"),
        Phase("images", lambda: images.build(every_image, tag), ".cache/images/<image>.log"),
        images_to_nodes(every_image, tag),
        Phase(
            "install",
            lambda: platform_api.helm_upgrade_install(tag),
            f"kubectl -n {namespace} get pods; kubectl -n {namespace} get events --sort-by=.lastTimestamp",
        ),
        Phase(
            "ready",
            platform_api.wait_for_api_server,
            f"kubectl -n {namespace} logs deploy/{platform_api.API_SERVICE}",
        ),
    ]
    if config.up_runs_dag():
        scheduler_log = f"kubectl -n {namespace} logs deploy/{config.RELEASE}-scheduler"
        steps.append(Phase("dag run", run_sync_dag, f"{scheduler_log}; kubectl get pods -A -l dag_id"))
    return steps


def run_phases(phases: list[Phase]) -> dict[str, float]:
    timings: dict[str, float] = {}
    for index, phase in enumerate(phases, start=1):
        print(f"==> [{index}/{len(phases)}] {phase.name}", flush=True)
        started = time.monotonic()
        try:
            phase.run()
        except (Exception, SystemExit) as error:  # name the phase and where to look, not a stack trace
            elapsed = time.monotonic() - started
            print(f"!!! phase '{phase.name}' failed after {elapsed:.0f} s: {error}", file=sys.stderr)
            print(f"    look here: {phase.where_to_look}", file=sys.stderr)
            raise SystemExit(1) from None
        timings[phase.name] = round(time.monotonic() - started, 1)
        print(f"    {phase.name} done in {timings[phase.name]:.1f} s", flush=True)
    return timings


def write_timings(timings: dict[str, float]) -> None:
    config.TIMINGS_FILE.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(config.TIMINGS_FILE.read_text()) if config.TIMINGS_FILE.exists() else {}
    existing["up"] = timings
    config.TIMINGS_FILE.write_text(json.dumps(existing, indent=2) + "\n")


def main() -> None:
    started = time.monotonic()
    tag = images.image_tag()
    print(f"==> image tag {tag} (computed in {time.monotonic() - started:.1f} s)", flush=True)
    timings = run_phases(phases(tag))
    write_timings(timings)
    print()
    outcome = "success" if "dag run" in timings else "not run (PLATFORM_UP_DAG_RUN=0)"
    print(f"Platform is up in {sum(timings.values()):.0f} s. {SYNC_DAG_ID}: {outcome}")
    print(f"  Airflow UI:  {platform_api.ui_url()}")
    print(f"  User:        {platform_api.ADMIN_USER}")
    print(f"  Password:    {platform_api.admin_password_command()}")
