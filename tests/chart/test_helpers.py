"""Template structure: one home per fact (ports, helper names), no YAML assembled with printf."""

from __future__ import annotations

import re

from .rendering import CHART

TEMPLATES = {
    str(path.relative_to(CHART / "templates")): path.read_text()
    for path in sorted((CHART / "templates").rglob("*"))
    if path.is_file()
}
# Helpers shared by every component; the others are named ap.<component>.<name>.
GENERIC = {
    "ap.fullname", "ap.labels", "ap.selectorLabels", "ap.keepAnnotation", "ap.image", "ap.imagePullSecrets",
    "ap.podSecurityContext", "ap.containerSecurityContext", "ap.asYaml",
}  # fmt: skip
PORTS = ("8080", "8793", "8794", "5432", "9000", "8123")
# The test git server listens on its own 8080 (not the api-server's): a separate fact.
OWN_PORTS = {"dags/test-git-server.yaml": {"8080"}}


def defined_helpers() -> list[str]:
    return [name for text in TEMPLATES.values() for name in re.findall(r'define "([^"]+)"', text)]


def test_every_helper_is_defined_once() -> None:
    names = defined_helpers()
    assert sorted({name for name in names if names.count(name) > 1}) == []


def test_helpers_are_scoped_by_component() -> None:
    unscoped = [name for name in defined_helpers() if name not in GENERIC and name.count(".") < 2]
    assert unscoped == []


def test_no_yaml_is_built_with_printf() -> None:
    """YAML comes from dicts and lists through toYaml; printf may build names, URLs and INI lines."""
    yaml_printf = re.compile(r'printf\s+(`[^`]*`|"[^"]*(\\n\s*-\s|:\\n|\\n\s+\w+:)[^"]*")')
    found = {name: yaml_printf.findall(text) for name, text in TEMPLATES.items()}
    assert {name: hits for name, hits in found.items() if hits} == {}


def without_comments(text: str) -> str:
    return re.sub(r"\{\{-?\s*/\*.*?\*/\s*-?\}\}", "", text, flags=re.S)


def test_ports_are_numbers_in_one_place() -> None:
    elsewhere = {
        name: sorted(
            port for port in PORTS if re.search(rf"(?<![\w.]){port}(?![\w.])", without_comments(text))
        )
        for name, text in TEMPLATES.items()
        if name != "_helpers.tpl"
    }
    assert {name: ports for name, ports in elsewhere.items() if set(ports) - OWN_PORTS.get(name, set())} == {}
