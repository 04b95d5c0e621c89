"""scripts.images: the content-derived tag, the image list and the small per-image build context
(no Docker needed)."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from scripts import config, images
from scripts.config import ROOT


def tag_from_cli() -> str:
    result = subprocess.run(
        [sys.executable, "-m", "scripts", "images", "tag"],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return result.stdout.strip()


def test_tag_is_the_chart_version_with_a_content_hash_and_is_stable() -> None:
    tag = tag_from_cli()
    assert re.fullmatch(rf"{re.escape(config.chart_metadata()['version'])}-[0-9a-f]{{12}}", tag)
    assert tag == tag_from_cli() == images.image_tag()


def test_tag_changes_when_an_image_file_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    before = images.image_tag()
    original_read = Path.read_bytes

    def read_with_one_file_changed(path: Path) -> bytes:
        content = original_read(path)
        return content + b"\n# changed" if path.name == "entrypoint.sh" else content

    monkeypatch.setattr(Path, "read_bytes", read_with_one_file_changed)
    assert images.image_tag() != before


def context_names(name: str) -> set[str]:
    context = images.context_tar(*images.selected([name]))
    with tarfile.open(fileobj=io.BytesIO(context)) as tar:
        return set(tar.getnames())


def test_airflow_context_holds_only_its_files() -> None:
    names = context_names("airflow")
    assert "images/airflow/Dockerfile" in names
    assert "images/airflow/constraints.txt" in names
    assert any(name.startswith("dags/") for name in names)
    outside = {name for name in names if not name.startswith(("images/airflow/", "dags/"))}
    assert outside == set()
    assert not any(".egg-info" in name or "__pycache__" in name for name in names)


TEST_SERVERS_TOOLS = {f"{images.TOOLS_BIN}/versitygw", f"{images.TOOLS_BIN}/prometheus"}


def test_test_servers_copy_the_binaries_of_make_tools_into_their_context() -> None:
    (test_servers,) = images.selected(["test-servers"])
    files = images.build_files(images.context_paths(test_servers))
    assert files.keys() >= TEST_SERVERS_TOOLS
    assert {files[name] for name in TEST_SERVERS_TOOLS} == {ROOT / name for name in TEST_SERVERS_TOOLS}
    assert "images/test-servers/Dockerfile" in files


def test_a_missing_tool_binary_is_an_error_that_says_make_tools(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(images, "ROOT", tmp_path)
    (tmp_path / images.TOOLS_BIN).mkdir(parents=True)
    (tmp_path / images.TOOLS_BIN / "versitygw").write_bytes(b"\x7fELF")
    with pytest.raises(FileNotFoundError, match=r"^\.tools/bin/prometheus not there: run `make tools`"):
        images.tool_binaries(tuple(sorted(TEST_SERVERS_TOOLS)))


def test_the_tag_never_reads_the_tool_binaries(monkeypatch: pytest.MonkeyPatch) -> None:
    """versions.env, which the tag hashes, pins them: a clone before `make tools` has the same tag."""
    before = images.image_tag()

    def no_binaries(paths: tuple[str, ...]) -> dict[str, Path]:
        raise AssertionError(f"the tag read {paths}")

    monkeypatch.setattr(images, "tool_binaries", no_binaries)
    assert images.image_tag() == before


def test_only_the_base_context_carries_the_extra_cas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "proxy.crt").write_text("not a real certificate")
    monkeypatch.setenv("IMAGES_EXTRA_CA_DIR", str(tmp_path))
    base = images.context_tar(config.base_image())
    with tarfile.open(fileobj=io.BytesIO(base)) as tar:
        assert {f"{images.BUILD_CA_DIR}/README.md", f"{images.BUILD_CA_DIR}/proxy.crt"} <= set(tar.getnames())
    assert not any(name.startswith(images.BUILD_CA_DIR) for name in context_names("airflow"))


def test_build_arguments_come_from_versions_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "ROOT", tmp_path)
    (tmp_path / "images/x").mkdir(parents=True)
    dockerfile = tmp_path / "images/x/Dockerfile"
    dockerfile.write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nARG PIP_VERSION\nRUN true\n")
    image = config.Image("x", "p/x")
    assert images.build_args(image, {"BASE_IMAGE": "b:1"}) == [
        "--build-arg", "BASE_IMAGE=b:1", "--build-arg", f"PIP_VERSION={config.VERSIONS['PIP_VERSION']}",
    ]  # fmt: skip
    dockerfile.write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nARG NOT_PINNED_ANYWHERE\n")
    with pytest.raises(
        ValueError, match=r"images/x/Dockerfile: ARG NOT_PINNED_ANYWHERE is neither in versions\.env"
    ):
        images.build_args(image, {"BASE_IMAGE": "b:1"})


def test_the_tag_changes_with_a_build_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    before = images.image_tag()
    original_read = Path.read_bytes

    def read_with_another_pip(path: Path) -> bytes:
        content = original_read(path)
        return content.replace(b"PIP_VERSION=", b"PIP_VERSION=0") if path.name == "versions.env" else content

    monkeypatch.setattr(Path, "read_bytes", read_with_another_pip)
    assert images.image_tag() != before


def test_context_is_what_the_dockerfile_copies(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        "FROM x\nCOPY --chown=1:0 dags/ /opt/dags/\nCOPY images/a/one images/a/two /tmp/\nRUN echo COPY no/\n"
    )
    assert images.copy_sources(dockerfile) == ["dags", "images/a/one", "images/a/two"]


def test_every_image_folder_is_an_image_with_the_repository_the_chart_names() -> None:
    folders = sorted(path.parent.name for path in (ROOT / "images").glob("*/Dockerfile"))
    platform = [name for name in folders if name != "base" and name not in config.TOOL_IMAGES]
    assert [image.name for image in config.images()] == platform
    for image in config.images():
        assert image.repository.endswith(f"/{image.name}")


def test_tool_images_are_built_but_never_named_by_the_chart() -> None:
    values = (ROOT / "charts/airflow-platform/values.yaml").read_text()
    templates = "".join(
        path.read_text() for path in (ROOT / "charts/airflow-platform/templates").rglob("*") if path.is_file()
    )
    for name in config.TOOL_IMAGES:
        image = config.tool_image(name)
        assert (ROOT / image.dockerfile).is_file()
        assert image.repository == f"{config.repository_prefix()}/{name}"
        assert f"/{name}\n" not in values and image.repository not in values + templates
        assert name not in [platform.name for platform in config.images()]
    with pytest.raises(ValueError, match="'airflow' is not a tool image"):
        config.tool_image("airflow")


def test_a_tool_image_has_its_own_tag_that_the_platform_tag_ignores(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = config.tool_image("registry")
    platform_before, tool_before = images.image_tag(), images.image_tag(of=(registry,))
    assert platform_before != tool_before
    original_read = Path.read_bytes

    def read_with_the_registry_config_changed(path: Path) -> bytes:
        content = original_read(path)
        return content + b"\n# changed" if path.parts[-2:] == ("registry", "config.yml") else content

    monkeypatch.setattr(Path, "read_bytes", read_with_the_registry_config_changed)
    assert images.image_tag() == platform_before
    assert images.image_tag(of=(registry,)) != tool_before


def test_an_image_folder_the_chart_does_not_know_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "image_folders", lambda: ["airflow", "unknown-image"])
    config.images.cache_clear()
    try:
        with pytest.raises(ValueError, match=r"images/unknown-image/ has no entry images\.<key>\.repository"):
            config.images()
    finally:
        config.images.cache_clear()


def test_an_unknown_image_name_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown image\(s\) \['nope'\]; known: \['airflow'"):
        images.selected(["nope"])


@pytest.mark.parametrize("image", config.images(), ids=lambda image: image.name)
def test_every_dockerfile_takes_the_base_image_as_an_argument(image: config.Image) -> None:
    dockerfile = (ROOT / image.dockerfile).read_text()
    assert re.search(r"^ARG BASE_IMAGE\b", dockerfile, re.MULTILINE)
    assert "FROM ${BASE_IMAGE}" in dockerfile
    assert re.search(r"^USER \d+", dockerfile, re.MULTILINE), "numeric non-root USER (runAsNonRoot)"


def test_official_base_is_the_pinned_debian_suite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGES_BASE", "official")
    assert images.resolve_base_image() == f"debian:{config.VERSIONS['DEBIAN_SUITE']}-slim"


def test_unknown_base_mode_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGES_BASE", "somewhere")
    with pytest.raises(ValueError, match="IMAGES_BASE"):
        images.resolve_base_image()


def test_images_tag_overrides_the_content_tag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGES_TAG", "1.2.3")
    assert images.image_tag() == "1.2.3"
