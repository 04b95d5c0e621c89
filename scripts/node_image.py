"""Builds a kind node image for KUBERNETES_VERSION from the Go module proxy and Debian apt alone.

Phases (each cached, each printed with its duration):
  binaries    Kubernetes (scripts/k8s/build-binaries.sh), containerd, CoreDNS, CNI plugins,
              local-path-provisioner (`go install module@version`), etcd, pause and podnet (modules
              under scripts/node-image/go/), each in
              ~/.cache/airflow-platform/node-image/bin-<go toolchain>/<name>-<version or hash>.
  rootfs      debootstrap of the node's Debian root filesystem, cached as a tarball, `docker import`ed.
  images      one image per control-plane component, tagged exactly as `kubeadm config images list`
              prints them, plus podnet (CNI + NetworkPolicy), local-path-provisioner and its helper.
  node        base + binaries + scripts/node-image/files/, every image imported into containerd's
              k8s.io namespace and pinned, then `docker commit` with the entrypoint.
Every image carries a build-key label (a hash of its inputs), so an unchanged input rebuilds nothing.
On a machine that reaches the registries the official kindest/node image is used instead
(NODE_IMAGE_SOURCE=build|official overrides the detection). Stdlib only: runs before the venv exists.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path

from scripts import config
from scripts.common import Logger

HERE = config.ROOT / "scripts" / "node-image"  # the node's files, Go modules and kube-proxy wrapper
ROOT = config.ROOT
CACHE = config.CACHE / "node-image"
# Binaries are named by version (or source hash) and built by one Go toolchain: shared by checkouts.
BIN = config.MACHINE_CACHE / "node-image" / f"bin-{config.VERSIONS['GO_TOOLCHAIN_VERSION']}"
FILES = HERE / "files"
CURRENT_IMAGE_FILE = CACHE / "current-image"
KEY_LABEL = "airflow-platform.io/build-key"
PREFIX = f"{config.PROJECT}/kind"  # every image this module builds: <PREFIX>-node, <PREFIX>-podnet...
NODE_REPOSITORY = f"{PREFIX}-node"
VERSIONS = config.VERSIONS
K8S_VERSION = VERSIONS["KUBERNETES_VERSION"]
SUITE = VERSIONS["DEBIAN_SUITE"]
log = Logger("node-image")
phase = log.phase


def run(*args: str | Path, capture: bool = False, **kwargs: object) -> str:
    result = subprocess.run([str(a) for a in args], check=True, text=True, capture_output=capture, **kwargs)
    return result.stdout if capture else ""


def digest(*parts: str | bytes | Path) -> str:
    """Hash of strings, bytes, files and directory trees (paths and contents)."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            files = sorted(p for p in part.rglob("*") if p.is_file()) if part.is_dir() else [part]
            for file in files:
                h.update(str(file.relative_to(part.parent)).encode())
                h.update(file.read_bytes())
                h.update(str(file.stat().st_mode & 0o111).encode())
        else:
            h.update(part if isinstance(part, bytes) else part.encode())
    return h.hexdigest()[:16]


# --- binaries ------------------------------------------------------------------------------------
K8S_COMMANDS = [
    "kubeadm",
    "kubelet",
    "kubectl",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
]
GO_ENV = {**os.environ, "CGO_ENABLED": "0"}
GO_BUILD_FLAGS = ["-trimpath", "-ldflags", "-s -w"]


def k8s_binaries() -> Path:
    out = BIN / f"kubernetes-{K8S_VERSION}-{digest(ROOT / 'scripts' / 'k8s')}"
    missing = [name for name in K8S_COMMANDS if not (out / name).exists()]
    if missing:
        run(
            ROOT / "scripts/k8s/build-binaries.sh",
            out,
            *missing,
            env={**os.environ, "KUBERNETES_VERSION": K8S_VERSION},
        )
    return out


