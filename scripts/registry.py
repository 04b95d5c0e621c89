"""The local OCI registry: `python -m scripts registry up|down|push` (make registry, make push).

A real registry for the local path, as production has one: Debian's Docker distribution registry
(images/registry, a tool image the chart never references) in the container REGISTRY_CONTAINER on
kind's Docker network, published on the host as REGISTRY_HOST (127.0.0.1 only), TLS and htpasswd auth
on every request. Generated once per machine under .cache/registry/ (directory 0700, secrets 0600):

- ca.crt/ca.key: a local CA (openssl; kept, so nodes and clients trust it across runs);
- tls.crt/tls.key: the registry's certificate, SAN = every name it is reached by (REGISTRY_HOST's
  `localhost`, 127.0.0.1, ::1 and the container's name on the kind network), re-issued when the
  names change or it nears expiry;
- credentials.json: the one user and its random password; htpasswd: its bcrypt hash (made by the
  `htpasswd` of the registry image: the registry accepts only bcrypt);
- certs.d/: containerd's registry host directory (hosts.toml + ca.crt) that the kind nodes mount at
  /etc/containerd/certs.d in registry mode (PLATFORM_REGISTRY=1, scripts/cluster.py): a node asked for
  REGISTRY_HOST/... pulls from https://REGISTRY_CONTAINER:5000 verifying that CA (kind's
  local-registry pattern, with TLS);
- docker/ and helm-registry.json: the client logins, kept here rather than in ~/.docker or ~/.config.

`push` tags and pushes every platform image with the computed tag (scripts/images.py) and the packaged
chart (`helm push`) to oci://REGISTRY_HOST/charts. The Docker daemon is told to trust the CA through
/etc/docker/certs.d/REGISTRY_HOST/ca.crt (read per connection, no restart).

Stdlib + openssl at import time: scripts/cluster.py writes the node files before the venv exists.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from scripts import config
from scripts.common import Logger, docker_answers, exclusive, run, wait_until

DIR = config.REGISTRY_DIR
CA_CERT = DIR / "ca.crt"
CA_KEY = DIR / "ca.key"
TLS_CERT = DIR / "tls.crt"
TLS_KEY = DIR / "tls.key"
TLS_NAMES = DIR / "tls.names"  # the SAN the certificate was issued for
CREDENTIALS = DIR / "credentials.json"
HTPASSWD = DIR / "htpasswd"
CERTS_D = DIR / "certs.d"
DOCKER_CONFIG = DIR / "docker"
HELM_REGISTRY_CONFIG = DIR / "helm-registry.json"
CHART_PACKAGE_DIR = DIR / "charts"
PULL_VALUES = DIR / "pull-credentials.values.yaml"  # the kind release's images.* in registry mode (0600)
USERNAME = config.PROJECT
DATA_VOLUME = f"{config.REGISTRY_CONTAINER}-data"
CONFIG_LABEL = "airflow-platform.io/registry-config"
REGISTRY_UID = 10003  # images/registry/Dockerfile: USER 10003
NODE_CERTS_D = "/etc/containerd/certs.d"
# The container is the machine's, so its lock is too: every checkout and e2e lane starts, logs in to and
# pushes the chart to the same registry (common.exclusive).
MACHINE_LOCK = config.MACHINE_CACHE / "registry.lock"
DOCKER_CERTS_D = Path(os.environ.get("DOCKER_CERTS_D", "/etc/docker/certs.d"))
CHART_REPOSITORY = "charts"  # oci://REGISTRY_HOST/charts/<chart name>
CA_DAYS = 3650
TLS_DAYS = 365
RENEW_WITHIN_S = 30 * 86400
READY_TIMEOUT_S = 60
log = Logger("registry")


# --- files ------------------------------------------------------------------------------------------


def host_names() -> list[str]:
    """subjectAltName entries of the registry's certificate."""
    host = config.REGISTRY_HOST.rsplit(":", 1)[0]
    dns = dict.fromkeys([host, "localhost", config.REGISTRY_CONTAINER])
    return [*(f"DNS:{name}" for name in dns), "IP:127.0.0.1", "IP:::1"]


