"""The facts every script and test shares, each read from its one home.

- paths: the repository root and where caches, tools and the kubeconfig live;
- versions: `versions.env` (the only place a pinned version is written);
- names: the cluster, the Helm release and its namespace; the worker and workload namespaces come
  from the chart's values as `make up` installs them (values.yaml + values-kind.yaml);
- images: one per folder `images/<name>/` with a Dockerfile, its repository from the chart's values;
  the tool images (TOOL_IMAGES: run by the scripts on the local path, never by the chart) excepted;
- the local OCI registry (scripts/registry.py): its container, address and switch PLATFORM_REGISTRY.

Stdlib at import time (the node image is built before the venv exists); PyYAML is loaded only by
the functions that read YAML.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache"
TOOLS_BIN = ROOT / ".tools" / "bin"
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
VERSIONS_FILE = ROOT / "versions.env"
CHART = ROOT / "charts" / "airflow-platform"
CHART_VALUES = CHART / "values.yaml"
KIND_VALUES = CHART / "values-kind.yaml"
POOLS_FILE = ROOT / "node-pools" / "pools.yaml"
IMAGES_DIR = ROOT / "images"
BASE_IMAGE_DIR = IMAGES_DIR / "base"  # the shared preamble of every image, not a platform image
# Image folders the scripts build and run on the local path that the chart never references (so they
# have no images.<key> in values.yaml and are never loaded into kind or pushed as platform images).
TOOL_IMAGES = ("registry",)
ARTIFACTS = CACHE / "artifacts"  # diagnostics of a failed run (scripts/diagnostics.py)
TIMINGS_FILE = CACHE / "timings.json"


def chart_metadata() -> dict[str, str]:
    """`name`, `version` and `appVersion` of Chart.yaml (top-level scalars, read without PyYAML)."""
    text = (CHART / "Chart.yaml").read_text()
    return dict(re.findall(r"^(name|version|appVersion):\s*\"?([^\"\s#]+)", text, re.MULTILINE))


# The project's name is the chart's: the default cluster and release name, the prefix of the images
# only the scripts build (base, kind node parts).
PROJECT = chart_metadata()["name"]
# What is keyed by its inputs and slow to make (the node image's Go builds) is cached per machine,
# not per checkout, so a clean clone (every CI run) starts warm.
MACHINE_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / PROJECT

# Names a person may override per run (e.g. a second cluster next to the first).
CLUSTER_NAME = os.environ.get("CLUSTER_NAME") or PROJECT
RELEASE = os.environ.get("RELEASE") or PROJECT
KUBE_CONTEXT = f"kind-{CLUSTER_NAME}"
KUBECONFIG = Path(os.environ.get("KUBECONFIG") or CACHE / "kubeconfig")
AIRFLOW_NAMESPACE = os.environ.get("AIRFLOW_NAMESPACE") or "airflow"  # the Helm release namespace


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines (the format `versions.env` keeps so shell and make can read it too)."""
    pairs: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not re.fullmatch(r"[A-Z][A-Z0-9_]*", key) or not re.fullmatch(r"[^\s'\"$`]*", value):
            raise ValueError(f"{path}:{number}: expected KEY=value without quotes or spaces, got {line!r}")
        pairs[key] = value
    return pairs


VERSIONS = read_env_file(VERSIONS_FILE)


def tool_env() -> dict[str, str]:
    """The environment for the shell steps: every pinned version, the pinned tools first on PATH."""
    return {
        **os.environ,
        **VERSIONS,
        "PATH": f"{TOOLS_BIN}:{os.environ.get('PATH', '')}",
        "KUBECONFIG": str(KUBECONFIG),
        "CLUSTER_NAME": CLUSTER_NAME,
        "MACHINE_CACHE": str(MACHINE_CACHE),
    }


def load_yaml(path: Path) -> Any:
    import yaml

    return yaml.safe_load(path.read_text())


def merge_values(base: dict, override: dict) -> dict:
    """Helm's merge of values files: maps merge key by key, anything else is replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = value
    return merged


@cache
def installed_values() -> dict:
    """The chart's values as `make up` installs them (values.yaml, then values-kind.yaml)."""
    return merge_values(load_yaml(CHART_VALUES), load_yaml(KIND_VALUES))


def worker_namespace() -> str:
    return installed_values()["namespaces"]["workers"]["name"]


def workload_namespaces() -> tuple[str, ...]:
    return tuple(entry["name"] for entry in installed_values()["namespaces"]["workloads"])