def go_install(name: str, version: str, *packages: str, tags: str = "") -> Path:
    """`go install pkg@version` for each package into BIN/<name>-<version>."""
    out = BIN / f"{name}-{version}"
    binaries = [out / p.rsplit("/", 1)[-1] for p in packages]
    if all(b.exists() for b in binaries):
        return out
    log(f"go install {name} {version}")
    flags = [*GO_BUILD_FLAGS, *(["-tags", tags] if tags else [])]
    run("go", "install", *flags, *(f"{p}@{version}" for p in packages), env={**GO_ENV, "GOBIN": str(out)})
    return out


def go_build_local(name: str) -> Path:
    """Builds the module go/<name> (committed go.mod pins its dependencies) into a source-keyed dir."""
    source = HERE / "go" / name
    out = BIN / f"{name}-{digest(source)}"
    if not (out / name).exists():
        if any(source.glob("*_test.go")):
            log(f"go test {name}")
            run("go", "test", "./...", cwd=source, env=GO_ENV, stdout=subprocess.DEVNULL)
        log(f"go build {name}")
        run("go", "build", *GO_BUILD_FLAGS, "-o", out / name, ".", cwd=source, env=GO_ENV)
    return out


def build_binaries() -> dict[str, Path]:
    cni = "github.com/containernetworking/plugins/plugins"
    containerd = "github.com/containerd/containerd/v2/cmd"
    return {
        "kubernetes": k8s_binaries(),
        "containerd": go_install(
            "containerd",
            VERSIONS["CONTAINERD_VERSION"],
            f"{containerd}/containerd",
            f"{containerd}/ctr",
            f"{containerd}/containerd-shim-runc-v2",
            tags="no_btrfs no_devmapper no_zfs no_aufs",
        ),
        "coredns": go_install("coredns", VERSIONS["COREDNS_VERSION"], "github.com/coredns/coredns"),
        "cni": go_install(
            "cni-plugins",
            VERSIONS["CNI_PLUGINS_VERSION"],
            f"{cni}/main/ptp",
            f"{cni}/main/loopback",
            f"{cni}/ipam/host-local",
            f"{cni}/meta/portmap",
        ),
        "local-path": go_install(
            "local-path-provisioner",
            VERSIONS["LOCAL_PATH_PROVISIONER_VERSION"],
            "github.com/rancher/local-path-provisioner",
        ),
        "etcd": go_build_local("etcd"),
        "pause": go_build_local("pause"),
        "podnet": go_build_local("podnet"),
    }


# --- docker helpers ------------------------------------------------------------------------------
def image_key(ref: str) -> str | None:
    """The build-key label of a local image, or None when the image does not exist."""
    result = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", ref],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        return None
    return (json.loads(result.stdout) or {}).get(KEY_LABEL, "")