def write_private(path: Path, content: str | bytes, *, owner_uid: int | None = None) -> None:
    """Writes a secret 0600 (atomically); owned by `owner_uid` (the registry's user) where we may chown."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    data = content.encode() if isinstance(content, str) else content
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(temporary, 0o600)
    if owner_uid is not None:
        if os.geteuid() == 0:
            os.chown(temporary, owner_uid, owner_uid)
        else:
            # Not root: the container's user must still read the bind-mounted file. Its directory
            # (0700) keeps other host users out; the container does not see that directory.
            os.chmod(temporary, 0o644)
    temporary.replace(path)


def ensure_dir() -> None:
    DIR.mkdir(parents=True, exist_ok=True)
    os.chmod(DIR, 0o700)


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def certificate_valid(path: Path) -> bool:
    """The certificate exists and does not expire within RENEW_WITHIN_S."""
    if not path.exists():
        return False
    result = subprocess.run(
        ["openssl", "x509", "-noout", "-checkend", str(RENEW_WITHIN_S), "-in", str(path)], capture_output=True
    )
    return result.returncode == 0


def ensure_ca() -> bool:
    """A local CA (EC P-256), made once; True when it was (re)made."""
    if certificate_valid(CA_CERT) and CA_KEY.exists():
        return False
    with tempfile.TemporaryDirectory() as scratch:
        conf = Path(scratch) / "ca.cnf"
        conf.write_text(
            "[req]\ndistinguished_name = dn\nx509_extensions = ca\nprompt = no\n"
            f"[dn]\nCN = {config.PROJECT} local registry CA\n"
            "[ca]\nbasicConstraints = critical, CA:TRUE, pathlen:0\n"
            "keyUsage = critical, keyCertSign, cRLSign\nsubjectKeyIdentifier = hash\n"
        )
        key, cert = Path(scratch) / "ca.key", Path(scratch) / "ca.crt"
        openssl(
            "req", "-x509", "-config", str(conf), "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", str(CA_DAYS), "-sha256",
        )  # fmt: skip
        write_private(CA_KEY, key.read_bytes())
        CA_CERT.write_bytes(cert.read_bytes())
    TLS_NAMES.unlink(missing_ok=True)  # a new CA: re-issue the server certificate
    return True


def ensure_server_certificate() -> bool:
    """The registry's certificate, signed by the CA, for host_names(); True when (re)issued."""
    names = ",".join(host_names())
    current = TLS_NAMES.read_text().strip() if TLS_NAMES.exists() else ""
    if current == names and certificate_valid(TLS_CERT) and TLS_KEY.exists():
        return False
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        (work / "ext.cnf").write_text(
            "basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n"
            "extendedKeyUsage = serverAuth\nsubjectKeyIdentifier = hash\n"
            f"authorityKeyIdentifier = keyid\nsubjectAltName = {names}\n"
        )
        openssl(
            "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(work / "tls.key"), "-out", str(work / "tls.csr"),
            "-subj", f"/CN={config.REGISTRY_CONTAINER}",
        )  # fmt: skip
        openssl(
            "x509", "-req", "-in", str(work / "tls.csr"), "-CA", str(CA_CERT), "-CAkey", str(CA_KEY),
            "-set_serial", f"0x{secrets.token_hex(16)}", "-days", str(TLS_DAYS), "-sha256",
            "-extfile", str(work / "ext.cnf"), "-out", str(work / "tls.crt"),
        )  # fmt: skip
        write_private(TLS_KEY, (work / "tls.key").read_bytes(), owner_uid=REGISTRY_UID)
        TLS_CERT.write_bytes((work / "tls.crt").read_bytes())
    TLS_NAMES.write_text(names + "\n")
    return True


def credentials() -> dict[str, str]:
    """The registry's one user and its password, generated once (credentials.json, 0600)."""
    if not CREDENTIALS.exists():
        ensure_dir()
        write_private(CREDENTIALS, json.dumps({"username": USERNAME, "password": secrets.token_urlsafe(24)}))
    return json.loads(CREDENTIALS.read_text())


def hosts_toml() -> str:
    """containerd's hosts.toml for REGISTRY_HOST: pull from the registry container, verify its CA."""
    upstream = f"https://{config.REGISTRY_CONTAINER}:{config.REGISTRY_CONTAINER_PORT}"
    return (
        f"# {config.REGISTRY_HOST}/... is served by the registry container on the kind network\n"
        f'server = "{upstream}"\n\n'
        f'[host."{upstream}"]\n'
        '  capabilities = ["pull", "resolve"]\n'
        f'  ca = "{NODE_CERTS_D}/{config.REGISTRY_HOST}/ca.crt"\n'
    )


