"""Builds, tags, loads and pushes the platform's container images.

An image is a folder `images/<name>/` with a Dockerfile; its repository is the one the chart's
values.yaml gives it (scripts/config.py). `python -m scripts images build|load|push|lock`, `tag`
and `refs` are the commands (scripts/__main__.py).

The tag is `<chart version>-<12 hex>`: a sha256 over every file that goes into an image, so a change
gives a new tag and no change reuses the old one. It is computed once per command and passed down.
Each build sends Docker only the files its image needs (the image's folder plus what its Dockerfile
COPYs from elsewhere), as a tar built here, which keeps the context small without a .dockerignore.

Base image: images/base/Dockerfile is the preamble every image shares (locale, CAs, pip settings); it
is built first, from the official debian:<DEBIAN_SUITE>-slim or, where Docker Hub is unreachable (or
IMAGES_BASE=airgapped), from a Debian built locally with debootstrap (images/base/build.sh), and given
to every other Dockerfile as BASE_IMAGE. IMAGES_BASE=official|airgapped|auto (default auto).

Build arguments: a Dockerfile's `ARG NAME` gets the value of NAME in versions.env (BASE_IMAGE and
DEBIAN_IMAGE come from the step above); an ARG neither knows is an error.

Local CAs: the host's extra CA certificates (IMAGES_EXTRA_CA_DIR, default /usr/local/share/ca-certificates,
where Debian keeps locally added CAs, e.g. of a TLS-inspecting proxy) go into the context under
images/base/ca-certificates/ and are trusted by the images, so pip can reach PyPI behind such a proxy.
IMAGES_EXTRA_CA_DIR="" disables that.

IMAGES_TAG overrides the tag (e.g. a release tag in CI).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from scripts import config
from scripts.common import Logger
from scripts.config import ROOT, Image

SUITE = config.VERSIONS["DEBIAN_SUITE"]
OFFICIAL_BASE = f"debian:{SUITE}-slim"
AIRGAPPED_BASE = f"{config.PROJECT}/debian-base:{SUITE}"
BASE_BUILD_SCRIPT = "images/base/build.sh"
AIRFLOW_SIZE_LIMIT = 1_000_000_000
LOG_DIR = config.CACHE / "images"
DOCKER_HUB_PROBE = "https://registry-1.docker.io/v2/"
BUILD_CA_DIR = "images/base/ca-certificates"  # the base image COPYs it
LOADED_ID_LABEL = "airflow-platform.io/docker-image-id"  # on images loaded into kind nodes
# Binaries `make tools` builds from the Go module proxy at the versions.env pins (static: CGO_ENABLED=0).
# An image COPYs them from here instead of compiling them a second time in a build stage (Prometheus
# alone compiles for ~4-7 min on 2 cores). The tag does not hash them: versions.env, which it
# hashes, fixes what they are, and the Dockerfile checks their versions.
TOOLS_BIN = ".tools/bin"
LOW_DISK_GIB = 10  # every image on 4 nodes plus a `docker save` copy of the largest needs about this
log = Logger("images")


def copy_sources(dockerfile: Path) -> list[str]:
    """The repository paths a Dockerfile COPYs (options such as --chown skipped, destination dropped;
    `COPY --from=<stage>` copies from another build stage, not from the repository)."""
    sources = []
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(word.startswith("--from=") for word in words):
            sources += [word.rstrip("/") for word in words[1:-1] if not word.startswith("--")]
    return sources


def context_paths(image: Image) -> tuple[str, ...]:
    """What the build of `image` reads: its folder, and what its Dockerfile COPYs from elsewhere."""
    outside = [
        source for source in copy_sources(ROOT / image.dockerfile)
        if not (source + "/").startswith(image.folder + "/")
    ]  # fmt: skip
    return tuple(dict.fromkeys([image.folder, *outside]))


def selected(names: list[str]) -> list[Image]:
    """The images called `names` (every image when empty); an unknown name is an error naming the known."""
    by_name = {image.name: image for image in config.images()}
    unknown = sorted(set(names) - by_name.keys())
    if unknown:
        raise ValueError(f"unknown image(s) {unknown}; known: {sorted(by_name)}")
    return [by_name[name] for name in names] if names else list(config.images())


def context_files(paths: tuple[str, ...]) -> list[str]:
    """Tracked and new files under `paths`, without what .gitignore excludes (caches, egg-info)."""
    result = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", *paths],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return sorted({name for name in result.stdout.split("\0") if name and (ROOT / name).is_file()})


def extra_ca_files() -> list[Path]:
    ca_dir = os.environ.get("IMAGES_EXTRA_CA_DIR", "/usr/local/share/ca-certificates")
    return sorted(Path(ca_dir).rglob("*.crt")) if ca_dir and Path(ca_dir).is_dir() else []


def tool_binaries(paths: tuple[str, ...]) -> dict[str, Path]:
    """The `make tools` binaries among `paths` (untracked, so git does not list them); a missing one is
    an error that says how to get it."""
    wanted = [path for path in paths if path.startswith(f"{TOOLS_BIN}/")]
    missing = [path for path in wanted if not (ROOT / path).is_file()]
    if missing:
        raise FileNotFoundError(f"{', '.join(missing)} not there: run `make tools` first (scripts/tools.sh)")
    return {path: ROOT / path for path in wanted}


def build_files(paths: tuple[str, ...], *, with_tools: bool = True) -> dict[str, Path]:
    """Name in the build context -> file: the repository's files, the host's extra CAs and (with_tools)
    the `make tools` binaries a Dockerfile COPYs."""
    files = {name: ROOT / name for name in context_files(paths)}
    if any(name.startswith(f"{BUILD_CA_DIR}/") for name in files):
        for path in extra_ca_files():
            files.setdefault(f"{BUILD_CA_DIR}/{path.name}", path)
    if with_tools:
        files |= tool_binaries(paths)
    return dict(sorted(files.items()))


def image_tag(of: tuple[Image, ...] | None = None) -> str:
    """The tag of every image: IMAGES_TAG, else the chart version and a hash of every image source.

    `of`: the images hashed besides the base (default: every platform image); a tool image
    (config.TOOL_IMAGES) gets its own tag this way, so changing it does not re-tag the platform."""
    if os.environ.get("IMAGES_TAG"):
        return os.environ["IMAGES_TAG"]
    digest = hashlib.sha256()
    every_image = (config.base_image(), *(config.images() if of is None else of))
    # versions.env: the build arguments come from it
    all_paths = (*(path for image in every_image for path in context_paths(image)), "versions.env")
    for name, path in build_files(all_paths, with_tools=False).items():
        digest.update(f"{name}\0{os.access(path, os.X_OK)}\0".encode())
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return f"{config.chart_metadata()['version']}-{digest.hexdigest()[:12]}"


def add_file(tar: tarfile.TarFile, name: str, path: Path) -> None:
    info = tarfile.TarInfo(name)
    info.size = path.stat().st_size
    info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
    info.mtime = 0
    with path.open("rb") as handle:
        tar.addfile(info, handle)


def context_tar(image: Image) -> bytes:
    """The build context as a tar with fixed owners and times, so layer caching depends on content only."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, path in build_files(context_paths(image)).items():
            add_file(tar, name, path)
    return buffer.getvalue()


