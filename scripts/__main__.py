"""`python -m scripts COMMAND`: every step the Makefile dispatches to (run from the repository root).

up                          the platform on kind, the sync DAG run once (make up)
tools | docker              the pinned tools (.tools/bin); a Docker engine for kind
chart-docs [--check]        regenerate the chart README's Parameters tables (--check: fail if stale)
node-image                  the kind node image (make node-image)
cluster | down | kind-config  create (idempotent) / delete the kind cluster; print its config
images build|load [NAME...] build the images / load them into the cluster (all by default)
images push REGISTRY        tag and push every image to REGISTRY (e.g. registry.local:5000)
images lock                 regenerate images/airflow/constraints.txt in the image's Python
images tag | images refs    print the tag every image carries / every image reference
images prune                remove this project's images of other (stale) content tags
registry up|down|push       the local OCI registry (TLS, htpasswd) on kind's network; push every
                            image and the chart to it (make registry, make push)
diagnostics [--reason TEXT] collect cluster, Helm and Airflow state into .cache/artifacts/
report                      .cache/report/index.html: charts of .cache/timings.json (make report)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable

from scripts import config


def images_command(args: argparse.Namespace) -> None:
    from scripts import images

    tag = images.image_tag()  # hashes every image source: computed once per command
    if args.action == "tag":
        print(tag)
    elif args.action == "refs":
        print("\n".join(image.ref(tag) for image in config.images()))
    elif args.action == "build":
        images.build(images.selected(args.names), tag)
    elif args.action == "load":
        images.load(images.selected(args.names), tag)
    elif args.action == "prune":
        images.prune(tag)
    elif args.action == "push":
        if len(args.names) != 1:
            raise ValueError("images push takes exactly one REGISTRY, e.g. registry.local:5000")
        images.push(args.names[0], tag)
    else:
        images.lock(tag)


def step(module: str, function: str) -> Callable[[argparse.Namespace], object]:
    """A command that imports `scripts.<module>` only when it runs (the node image needs no venv)."""

    def call(_: argparse.Namespace) -> object:
        return getattr(__import__(f"scripts.{module}", fromlist=[function]), function)()

    return call


def registry_command(args: argparse.Namespace) -> None:
    from scripts import registry

    {"up": registry.up, "down": registry.down, "push": registry.push}[args.action]()


def chart_docs_command(args: argparse.Namespace) -> None:
    from pathlib import Path

    from scripts import chart_docs

    chart_docs.main(Path(args.chart) if args.chart else config.CHART, args.check)


def diagnostics_command(args: argparse.Namespace) -> None:
    from scripts import diagnostics

    diagnostics.collect(args.reason)


COMMANDS: dict[str, Callable[[argparse.Namespace], object]] = {
    "up": step("up", "main"),
    "tools": step("shell_steps", "tools"),
    "chart-docs": chart_docs_command,
    "docker": step("shell_steps", "docker_engine"),
    "node-image": step("node_image", "main"),
    "cluster": step("cluster", "up"),
    "down": step("cluster", "down"),
    "kind-config": step("cluster", "print_config"),
    "images": images_command,
    "registry": registry_command,
    "diagnostics": diagnostics_command,
    "report": step("report", "main"),
}


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m scripts", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = root.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        command = commands.add_parser(name)
        if name == "images":
            command.add_argument("action", choices=["build", "load", "push", "lock", "tag", "refs", "prune"])
            command.add_argument("names", nargs="*", metavar="NAME")
        elif name == "registry":
            command.add_argument("action", choices=["up", "down", "push"])
        elif name == "chart-docs":
            command.add_argument(
                "--check", action="store_true", help="fail with the diff when the README is stale"
            )
            command.add_argument("--chart", help="chart folder (default: charts/airflow-platform)")
        elif name == "diagnostics":
            command.add_argument("--reason", default="requested", help="why (written into the summary)")
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except (ValueError, RuntimeError, TimeoutError, subprocess.CalledProcessError) as error:
        print(f"[{args.command}] ERROR: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