def ensure_node_files() -> Path:
    """CA, certificate and the nodes' containerd host directory; returns that directory (certs.d)."""
    ensure_dir()
    ensure_ca()
    ensure_server_certificate()
    host_dir = CERTS_D / config.REGISTRY_HOST
    host_dir.mkdir(parents=True, exist_ok=True)
    (host_dir / "hosts.toml").write_text(hosts_toml())
    (host_dir / "ca.crt").write_bytes(CA_CERT.read_bytes())
    return CERTS_D


# --- the container ----------------------------------------------------------------------------------


def docker(*args: str, capture: bool = True, check: bool = True, **kwargs: object) -> str:
    return run("docker", *args, capture=capture, check=check, **kwargs)


def registry_image() -> tuple[config.Image, str]:
    from scripts import images

    image = config.tool_image("registry")
    return image, images.image_tag(of=(image,))


def ensure_image() -> str:
    """The registry image, built (layer cache makes a rebuild cheap) when its tag is missing."""
    from scripts import images

    image, tag = registry_image()
    if not images.image_exists(image.ref(tag)):
        images.build([image], tag)
    return image.ref(tag)


def ensure_htpasswd(image_ref: str) -> None:
    """htpasswd of the generated user (bcrypt, by the image's htpasswd), remade when the password changes."""
    user = credentials()
    stamp = hashlib.sha256(json.dumps(user, sort_keys=True).encode()).hexdigest()
    stamp_file = DIR / "htpasswd.for"
    if HTPASSWD.exists() and stamp_file.exists() and stamp_file.read_text().strip() == stamp:
        return
    line = docker(
        "run", "--rm", "-i", "--network", "none", "--entrypoint", "htpasswd", image_ref,
        "-iBn", "-C", "10", user["username"],
        input=user["password"],
    ).strip()  # fmt: skip
    if not line.startswith(f"{user['username']}:$2"):
        raise RuntimeError(f"htpasswd in {image_ref} printed no bcrypt entry")
    write_private(HTPASSWD, line + "\n", owner_uid=REGISTRY_UID)
    stamp_file.write_text(stamp + "\n")


def docker_succeeds(*args: str) -> bool:
    return subprocess.run(["docker", *args], capture_output=True, env=config.tool_env()).returncode == 0


def ensure_network() -> None:
    """kind's Docker network, created as kind creates it when missing (kind then reuses it)."""
    if docker_succeeds("network", "inspect", config.KIND_NETWORK):
        return
    options = ["-d=bridge", "-o", "com.docker.network.bridge.enable_ip_masquerade=true"]
    options += ["-o", "com.docker.network.driver.mtu=1500"]
    ipv6 = ["--ipv6", "--subnet", "fc00:f853:ccd:e793::/64"]
    log(f"creating the Docker network {config.KIND_NETWORK} (as kind does)")
    if not docker_succeeds("network", "create", *options, *ipv6, config.KIND_NETWORK):
        docker("network", "create", *options, config.KIND_NETWORK)  # no IPv6 on this host


def run_arguments(image_ref: str) -> list[str]:
    """`docker run` arguments of the registry container (read-only, no capabilities, loopback only)."""
    mount = "type=bind,readonly,source={},target=/etc/docker/registry/{}"
    return [
        "--detach", "--name", config.REGISTRY_CONTAINER, "--restart", "unless-stopped",
        "--network", config.KIND_NETWORK,
        "--publish", f"127.0.0.1:{config.REGISTRY_PORT}:{config.REGISTRY_CONTAINER_PORT}",
        "--mount", f"type=volume,source={DATA_VOLUME},target=/var/lib/docker-registry",
        "--mount", mount.format(TLS_CERT, "tls/tls.crt"),
        "--mount", mount.format(TLS_KEY, "tls/tls.key"),
        "--mount", mount.format(HTPASSWD, "auth/htpasswd"),
        "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        image_ref,
    ]  # fmt: skip


