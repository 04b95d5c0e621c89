"""`make report`: one self-contained HTML page with the figures of the last `make up`/`make e2e` run.

Reads .cache/timings.json (written by scripts/up.py and the e2e suite: per-phase `make up` timings,
task queue-to-running latency, idle memory per component, ...) and draws one bar chart per section
(matplotlib, PNG embedded as base64, so the page can be mailed or attached to a CI run).
"""

from __future__ import annotations

import base64
import html
import io
import json
import time
from pathlib import Path
from typing import Any

from scripts import config

REPORT_FILE = config.CACHE / "report" / "index.html"
# Section -> (title, unit) for the sections the project writes; others are drawn with their key.
SECTIONS = {
    "up": ("`make up` phases", "s"),
    "task_queued_to_running_seconds": ("Task queue-to-running latency", "s"),
    "idle_memory_mib": ("Idle memory per component", "MiB"),
}


def numeric_sections(timings: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Sections that are maps of name -> number; other entries have nothing to plot and are left out."""
    sections = {}
    for name, values in timings.items():
        if isinstance(values, dict):
            numbers = {
                str(key): float(value)
                for key, value in values.items()
                if isinstance(value, int | float) and not isinstance(value, bool)
            }
            if numbers:
                sections[name] = numbers
    return sections


def bar_chart(title: str, unit: str, values: dict[str, float]) -> str:
    """A horizontal bar chart as a base64 PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display: CI and headless machines
    from matplotlib import pyplot

    names, numbers = list(values), list(values.values())
    figure, axes = pyplot.subplots(figsize=(8, 0.45 * len(names) + 1.2))
    bars = axes.barh(names, numbers, color="#017cee")
    axes.invert_yaxis()  # first entry on top, in the order the run recorded them
    axes.bar_label(bars, labels=[f"{n:g} {unit}" for n in numbers], padding=3, fontsize=8)
    axes.set_xlabel(unit)
    axes.set_title(title)
    axes.margins(x=0.2)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    pyplot.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def render(timings: dict[str, Any], source: Path) -> str:
    sections = numeric_sections(timings)
    modified = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(source.stat().st_mtime))
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>airflow-platform: last run</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:60em}"
        "figure{margin:1.5em 0}img{max-width:100%}td,th{padding:.2em .8em;text-align:left}</style>",
        "</head><body><h1>airflow-platform: figures of the last run</h1>",
        f"<p>Source: <code>{html.escape(str(source))}</code>, modified {html.escape(modified)}.</p>",
    ]
    if not sections:
        parts.append(
            "<p class='empty'>No figures recorded yet: run <code>make up</code> / <code>make e2e</code>.</p>"
        )
    for name, values in sections.items():
        title, unit = SECTIONS.get(name, (name, ""))
        png = bar_chart(title, unit, values)
        rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{v:g} {html.escape(unit)}</td></tr>" for k, v in values.items()
        )
        parts.append(
            f"<section id='{html.escape(name)}'><h2>{html.escape(title)}</h2>"
            f"<figure><img alt='{html.escape(title)}' src='data:image/png;base64,{png}'></figure>"
            f"<table><tr><th>what</th><th>value</th></tr>{rows}</table></section>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(timings_file: Path = config.TIMINGS_FILE, output: Path = REPORT_FILE) -> Path:
    if not timings_file.exists():
        raise ValueError(f"{timings_file} does not exist: run `make up` (and `make e2e`) first")
    try:
        timings = json.loads(timings_file.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{timings_file} is not valid JSON: {error}") from error
    if not isinstance(timings, dict):
        raise ValueError(f"{timings_file}: expected a JSON object of sections, got {type(timings).__name__}")
    started = time.monotonic()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(timings, timings_file))
    print(
        f"[report] {len(numeric_sections(timings))} charts -> {output} ({time.monotonic() - started:.1f} s)"
    )
    return output


def main() -> None:
    write_report()
