"""scripts/tools.sh keeps the Go-built tools in the machine's cache by version: a fresh clone copies
them instead of rebuilding (Prometheus alone is a long cold build), and never takes a cached binary
of another version. Runs the real script in a copy of the repository layout; the tools are small
scripts that answer `--version` the way the real ones do, and `go` is a stand-in that "builds" one
(the real Go proxy build takes minutes per tool)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from scripts import config

VERSIONS = config.VERSIONS
# the Go-built tools and the version each must report
WANT = {
    "kind": VERSIONS["KIND_VERSION"],
    "helm": VERSIONS["HELM_VERSION"],
    "kubectl": VERSIONS["KUBERNETES_VERSION"],
    "versitygw": VERSIONS["VERSITYGW_VERSION"],
    "prometheus": VERSIONS["PROMETHEUS_VERSION"],
}
# what each tool prints for the version query tools.sh makes of it
VERSION_OUTPUT = {
    "kind": f"kind {WANT['kind']} go1.26 linux/amd64",
    "helm": WANT["helm"],
    "kubectl": json.dumps({"clientVersion": {"gitVersion": WANT["kubectl"]}}),
    "versitygw": f"Version  : {WANT['versitygw']}",
    "prometheus": f"prometheus, version {WANT['prometheus']} (branch: HEAD)",
}


def fake_tool(path: Path, output: str) -> None:
    path.write_text(f"#!/bin/sh\ncat <<'EOF'\n{output}\nEOF\n")
    path.chmod(0o755)


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """A checkout with only scripts/tools.sh, readme-generator already installed, and a PATH that
    holds no real tool (only the system's utilities and a `go` that must not be reached unless a
    test puts its own first)."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(config.ROOT / "scripts" / "tools.sh", tmp_path / "scripts" / "tools.sh")
    bin_dir = tmp_path / ".tools" / "bin"
    bin_dir.mkdir(parents=True)
    fake_tool(bin_dir / "readme-generator", f"Version: {VERSIONS['README_GENERATOR_VERSION']}")
    path = tmp_path / "path"
    path.mkdir()
    (path / "go").write_text(
        "#!/bin/sh\necho 'go must not run: the tool should come from the cache' >&2\nexit 3\n"
    )
    (path / "go").chmod(0o755)
    return tmp_path


def run_tools(root: Path, extra_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    path = [str(p) for p in (extra_path, root / "path") if p] + ["/usr/bin", "/bin"]
    env = {
        **VERSIONS,
        "HOME": str(root),
        "PATH": ":".join(path),
        "MACHINE_CACHE": str(root / "machine-cache"),
        "TOOLS_SOURCE": "go",
    }
    return subprocess.run(
        ["bash", str(root / "scripts" / "tools.sh")], env=env, capture_output=True, text=True, check=False
    )


def cache(root: Path) -> Path:
    directory = root / "machine-cache" / "tools"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def cache_tools(root: Path, *, but: str | None = None) -> None:
    """Every tool at its pinned version in the machine's cache (except `but`), as an earlier clone left it."""
    for name, output in VERSION_OUTPUT.items():
        if name != but:
            fake_tool(cache(root) / f"{name}-{WANT[name]}", output)


def test_a_fresh_clone_copies_every_tool_from_the_machine_cache(sandbox: Path) -> None:
    cache_tools(sandbox)
    result = run_tools(sandbox)
    assert result.returncode == 0, result.stderr
    assert "installing" not in result.stdout
    for name in VERSION_OUTPUT:
        copied = sandbox / ".tools" / "bin" / name
        assert copied.read_text() == (cache(sandbox) / f"{name}-{WANT[name]}").read_text()
        assert os.access(copied, os.X_OK)


def test_a_cached_binary_of_another_version_is_never_used(sandbox: Path) -> None:
    cache_tools(sandbox)
    # a binary under the right name that reports another version (an older build renamed, a corrupt copy)
    fake_tool(cache(sandbox) / f"helm-{WANT['helm']}", "v3.0.0")
    result = run_tools(sandbox)
    assert result.returncode != 0
    assert "installing helm" in result.stdout
    assert "go must not run" in result.stderr
    assert not (sandbox / ".tools" / "bin" / "helm").exists()


def test_a_built_tool_is_kept_in_the_cache_for_the_next_clone(sandbox: Path) -> None:
    cache_tools(sandbox, but="prometheus")
    builder = sandbox / "builder"
    builder.mkdir()
    # `go install` that "builds" prometheus into GOBIN, as the real one does
    (builder / "go").write_text(
        "#!/bin/sh\n"
        'cat > "$GOBIN/prometheus" <<EOF\n#!/bin/sh\necho "'
        + VERSION_OUTPUT["prometheus"]
        + '"\nEOF\nchmod +x "$GOBIN/prometheus"\n'
    )
    (builder / "go").chmod(0o755)
    result = run_tools(sandbox, extra_path=builder)
    assert result.returncode == 0, result.stderr
    assert f"prometheus {WANT['prometheus']} installed" in result.stdout
    kept = cache(sandbox) / f"prometheus-{WANT['prometheus']}"
    assert kept.read_text() == (sandbox / ".tools" / "bin" / "prometheus").read_text()
    assert not [p for p in cache(sandbox).iterdir() if p.name.startswith(".")], "no temporary copy left"

    # the next clone (an empty .tools/bin) gets it without building
    (sandbox / ".tools" / "bin" / "prometheus").unlink()
    again = run_tools(sandbox)
    assert again.returncode == 0, again.stderr
    assert "installing" not in again.stdout