def configuration_stamp(image_ref: str) -> str:
    """Changes with the image or any mounted file: a container with another stamp is recreated."""
    digest = hashlib.sha256(json.dumps(run_arguments(image_ref)).encode())
    for path in (TLS_CERT, TLS_KEY, HTPASSWD):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def container_stamp() -> str | None:
    """The running registry container's stamp, None when there is no running container."""
    found = docker(
        "inspect", "-f", f'{{{{.State.Running}}}} {{{{index .Config.Labels "{CONFIG_LABEL}"}}}}',
        config.REGISTRY_CONTAINER, check=False,
    ).split()  # fmt: skip
    return found[1] if len(found) == 2 and found[0] == "true" else None


def ssl_context() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(CA_CERT))


def answers() -> bool:
    """The registry answers /v2/ over verified TLS (401 without credentials: it is up)."""
    try:
        urllib.request.urlopen(f"https://{config.REGISTRY_HOST}/v2/", timeout=5, context=ssl_context())
    except urllib.error.HTTPError as error:
        return error.code == 401
    except (urllib.error.URLError, OSError):
        return False
    return False  # 200 without credentials: auth is off, not our registry


def trust_ca_in_docker() -> None:
    """The Docker daemon verifies the registry with the CA (certs.d is read per connection)."""
    target = DOCKER_CERTS_D / config.REGISTRY_HOST / "ca.crt"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(CA_CERT.read_bytes())
    except PermissionError:
        log(f"WARNING: cannot write {target}: copy {CA_CERT} there (as root) so Docker verifies the registry")


def up() -> None:
    """The registry container, running and answering (idempotent: an unchanged one is kept; one caller at
    a time, so two never replace each other's container)."""
    with exclusive(MACHINE_LOCK):
        _up()


def _up() -> None:
    start = time.monotonic()
    with log.phase("files (CA, certificate, credential)"):
        ensure_node_files()
        credentials()
    with log.phase("image"):
        image_ref = ensure_image()
        ensure_htpasswd(image_ref)
    ensure_network()
    stamp = configuration_stamp(image_ref)
    if container_stamp() == stamp:
        log(f"{config.REGISTRY_CONTAINER} is running with this configuration: kept")
    else:
        docker("rm", "--force", config.REGISTRY_CONTAINER, check=False)
        log(f"starting {config.REGISTRY_CONTAINER} ({image_ref}) on network {config.KIND_NETWORK}")
        arguments = run_arguments(image_ref)
        docker("run", "--label", f"{CONFIG_LABEL}={stamp}", *arguments)
    wait_until(answers, f"the registry to answer https://{config.REGISTRY_HOST}/v2/", READY_TIMEOUT_S, 1)
    trust_ca_in_docker()
    log(
        f"registry https://{config.REGISTRY_HOST} ready in {time.monotonic() - start:.0f} s "
        f"(user {USERNAME}, password in {CREDENTIALS.relative_to(config.ROOT)}, "
        f"CA {CA_CERT.relative_to(config.ROOT)})"
    )


def down() -> None:
    """Removes the container; the data volume and .cache/registry/ stay (the next `up` reuses them)."""
    if not docker_answers():
        log(f"docker engine not running: no {config.REGISTRY_CONTAINER} to remove")
        return
    docker("rm", "--force", config.REGISTRY_CONTAINER, check=False)
    log(f"{config.REGISTRY_CONTAINER} removed (kept: volume {DATA_VOLUME}, {DIR.relative_to(config.ROOT)}/)")


# --- push -------------------------------------------------------------------------------------------


def client_env() -> dict[str, str]:
    """The tools' environment with the registry logins kept under .cache/registry/."""
    return {**config.tool_env(), "DOCKER_CONFIG": str(DOCKER_CONFIG)}


def login() -> None:
    """docker and helm logins into .cache/registry/ (one writer at a time: each rewrites its file)."""
    with exclusive(MACHINE_LOCK):
        _login()


def _login() -> None:
    user = credentials()
    DOCKER_CONFIG.mkdir(mode=0o700, exist_ok=True)
    env = client_env()
    run(
        "docker", "login", config.REGISTRY_HOST, "--username", user["username"], "--password-stdin",
        input=user["password"], env=env, capture=True,
    )  # fmt: skip
    run(
        "helm", "registry", "login", config.REGISTRY_HOST, "--username", user["username"], "--password-stdin",
        "--ca-file", str(CA_CERT), "--registry-config", str(HELM_REGISTRY_CONFIG),
        input=user["password"], env=env, capture=True,
    )  # fmt: skip


