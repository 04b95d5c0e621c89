"""The local registry's files and the kind wiring of registry mode (no Docker, no cluster): the CA and
certificate (openssl), the nodes' containerd hosts.toml, the kind config's patch and mounts."""

from __future__ import annotations

import stat
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from scripts import cluster, config, registry

PATHS = (
    "DIR", "CA_CERT", "CA_KEY", "TLS_CERT", "TLS_KEY", "TLS_NAMES", "CREDENTIALS", "HTPASSWD", "CERTS_D",
)  # fmt: skip


@pytest.fixture
def registry_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """registry.py's files under a temporary directory instead of .cache/registry."""
    home = tmp_path / "registry"
    for name in PATHS:
        relative = getattr(registry, name).relative_to(config.REGISTRY_DIR)
        monkeypatch.setattr(registry, name, home / relative)
    return home


def openssl_text(path: Path) -> str:
    return subprocess.run(
        ["openssl", "x509", "-noout", "-text", "-in", str(path)], check=True, capture_output=True, text=True
    ).stdout


def test_node_files_are_a_ca_a_certificate_for_every_registry_name_and_hosts_toml(registry_dir: Path) -> None:
    certs_d = registry.ensure_node_files()
    assert certs_d == registry_dir / "certs.d"
    text = openssl_text(registry.TLS_CERT)
    for name in ("DNS:localhost", f"DNS:{config.REGISTRY_CONTAINER}", "IP Address:127.0.0.1"):
        assert name in text
    assert "TLS Web Server Authentication" in text and "CA:FALSE" in text
    assert "CA:TRUE" in openssl_text(registry.CA_CERT)
    verified = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            str(registry.CA_CERT),
            "-purpose",
            "sslserver",
            str(registry.TLS_CERT),
        ],
        capture_output=True,
        text=True,
    )
    assert verified.returncode == 0, verified.stderr
    host_dir = certs_d / config.REGISTRY_HOST
    assert (host_dir / "ca.crt").read_bytes() == registry.CA_CERT.read_bytes()
    assert (host_dir / "hosts.toml").read_text() == registry.hosts_toml()


def test_secrets_are_private_and_the_directory_closed(registry_dir: Path) -> None:
    registry.ensure_node_files()
    user = registry.credentials()
    assert user["username"] == registry.USERNAME and len(user["password"]) >= 24
    assert stat.S_IMODE(registry_dir.stat().st_mode) == 0o700
    for path in (registry.CA_KEY, registry.CREDENTIALS):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert registry.credentials() == user  # generated once


def test_files_are_kept_and_the_certificate_reissued_only_when_the_names_change(
    registry_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.ensure_node_files()
    ca, certificate = registry.CA_CERT.read_bytes(), registry.TLS_CERT.read_bytes()
    assert not registry.ensure_ca() and not registry.ensure_server_certificate()
    assert registry.TLS_CERT.read_bytes() == certificate
    monkeypatch.setattr(registry, "host_names", lambda: ["DNS:localhost", "DNS:registry.example.test"])
    assert registry.ensure_server_certificate()
    assert "DNS:registry.example.test" in openssl_text(registry.TLS_CERT)
    assert registry.CA_CERT.read_bytes() == ca  # nodes and clients keep trusting the same CA


def test_hosts_toml_sends_the_registry_name_to_the_container_verifying_the_ca() -> None:
    hosts = tomllib.loads(registry.hosts_toml())
    upstream = f"https://{config.REGISTRY_CONTAINER}:{config.REGISTRY_CONTAINER_PORT}"
    assert hosts["server"] == upstream
    assert hosts["host"][upstream] == {
        "capabilities": ["pull", "resolve"],
        "ca": f"/etc/containerd/certs.d/{config.REGISTRY_HOST}/ca.crt",
    }


def test_kind_config_without_registry_mode_is_unchanged() -> None:
    plain = cluster.kind_config(cluster.load_pools())
    assert "containerdConfigPatches" not in plain
    assert not any("extraMounts" in node for node in plain["nodes"])


def test_kind_config_in_registry_mode_mounts_the_host_directory_on_every_node(tmp_path: Path) -> None:
    pools = cluster.load_pools()
    kind = cluster.kind_config(pools, tmp_path / "certs.d")
    assert len(kind["nodes"]) == 1 + len(pools)
    for node in kind["nodes"]:
        assert node["extraMounts"] == [
            {
                "hostPath": str(tmp_path / "certs.d"),
                "containerPath": "/etc/containerd/certs.d",
                "readOnly": True,
            }
        ]
    (patch,) = kind["containerdConfigPatches"]
    registry_settings = tomllib.loads(patch)["plugins"]["io.containerd.cri.v1.images"]["registry"]
    assert registry_settings == {"config_path": "/etc/containerd/certs.d"}
    assert yaml.safe_load(yaml.safe_dump(kind)) == kind  # what create_cluster writes for kind


def test_node_image_containerd_is_config_version_3_which_the_patch_addresses() -> None:
    node_config = tomllib.loads(
        (config.ROOT / "scripts/node-image/files/etc/containerd/config.toml").read_text()
    )
    assert node_config["version"] == 3
    assert "io.containerd.cri.v1.images" in node_config["plugins"]


@pytest.mark.parametrize(("value", "expected"), [("0", False), ("1", True)])
def test_registry_mode_switch(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    monkeypatch.setenv("PLATFORM_REGISTRY", value)
    assert config.registry_mode() is expected


def test_registry_mode_is_off_by_default_and_refuses_other_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PLATFORM_REGISTRY", raising=False)
    assert config.registry_mode() is False
    assert cluster.registry_certs_d() is None
    monkeypatch.setenv("PLATFORM_REGISTRY", "yes")
    with pytest.raises(ValueError, match="PLATFORM_REGISTRY must be 0 or 1, not 'yes'"):
        config.registry_mode()


def test_the_registry_container_is_locked_down_and_on_loopback_only() -> None:
    arguments = registry.run_arguments("r:1")
    joined = " ".join(arguments)
    assert f"--publish 127.0.0.1:{config.REGISTRY_PORT}:5000" in joined
    assert f"--network {config.KIND_NETWORK}" in joined
    assert "--read-only" in arguments and "--cap-drop ALL" in joined and "no-new-privileges" in joined
    assert joined.count("readonly,source=") == 3  # certificate, key, htpasswd
    assert arguments[-1] == "r:1"