def docker_hub_reachable() -> bool:
    try:
        urllib.request.urlopen(DOCKER_HUB_PROBE, timeout=5)
    except urllib.error.HTTPError:
        return True  # 401 without a token: the registry answers
    except (urllib.error.URLError, OSError):
        return False
    return True


def image_exists(ref: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", ref], capture_output=True).returncode == 0


def resolve_base_image() -> str:
    mode = os.environ.get("IMAGES_BASE", "auto")
    if mode not in {"auto", "official", "airgapped"}:
        raise ValueError(f"IMAGES_BASE must be auto, official or airgapped, not {mode!r}")
    if mode == "auto":
        official = image_exists(OFFICIAL_BASE) or docker_hub_reachable()
        mode = "official" if official else "airgapped"
        log(f"base: {mode} (Docker Hub {'reachable' if official else 'unreachable'}; IMAGES_BASE overrides)")
    if mode == "official":
        return OFFICIAL_BASE
    build_airgapped_base()
    return AIRGAPPED_BASE


def build_airgapped_base() -> None:
    subprocess.run([str(ROOT / BASE_BUILD_SCRIPT), AIRGAPPED_BASE], check=True, env=config.tool_env())


def docker_build_env() -> dict[str, str]:
    """The classic builder where buildx is missing (BuildKit then cannot run from this CLI)."""
    env = dict(os.environ)
    if "DOCKER_BUILDKIT" not in env:
        has_buildx = subprocess.run(["docker", "buildx", "version"], capture_output=True).returncode == 0
        env["DOCKER_BUILDKIT"] = "1" if has_buildx else "0"
    return env


def build_args(image: Image, given: dict[str, str]) -> list[str]:
    """`--build-arg NAME=value` for every ARG of the image's Dockerfile, from `given` or versions.env."""
    known = {**config.VERSIONS, **given}
    names = re.findall(r"^ARG\s+(\w+)", (ROOT / image.dockerfile).read_text(), re.MULTILINE)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(
            f"{image.dockerfile}: ARG {', '.join(unknown)} is neither in versions.env nor {sorted(given)}"
        )
    return [arg for name in names for arg in ("--build-arg", f"{name}={known[name]}")]


def build_lines(image: Image, tag: str, given_args: dict[str, str]) -> Iterator[str]:
    env = docker_build_env()
    progress = ["--progress=plain"] if env["DOCKER_BUILDKIT"] == "1" else []
    command = [
        "docker", "build", *progress, "-f", image.dockerfile, "-t", image.ref(tag),
        *build_args(image, given_args),
        "-",
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=ROOT,
    )
    assert process.stdin and process.stdout
    process.stdin.write(context_tar(image))
    process.stdin.close()
    for raw in process.stdout:
        yield raw.decode(errors="replace").rstrip("\n")
    if process.wait() != 0:
        raise subprocess.CalledProcessError(process.returncode, command)


class StepPrinter:
    """Prints the build steps that do work; steps answered from the layer cache are only counted."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.pending = ""
        self.steps = 0
        self.cached = 0

    def feed(self, line: str) -> None:
        if line.startswith(("Step ", "#")):
            self.flush()
            self.pending = line
            self.steps += 1
        elif "Using cache" in line or line.endswith(" CACHED"):
            self.cached += 1
            self.pending = ""
        else:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            print(f"    {time.monotonic() - self.start:6.0f}s  {self.pending[:150]}", flush=True)
            self.pending = ""


def build_one(image: Image, tag: str, given_args: dict[str, str], position: str) -> None:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / f"{image.name}.log"
    start = time.monotonic()
    log(f"{position} {image.ref(tag)}: building (full log {log_path.relative_to(ROOT)})")
    printer = StepPrinter(start)
    with log_path.open("w") as log_file:
        try:
            for line in build_lines(image, tag, given_args):
                log_file.write(line + "\n")
                printer.feed(line)
            printer.flush()
        except subprocess.CalledProcessError:
            log_file.flush()
            tail = log_path.read_text().splitlines()[-30:]
            print("\n".join(tail), file=sys.stderr)
            raise RuntimeError(f"{image.name}: docker build failed (log {log_path})") from None
    cache_note = f"{printer.cached} of {printer.steps} steps from the layer cache"
    log(f"{position} {image.name}: done in {time.monotonic() - start:.0f} s ({cache_note})")


def image_size(ref: str) -> int:
    result = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{.Size}}", ref], check=True, capture_output=True, text=True
    )
    return int(result.stdout.strip())


def print_sizes(images: list[Image], tag: str) -> None:
    log("sizes:")
    for image in images:
        size = image_size(image.ref(tag))
        print(f"    {image.ref(tag):60} {size / 1e6:8.0f} MB", flush=True)
        if image.name == "airflow" and size > AIRFLOW_SIZE_LIMIT:
            log(f"WARNING: the airflow image is {size / 1e9:.2f} GB, over the 1 GB budget")


def build_base(tag: str) -> str:
    """Builds images/base on the resolved Debian image; returns its reference."""
    debian = resolve_base_image()
    base = config.base_image()
    build_one(base, tag, {"DEBIAN_IMAGE": debian}, f"(base on {debian})")
    return base.ref(tag)


def build(images: list[Image], tag: str) -> None:
    """Builds `images` with `tag` (a rebuild without changes only hits the layer cache)."""
    start = time.monotonic()
    base = build_base(tag)
    log(f"building {len(images)} image(s), tag {tag}, on {base}")
    for index, image in enumerate(images, start=1):
        build_one(image, tag, {"BASE_IMAGE": base}, f"({index}/{len(images)})")
    print_sizes(images, tag)
    log(f"all built in {time.monotonic() - start:.0f} s")


def kind_binary() -> str:
    local = config.TOOLS_BIN / "kind"
    return str(local) if local.exists() else (shutil.which("kind") or "kind")


def image_id(ref: str) -> str:
    result = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{.Id}}", ref], check=True, capture_output=True, text=True
    )
    return result.stdout.strip()


def kind_nodes(cluster: str) -> list[str]:
    result = subprocess.run(
        [kind_binary(), "get", "nodes", "--name", cluster], check=True, capture_output=True, text=True
    )
    return result.stdout.split()


KIND_ROLE_LABEL = "io.x-k8s.kind.role"


def workload_nodes(cluster: str) -> list[str]:
    """The nodes platform pods can run on: every node but kind's control plane, which kind taints
    NoSchedule when the cluster has workers and which no platform pod tolerates (loading an image
    there cost a quarter of the load time for nothing). A cluster of one node is all control plane."""
    nodes = kind_nodes(cluster)
    roles = {node: kind_role(node) for node in nodes}
    workers = [node for node in nodes if roles[node] != "control-plane"]
    return workers or nodes


def kind_role(node: str) -> str:
    result = subprocess.run(
        ["docker", "inspect", "-f", f'{{{{index .Config.Labels "{KIND_ROLE_LABEL}"}}}}', node],
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip()


def node_refs(node: str, image_filter: str) -> list[str]:
    """Image references in the node's containerd (k8s.io namespace) matching a ctr filter."""
    result = subprocess.run(
        ["docker", "exec", node, "ctr", "-n", "k8s.io", "images", "ls", "-q", image_filter],
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.split()


def node_ctr(node: str, *args: str) -> None:
    subprocess.run(
        ["docker", "exec", node, "ctr", "-n", "k8s.io", "images", *args], check=True, capture_output=True
    )


def place_on_node(node: str, ref: str, local_id: str) -> bool:
    """Makes `ref` available on the node without a transfer when it can: True if nothing is left to load.

    Every image this script loads is labelled with its Docker image ID, so the same content under an
    older tag (e.g. only the DAGs changed) is re-tagged on the node instead of copied again."""
    containerd_ref = f"docker.io/{ref}"
    if node_refs(node, f"name=={containerd_ref}"):
        return True
    same_content = node_refs(node, f'labels."{LOADED_ID_LABEL}"=={local_id}')
    if not same_content:
        return False
    node_ctr(node, "tag", same_content[0], containerd_ref)
    node_ctr(node, "label", containerd_ref, f"{LOADED_ID_LABEL}={local_id}")
    return True


def load_one(image: Image, tag: str, cluster: str, nodes: list[str]) -> str:
    ref = image.ref(tag)
    local_id = image_id(ref)
    to_load = [node for node in nodes if not place_on_node(node, ref, local_id)]
    if not to_load:
        return "already on every node (same content)"
    kind_load(cluster, to_load, ref)
    for node in to_load:
        node_ctr(node, "label", f"docker.io/{ref}", f"{LOADED_ID_LABEL}={local_id}")
    return f"copied to {len(to_load)} of {len(nodes)} node(s)"


def kind_load(cluster: str, nodes: list[str], ref: str) -> None:
    """`kind load docker-image` into `nodes`; a failed load is retried node by node, once each.

    kind streams a `docker save` of the image into `ctr import` on every node; one node's import
    can fail for reasons that pass (a busy containerd, a short disk-space spike), and a retry of only
    that node costs one copy instead of all. What still fails raises with kind's own error and the
    free space of the places the copy goes through, the usual cause on a long-lived machine."""
    first = run_kind_load(cluster, nodes, ref)
    if first is None:
        return
    log(f"kind load of {ref} failed ({last_line(first)}); retrying node by node")
    errors = {node: error for node in nodes if (error := run_kind_load(cluster, [node], ref)) is not None}
    if errors:
        details = "\n".join(f"  {node}: {error.strip()}" for node, error in errors.items())
        raise RuntimeError(
            f"kind load docker-image {ref} failed on {', '.join(errors)}:\n{details}\n{disk_space_report()}"
        )


def run_kind_load(cluster: str, nodes: list[str], ref: str) -> str | None:
    """None when the load succeeded, else kind's error output (the last lines, which name the cause)."""
    result = subprocess.run(
        [kind_binary(), "load", "docker-image", "--name", cluster, "--nodes", ",".join(nodes), ref],
        capture_output=True,
        text=True,
    )
    if result.returncode == 0:
        return None
    output = (result.stderr or result.stdout or f"exit status {result.returncode}").strip().splitlines()
    return "\n".join(output[-8:])


def last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def disk_space_report() -> str:
    """Free space where an image load writes: the temporary directory (kind's `docker save`) and
    Docker's data root (the nodes' containerd stores live in their container layers)."""
    places = {"temporary directory": Path(tempfile.gettempdir()), "docker data root": docker_root_dir()}
    lines = [f"  {what} {path}: {free_gib(path):.1f} GiB free" for what, path in places.items()]
    hint = "(images of old tags: `make images-prune`)"
    return "free disk space:\n" + "\n".join(lines) + "\n" + hint


def docker_root_dir() -> Path:
    result = subprocess.run(["docker", "info", "-f", "{{.DockerRootDir}}"], capture_output=True, text=True)
    return Path(result.stdout.strip() or "/var/lib/docker")


def free_gib(path: Path) -> float:
    return shutil.disk_usage(path).free / 2**30


def load(images: list[Image], tag: str) -> None:
    """Puts `images` (built first where missing) into every node of the kind cluster that runs pods."""
    cluster = config.CLUSTER_NAME
    missing = [image for image in images if not image_exists(image.ref(tag))]
    if missing:
        log(f"not built yet for tag {tag}: {[image.name for image in missing]}; building them first")
        build(missing, tag)
    nodes = workload_nodes(cluster)
    if not nodes:
        raise RuntimeError(f"kind cluster {cluster!r} has no nodes; run `make cluster` first")
    free = free_gib(docker_root_dir())
    if free < LOW_DISK_GIB:
        log(
            f"warning: only {free:.1f} GiB free under Docker's data root; a load may fail"
            " (`make images-prune` removes images of old tags)"
        )
    for index, image in enumerate(images, start=1):
        start = time.monotonic()
        log(f"({index}/{len(images)}) {image.ref(tag)} -> kind cluster {cluster} ({len(nodes)} nodes)")
        outcome = load_one(image, tag, cluster, nodes)
        log(f"({index}/{len(images)}) {image.name}: {outcome} in {time.monotonic() - start:.0f} s")


def push(registry: str, tag: str) -> None:
    """Tags every image for `registry` and pushes it there."""
    for image in config.images():
        target = f"{registry.rstrip('/')}/{image.ref(tag)}"
        log(f"pushing {target}")
        subprocess.run(["docker", "tag", image.ref(tag), target], check=True)
        subprocess.run(["docker", "push", target], check=True)
    log(f"done; install the chart with --set images.registry={registry} --set images.tag={tag}")


# Run as root in the base image (CAs and pip settings already there); the versions come as -e.
LOCK_SCRIPT = """set -euo pipefail
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
python3 -m venv /lock-venv
/lock-venv/bin/pip install -q "pip==$PIP_VERSION"
/lock-venv/bin/pip install -q -r /lock/requirements.txt
/lock-venv/bin/pip freeze
"""


def lock(tag: str) -> None:
    """Resolves requirements.txt in the image's own Python and freezes the result as constraints."""
    base = build_base(tag)
    airflow_dir = config.IMAGES_DIR / "airflow"
    log(f"resolving {airflow_dir / 'requirements.txt'} in {base} (a few minutes)")
    versions = [
        arg for key in ("PIP_VERSION", "AIRFLOW_VERSION") for arg in ("-e", f"{key}={config.VERSIONS[key]}")
    ]
    result = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "-v",
            f"{airflow_dir}:/lock:ro",
            *versions,
            base,
            "bash",
            "-c",
            LOCK_SCRIPT,
        ],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    header = "# Generated by `make images-lock` (pip freeze in the image's Python). Do not edit.\n"
    (airflow_dir / "constraints.txt").write_text(header + result.stdout)
    log(f"wrote {len(result.stdout.splitlines())} pins to images/airflow/constraints.txt")


STALE_TAG = re.compile(r"^\d+\.\d+\.\d+[^:]*-[0-9a-f]{12}$")  # what image_tag() makes (not IMAGES_TAG)


def stale_refs(refs: list[str], keep_tags: set[str]) -> list[str]:
    """The refs of this project's images (any registry prefix) whose content-hash tag is not kept."""
    prefix = f"{config.repository_prefix()}/"
    stale = []
    for ref in refs:
        repository, _, tag = ref.rpartition(":")
        ours = repository.startswith(prefix) or f"/{prefix}" in repository
        if ours and STALE_TAG.match(tag) and tag not in keep_tags:
            stale.append(ref)
    return stale


def prune(tag: str) -> None:
    """Removes this project's images of every other content tag than the current ones.

    Every source change makes a new tag of every image (about 2.5 GB, partly shared); on a machine
    that runs CI from clean clones day after day they pile up until a `kind load` finds no room.
    Images a container still uses are kept (docker refuses them without -f)."""
    from scripts import registry

    keep = {tag, registry.registry_image()[1]}
    listed = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"],
        check=True,
        capture_output=True,
        text=True,
    )
    stale = stale_refs(listed.stdout.split(), keep)
    before = free_gib(docker_root_dir())
    removed = [
        ref for ref in stale if subprocess.run(["docker", "rmi", ref], capture_output=True).returncode == 0
    ]
    # No `docker image prune`: the untagged images it removes include the build stages of the
    # multi-stage Dockerfiles (the Go compiles of test-servers), the layer cache of the next build.
    log(
        f"pruned {len(removed)} of {len(stale)} stale image refs (kept tags {sorted(keep)}); "
        f"free under Docker's data root {before:.1f} -> {free_gib(docker_root_dir()):.1f} GiB"
    )