def docker_build(ref: str, dockerfile: str, context: dict[str, Path], key: str) -> None:
    """Builds ref from a Dockerfile and files (name in context -> source path) unless up to date."""
    if image_key(ref) == key:
        log(f"{ref} up to date")
        return
    log(f"building {ref}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, source in context.items():
            shutil.copy(source, Path(tmp) / name)
        (Path(tmp) / "Dockerfile").write_text(f"{dockerfile}\nLABEL {KEY_LABEL}={key}\n")
        build = subprocess.run(["docker", "build", "-q", "-t", ref, tmp], capture_output=True, text=True)
        if build.returncode != 0:
            raise RuntimeError(f"docker build {ref} failed:\n{build.stdout}{build.stderr}")


# --- rootfs --------------------------------------------------------------------------------------
def build_rootfs() -> str:
    packages = VERSIONS["NODE_PACKAGES"]
    key = digest(SUITE, packages)
    ref = f"{PREFIX}-node-base:{SUITE}-{key}"
    if image_key(ref) is not None:
        log(f"{ref} up to date")
        return ref
    tarball = CACHE / f"rootfs-{SUITE}-{key}.tar"
    if not tarball.exists():
        ensure_debootstrap()
        with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
            target = Path(tmp) / "rootfs"
            log(f"debootstrap {SUITE} with {packages}")
            run(
                "debootstrap",
                "--variant=minbase",
                f"--include={packages}",
                SUITE,
                target,
                "http://deb.debian.org/debian",
            )
            run(
                "rm", "-rf", *target.glob("var/cache/apt/archives/*.deb"), *target.glob("var/lib/apt/lists/*")
            )
            run("tar", "-C", target, "--numeric-owner", "-cf", f"{tarball}.part", ".")
            os.rename(f"{tarball}.part", tarball)
    log(f"docker import {ref}")
    run("docker", "import", "--change", f"LABEL {KEY_LABEL}={key}", tarball, ref, stdout=subprocess.DEVNULL)
    return ref


def ensure_debootstrap() -> None:
    """Installs debootstrap from apt when missing (Debian/Ubuntu as root), else says what to do."""
    if shutil.which("debootstrap"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        sys.exit("debootstrap is missing: install it (apt-get install debootstrap) and run again")
    log("installing debootstrap (apt)")
    run("apt-get", "update", "-qq", stdout=subprocess.DEVNULL)
    run("apt-get", "install", "-y", "--no-install-recommends", "debootstrap", stdout=subprocess.DEVNULL)


# --- component images ----------------------------------------------------------------------------
def kubeadm_images(kubeadm: Path) -> dict[str, str]:
    """Image name (kube-apiserver, etcd, coredns, pause...) -> reference kubeadm expects."""
    out = run(kubeadm, "config", "images", "list", "--kubernetes-version", K8S_VERSION, capture=True)
    refs = out.split()
    return {ref.rsplit("/", 1)[-1].split(":")[0]: ref for ref in refs}


SCRATCH_BINARY = (
    "FROM scratch\nENV PATH=/usr/local/bin\n"
    'COPY {name} /usr/local/bin/{name}\nENTRYPOINT ["/usr/local/bin/{name}"]'
)
ON_BASE_BINARY = 'FROM {base}\nCOPY {name} /usr/local/bin/{name}\nENTRYPOINT ["/usr/local/bin/{name}"]'
# kube-proxy runs iptables with the backend (legacy or nft) the node uses: a wrapper picks it.
IPTABLES_WRAPPER = HERE / "images" / "kube-proxy" / "iptables-wrapper"
KUBE_PROXY = ON_BASE_BINARY + (
    "\nCOPY iptables-wrapper /usr/sbin/iptables-wrapper\n"
    "RUN for name in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; "
    "do ln -sf iptables-wrapper /usr/sbin/$name; done"
)


def build_images(bins: dict[str, Path], base: str) -> list[str]:
    """Builds every image the node needs; returns their references."""
    kube = bins["kubernetes"]
    expected = kubeadm_images(kube / "kubeadm")
    specs: dict[str, tuple[str, Path]] = {  # reference -> (Dockerfile template, binary)
        expected["kube-apiserver"]: (SCRATCH_BINARY, kube / "kube-apiserver"),
        expected["kube-controller-manager"]: (SCRATCH_BINARY, kube / "kube-controller-manager"),
        expected["kube-scheduler"]: (SCRATCH_BINARY, kube / "kube-scheduler"),
        # kube-proxy programs iptables/nftables through their command-line tools
        expected["kube-proxy"]: (KUBE_PROXY, kube / "kube-proxy"),
        expected["etcd"]: (SCRATCH_BINARY, bins["etcd"] / "etcd"),
        expected["coredns"]: (SCRATCH_BINARY, bins["coredns"] / "coredns"),
        expected["pause"]: (SCRATCH_BINARY, bins["pause"] / "pause"),
        # podnet runs `ip` and `nft`
        addon_ref("podnet", bins["podnet"]): (ON_BASE_BINARY, bins["podnet"] / "podnet"),
        addon_ref("local-path-provisioner", bins["local-path"]): (
            SCRATCH_BINARY,
            bins["local-path"] / "local-path-provisioner",
        ),
    }
    for ref, (template, binary) in specs.items():
        dockerfile = template.format(name=binary.name, base=base)
        context = {binary.name: binary}
        if template == KUBE_PROXY:
            context[IPTABLES_WRAPPER.name] = IPTABLES_WRAPPER
        docker_build(ref, dockerfile, context, digest(dockerfile, *context.values()))
    helper = helper_ref(base)
    run("docker", "tag", base, helper)
    return [*specs, helper]


def addon_ref(name: str, binary_dir: Path) -> str:
    return f"{PREFIX}-{name}:{binary_dir.name.rsplit('-', 1)[-1]}"


def helper_ref(base: str) -> str:
    """local-path-provisioner's helper pod only needs a shell: the node base image is one."""
    return f"{PREFIX}-local-path-helper:" + base.rsplit(":", 1)[-1]


# --- node image ----------------------------------------------------------------------------------
def node_files(bins: dict[str, Path], images: list[str], pause: str) -> bytes:
    """A tar of everything copied into the node: binaries, systemd units, configs, kind manifests."""
    by_prefix = {ref.split(":")[0]: ref for ref in images}
    substitutions = {
        "@PAUSE_IMAGE@": pause,
        "@PODNET_IMAGE@": by_prefix[f"{PREFIX}-podnet"],
        "@LOCAL_PATH_IMAGE@": by_prefix[f"{PREFIX}-local-path-provisioner"],
        "@HELPER_IMAGE@": by_prefix[f"{PREFIX}-local-path-helper"],
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for source in sorted(p for p in FILES.rglob("*") if p.is_file()):
            text = source.read_text()
            for marker, value in substitutions.items():
                text = text.replace(marker, value)
            add_bytes(tar, str(source.relative_to(FILES)), text.encode(), source.stat().st_mode & 0o777)
        add_bytes(tar, "kind/version", f"{K8S_VERSION}\n".encode(), 0o644)
        for name in ("kubeadm", "kubelet", "kubectl"):
            tar.add(bins["kubernetes"] / name, f"usr/bin/{name}", filter=reproducible)
        for name in ("containerd", "ctr", "containerd-shim-runc-v2"):
            tar.add(bins["containerd"] / name, f"usr/local/bin/{name}", filter=reproducible)
        for plugin in sorted(bins["cni"].iterdir()):
            tar.add(plugin, f"opt/cni/bin/{plugin.name}", filter=reproducible)
    return buffer.getvalue()


def reproducible(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Same content, same tar: the node image's build key must not depend on file times or owners."""
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "root", "root"
    return info


def add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


# Shell run inside the build container: systemd as a container init, then the images into containerd.
SYSTEMD_SETUP = """
set -eu
rm -f /etc/systemd/system/*.wants/* /lib/systemd/system/multi-user.target.wants/* \
  /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/basic.target.wants/* \
  /lib/systemd/system/sockets.target.wants/*udev* /lib/systemd/system/sockets.target.wants/*initctl*
find /lib/systemd/system/sysinit.target.wants/ -name systemd-tmpfiles-setup.service -delete
echo ReadKMsg=no >> /etc/systemd/journald.conf
systemctl enable kubelet.service containerd.service >/dev/null 2>&1
systemctl mask systemd-binfmt.service >/dev/null 2>&1
mkdir -p /etc/kubernetes/manifests /etc/cni/net.d /var/lib/containerd
containerd --version
"""


def build_node(bins: dict[str, Path], base: str, images: list[str], expected: dict[str, str]) -> str:
    image_ids = run("docker", "image", "inspect", "--format", "{{.Id}}", *images, capture=True)
    files = node_files(bins, images, expected["pause"])
    key = digest(base, image_ids, files)
    ref = f"{NODE_REPOSITORY}:{K8S_VERSION}"
    if image_key(ref) == key:
        log(f"{ref} up to date")
        return ref
    previous = image_id(ref)
    name = f"{config.PROJECT}-node-build-{os.getpid()}"
    run(
        "docker",
        "run",
        "-d",
        "--privileged",
        "--name",
        name,
        "--entrypoint",
        "sleep",
        base,
        "infinity",
        stdout=subprocess.DEVNULL,
    )
    try:
        subprocess.run(["docker", "cp", "-", f"{name}:/"], input=files, check=True)
        in_container(name, SYSTEMD_SETUP)
        import_images(name, images)
        run("docker", "commit", name, f"{ref}-unfinished", stdout=subprocess.DEVNULL)
        # docker 20.10's `commit --change` rejects STOPSIGNAL, so the image config comes from a build
        dockerfile = (
            f"FROM {ref}-unfinished\nENV container=docker\nSTOPSIGNAL SIGRTMIN+3\n"
            'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]\nCMD []\n'
        )
        docker_build(ref, dockerfile, {}, key)
        run("docker", "rmi", f"{ref}-unfinished", stdout=subprocess.DEVNULL)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    if previous and previous != image_id(ref):
        # the replaced node image is >1 GB; it stays only while a cluster still uses it
        subprocess.run(["docker", "rmi", previous], capture_output=True)
    return ref


def image_id(ref: str) -> str | None:
    result = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", ref], capture_output=True, text=True
    )
    return result.stdout.strip() if result.returncode == 0 else None


def in_container(container: str, script: str, *options: str) -> None:
    """Runs a bash script in the build container."""
    run("docker", "exec", *options, container, "bash", "-c", script)


def import_images(container: str, images: list[str]) -> None:
    """Starts containerd in the build container, imports and pins every image, stops containerd."""
    in_container(container, "containerd >/var/log/containerd-build.log 2>&1", "-d")
    in_container(
        container, "for i in $(seq 100); do ctr version >/dev/null 2>&1 && exit 0; sleep 0.1; done; exit 1"
    )
    log(f"importing {len(images)} images into containerd (namespace k8s.io, pinned)")
    save = subprocess.Popen(["docker", "save", *images], stdout=subprocess.PIPE)
    subprocess.run(
        [
            "docker",
            "exec",
            "-i",
            container,
            "ctr",
            "--namespace=k8s.io",
            "images",
            "import",
            "--label=io.cri-containerd.pinned=pinned",
            "--all-platforms",
            "--no-unpack",
            "--digests",
            "-",
        ],
        stdin=save.stdout,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    if save.wait() != 0:
        raise RuntimeError("docker save failed")
    listed = run(
        "docker", "exec", container, "ctr", "--namespace=k8s.io", "images", "list", "-q", capture=True
    )
    missing = [ref for ref in images if not any(line.endswith(ref) for line in listed.split())]
    if missing:
        raise RuntimeError(f"images missing in containerd after import: {missing}")
    in_container(container, "pkill containerd; while pgrep -x containerd >/dev/null; do sleep 0.1; done")


# --- source selection ----------------------------------------------------------------------------
def registries_reachable() -> bool:
    try:
        urllib.request.urlopen("https://registry.k8s.io/v2/", timeout=5)
        return True
    except urllib.error.HTTPError:
        return True  # an HTTP answer (even 401) means the registry is reachable
    except OSError:
        return False


def official_image() -> str | None:
    """kindest/node for the pinned Kubernetes version, or None when it cannot be pulled."""
    ref = f"kindest/node:{K8S_VERSION}"
    with phase(f"pull {ref}"):
        pulled = subprocess.run(["docker", "pull", ref]).returncode == 0
    return ref if pulled else None


def build_image() -> str:
    with phase("binaries"):
        bins = build_binaries()
    with phase("rootfs"):
        base = build_rootfs()
    with phase("images"):
        images = build_images(bins, base)
    with phase("node"):
        return build_node(bins, base, images, kubeadm_images(bins["kubernetes"] / "kubeadm"))


def main() -> int:
    source = os.environ.get("NODE_IMAGE_SOURCE", "auto")
    if source not in ("auto", "build", "official"):
        sys.exit(f"NODE_IMAGE_SOURCE must be auto, build or official, not {source!r}")
    if source == "auto":
        reachable = registries_reachable()
        log(f"registry.k8s.io {'reachable' if reachable else 'unreachable'}")
        source = "official" if reachable else "build"
    start = time.monotonic()
    CACHE.mkdir(parents=True, exist_ok=True)
    ref = official_image() if source != "build" else None
    if ref is None and os.environ.get("NODE_IMAGE_SOURCE") == "official":
        sys.exit(f"cannot pull kindest/node:{K8S_VERSION} (NODE_IMAGE_SOURCE=official)")
    if ref is None:
        if source == "official":
            log(f"no official kindest/node:{K8S_VERSION} for this kind release: building it")
        ref = build_image()
    CURRENT_IMAGE_FILE.write_text(ref + "\n")
    log(f"node image {ref} ready in {time.monotonic() - start:.1f} s")
    return 0
