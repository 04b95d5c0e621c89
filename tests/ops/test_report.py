"""`make report`: the page is built from .cache/timings.json, escapes what it shows, refuses bad input
with the file named, and renders in a real headless Chromium (Debian's package)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from matplotlib import image

from scripts import report

# The shape scripts/up.py and the e2e suite write.
TIMINGS = {
    "up": {"tools": 1.2, "cluster": 85.0, "images": 20.4, "load": 133.0, "install": 45.1, "sync_dag": 40.3},
    "task_queued_to_running_seconds": {"drop_destination_db": 6.1, "create_db": 4.8, "migrate_data": 7.9},
    "idle_memory_mib": {"api-server": 610, "scheduler": 420, "dag-processor": 300, "triggerer": 250},
    "notes": "not a figure",
    "mixed": {"<script>alert(1)</script>": 3, "flag": True, "text": "n/a"},
}
CHROMIUM = shutil.which("chromium")


@pytest.fixture
def page(tmp_path: Path) -> Path:
    timings = tmp_path / "timings.json"
    timings.write_text(json.dumps(TIMINGS))
    return report.write_report(timings, tmp_path / "report" / "index.html")


def test_one_chart_per_numeric_section(page: Path) -> None:
    text = page.read_text()
    assert text.count("<img ") == 4  # up, latency, memory, mixed (its one number); "notes" has none
    for title in ("`make up` phases", "Task queue-to-running latency", "Idle memory per component"):
        assert title in text
    assert "migrate_data" in text and "133 s" in text


def test_names_are_escaped(page: Path) -> None:
    text = page.read_text()
    assert "<script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_missing_or_broken_timings_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(ValueError, match=r"nope\.json does not exist"):
        report.write_report(missing, tmp_path / "out.html")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match=r"broken\.json is not valid JSON"):
        report.write_report(broken, tmp_path / "out.html")
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"expected a JSON object"):
        report.write_report(listed, tmp_path / "out.html")
    assert not (tmp_path / "out.html").exists(), "nothing is written from bad input"


def test_page_renders_in_headless_chromium(page: Path, tmp_path: Path) -> None:
    if CHROMIUM is None:
        pytest.fail("chromium is missing: run `make test-deps`")
    screenshot = tmp_path / "report.png"
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1000,2400",
         f"--screenshot={screenshot}", page.as_uri()],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert screenshot.exists(), result.stderr[-3000:]
    pixels = image.imread(screenshot)
    assert pixels.shape[0] == 2400 and pixels.shape[1] == 1000
    # A blank or broken page is one flat colour; the charts' blue bars must be on it.
    blue = (pixels[..., 2] > 0.8) & (pixels[..., 0] < 0.2)
    assert blue.sum() > 2000, "no chart bars visible in the screenshot"