def push_images(tag: str, only: list[config.Image] | None = None) -> list[str]:
    """Tags and pushes every platform image, or `only` these (built first where missing); returns the
    references."""
    from scripts import images

    every = list(only if only is not None else config.images())
    missing = [image for image in every if not images.image_exists(image.ref(tag))]
    if missing:
        log(f"not built yet for tag {tag}: {[image.name for image in missing]}; building them first")
        images.build(missing, tag)
    pushed = []
    for index, image in enumerate(every, start=1):
        started = time.monotonic()
        target = f"{config.REGISTRY_HOST}/{image.ref(tag)}"
        log(f"({index}/{len(every)}) pushing {target}")
        run("docker", "tag", image.ref(tag), target)
        output = run("docker", "push", target, capture=True, env=client_env())
        digest = next((word for word in output.split() if word.startswith("sha256:")), "?")
        log(f"({index}/{len(every)}) {image.name}: {digest} in {time.monotonic() - started:.0f} s")
        pushed.append(target)
    return pushed


def docker_config_json() -> str:
    """A `.dockerconfigjson` with the registry credential (for pods outside the chart's namespaces)."""
    user = credentials()
    auth = base64.b64encode(f"{user['username']}:{user['password']}".encode()).decode()
    return json.dumps({"auths": {config.REGISTRY_HOST: {"auth": auth}}})


def pull_values_file() -> Path:
    """A values file pointing the chart at the local registry with its credential: in a file, not on the
    command line (where `ps` shows it), and at a stable path with stable content, so the install
    fingerprint of a second `make up` does not change."""
    values = {"images": {"registry": config.REGISTRY_HOST, "pullCredentials": credentials()}}
    content = json.dumps(values, indent=2) + "\n"  # JSON is YAML
    if not PULL_VALUES.exists() or PULL_VALUES.read_text() != content:
        write_private(PULL_VALUES, content)
    return PULL_VALUES


def push_for_install(tag: str) -> None:
    """`make up` in registry mode: the registry up and logged in, the images of `tag` pushed (the nodes
    pull them with the release's credential instead of `kind load`)."""
    up()
    login()
    push_images(tag)


def chart_reference() -> str:
    return f"oci://{config.REGISTRY_HOST}/{CHART_REPOSITORY}"


def push_chart() -> str:
    """`helm package` the chart and `helm push` it as an OCI artifact; returns the chart's reference.
    One at a time: the package file is replaced by each."""
    with exclusive(MACHINE_LOCK):
        return _push_chart()


def _push_chart() -> str:
    started = time.monotonic()
    CHART_PACKAGE_DIR.mkdir(exist_ok=True)
    metadata = config.chart_metadata()
    package = CHART_PACKAGE_DIR / f"{metadata['name']}-{metadata['version']}.tgz"
    package.unlink(missing_ok=True)
    run("helm", "package", str(config.CHART), "--destination", str(CHART_PACKAGE_DIR), capture=True)
    run(
        "helm", "push", str(package), chart_reference(), "--ca-file", str(CA_CERT),
        "--registry-config", str(HELM_REGISTRY_CONFIG), capture=True, env=client_env(),
    )  # fmt: skip
    reference = f"{chart_reference()}/{metadata['name']}"
    log(f"chart {reference} --version {metadata['version']} pushed in {time.monotonic() - started:.0f} s")
    return reference


def push() -> None:
    """Every platform image and the chart into the running registry (started first if needed)."""
    from scripts import images

    if not answers():
        up()
    trust_ca_in_docker()
    tag = images.image_tag()
    with log.phase(f"login to {config.REGISTRY_HOST}"):
        login()
    with log.phase(f"images (tag {tag})"):
        push_images(tag)
    with log.phase("chart"):
        reference = push_chart()
    log(
        f"install with: helm upgrade --install {config.RELEASE} {reference} --version "
        f"{config.chart_metadata()['version']} -n {config.AIRFLOW_NAMESPACE} --create-namespace "
        f"--ca-file {CA_CERT.relative_to(config.ROOT)} --registry-config "
        f"{HELM_REGISTRY_CONFIG.relative_to(config.ROOT)} --set images.registry={config.REGISTRY_HOST} "
        f"--set images.tag={tag} (plus the pull credential, README: Install from a registry)"
    )
