"""scripts/images.py: the content-derived tag and the small per-image build context (no Docker needed)."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tarfile

import pytest

from tests.images.conftest import ROOT, images_script


def tag_from_cli() -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts/images.py"), "tag"], check=True, capture_output=True, text=True
    )
    return result.stdout.strip()


def test_tag_is_a_version_with_a_content_hash_and_is_stable() -> None:
    tag = tag_from_cli()
    assert re.fullmatch(r"\d+\.\d+\.\d+-[0-9a-f]{12}", tag)
    assert tag == tag_from_cli() == images_script.image_tag()


def test_tag_changes_when_an_image_file_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    before = images_script.image_tag()
    original_read = images_script.Path.read_bytes

    def read_with_one_file_changed(path: images_script.Path) -> bytes:
        content = original_read(path)
        return content + b"\n# changed" if path.name == "entrypoint.sh" else content

    monkeypatch.setattr(images_script.Path, "read_bytes", read_with_one_file_changed)
    assert images_script.image_tag() != before


def context_names(name: str) -> set[str]:
    context = images_script.context_tar(images_script.IMAGES_BY_NAME[name])
    with tarfile.open(fileobj=io.BytesIO(context)) as tar:
        return set(tar.getnames())


def test_airflow_context_holds_only_its_files() -> None:
    names = context_names("airflow")
    assert "images/airflow/Dockerfile" in names
    assert "images/airflow/constraints.txt" in names
    assert any(name.startswith("dags/") for name in names)
    assert f"{images_script.BUILD_CA_DIR}/README.md" in names
    outside = {name for name in names if not name.startswith(("images/airflow/", "dags/", "images/base/ca-"))}
    assert outside == set()
    assert not any(".egg-info" in name or "__pycache__" in name for name in names)


@pytest.mark.parametrize("name", [image.name for image in images_script.IMAGES])
def test_every_dockerfile_takes_the_base_image_as_an_argument(name: str) -> None:
    dockerfile = (ROOT / images_script.IMAGES_BY_NAME[name].dockerfile).read_text()
    assert "ARG BASE_IMAGE=debian:bookworm-slim" in dockerfile
    assert "FROM ${BASE_IMAGE}" in dockerfile
    assert re.search(r"^USER \d+", dockerfile, re.MULTILINE), "numeric non-root USER (runAsNonRoot)"


def test_official_base_is_used_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGES_BASE", "official")
    assert images_script.resolve_base_image() == "debian:bookworm-slim"


def test_unknown_base_mode_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGES_BASE", "somewhere")
    with pytest.raises(SystemExit, match="IMAGES_BASE"):
        images_script.resolve_base_image()


def test_images_tag_overrides_the_content_tag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGES_TAG", "1.2.3")
    assert images_script.image_tag() == "1.2.3"