def namespace_of_pool() -> dict[str, str]:
    """Pool name -> the workload namespace its job pods run in."""
    return {
        pool: entry["name"]
        for entry in installed_values()["namespaces"]["workloads"]
        for pool in entry["pools"]
    }


def platform_namespaces() -> tuple[str, ...]:
    """Every namespace the release uses: its own, the workers', the workloads'."""
    return (AIRFLOW_NAMESPACE, worker_namespace(), *workload_namespaces())


@cache
def node_pools() -> dict:
    """node-pools/pools.yaml as a mapping (poolLabelKey, pools)."""
    return load_yaml(POOLS_FILE)


@dataclass(frozen=True)
class Image:
    """A platform image: the folder images/<name>/ with its Dockerfile, pushed as <repository>:<tag>."""

    name: str
    repository: str

    def ref(self, tag: str) -> str:
        return f"{self.repository}:{tag}"

    @property
    def folder(self) -> str:
        return f"images/{self.name}"

    @property
    def dockerfile(self) -> str:
        return f"{self.folder}/Dockerfile"


def image_folders() -> list[str]:
    """Names of the platform image folders (each has a Dockerfile): the shared base and tools excluded."""
    return sorted(
        path.parent.name
        for path in IMAGES_DIR.glob("*/Dockerfile")
        if path.parent != BASE_IMAGE_DIR and path.parent.name not in TOOL_IMAGES
    )


@cache
def images() -> tuple[Image, ...]:
    """Every platform image; its repository is the one the chart's values.yaml names for it."""
    repositories = [entry["repository"] for entry in load_yaml(CHART_VALUES)["images"].values()
                    if isinstance(entry, dict) and "repository" in entry]  # fmt: skip
    by_name = {repository.rsplit("/", 1)[-1]: repository for repository in repositories}
    missing = [name for name in image_folders() if name not in by_name]
    if missing:
        raise ValueError(
            f"images/{missing[0]}/ has no entry images.<key>.repository ending in '/{missing[0]}' in "
            f"{CHART_VALUES.relative_to(ROOT)}: the chart must know every image it is given"
        )
    return tuple(Image(name, by_name[name]) for name in image_folders())


def base_image() -> Image:
    """images/base: the preamble every image builds on (built first, never loaded or pushed)."""
    return Image(BASE_IMAGE_DIR.name, f"{repository_prefix()}/{BASE_IMAGE_DIR.name}")


def tool_image(name: str) -> Image:
    """A tool image (TOOL_IMAGES): built like the platform images, under the same repository prefix."""
    if name not in TOOL_IMAGES or not (IMAGES_DIR / name / "Dockerfile").is_file():
        raise ValueError(f"{name!r} is not a tool image folder images/<name>/ (tool images: {TOOL_IMAGES})")
    return Image(name, f"{repository_prefix()}/{name}")


def repository_prefix() -> str:
    """The part before the slash that every platform image repository shares."""
    return images()[0].repository.rsplit("/", 1)[0]


# The local OCI registry (scripts/registry.py, `make registry`): a container on kind's Docker network,
# published on the host's loopback. Images and the chart are referenced as REGISTRY_HOST/... (kind's
# local-registry pattern: the nodes' containerd maps that name to the container, hosts.toml).
REGISTRY_CONTAINER = f"{PROJECT}-registry"
REGISTRY_PORT = int(os.environ.get("REGISTRY_PORT") or 5001)
REGISTRY_HOST = f"localhost:{REGISTRY_PORT}"
REGISTRY_CONTAINER_PORT = 5000
REGISTRY_DIR = CACHE / "registry"  # CA, certificate, htpasswd and the generated credential (0600)
KIND_NETWORK = "kind"  # the Docker network kind puts its nodes on


def registry_mode() -> bool:
    """PLATFORM_REGISTRY=1: the kind nodes pull from the local registry (default 0: `kind load`)."""
    value = os.environ.get("PLATFORM_REGISTRY", "0")
    if value not in {"0", "1"}:
        raise ValueError(f"PLATFORM_REGISTRY must be 0 or 1, not {value!r}")
    return value == "1"


def up_runs_dag() -> bool:
    """PLATFORM_UP_DAG_RUN=0: `make up` installs and stops before its sync DAG run (default 1). `make e2e`
    sets it: its suite runs the sync DAG itself and asserts far more of that run (tests/e2e/test_sync_dag.py),
    so the run of `make up` would only add a minute on the critical path."""
    value = os.environ.get("PLATFORM_UP_DAG_RUN", "1")
    if value not in {"0", "1"}:
        raise ValueError(f"PLATFORM_UP_DAG_RUN must be 0 or 1, not {value!r}")
    return value == "1"
