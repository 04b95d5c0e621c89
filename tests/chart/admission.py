"""Runs a rendered ValidatingAdmissionPolicy on a pod request the way the API server does, with
cel-python (a CEL interpreter) instead of kube-apiserver's cel-go.

What is modelled: binding selection by namespace labels (matchLabels), matchConstraints' resource
rules, matchConditions, variables, validations with message/messageExpression, and the CEL variables
the API server provides (object, oldObject, request, namespaceObject). `params` is not defined: an
expression that still reads one fails here as it would in a cluster with no parameter resource.
Kubernetes' CEL libraries beyond the standard are added as far as the chart uses them (strings'
`join`). Not modelled: static type checking against the Pod schema and the cost budget (kube-apiserver
checks those when the policy is created; the e2e suite creates it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

import celpy
from celpy import celtypes

Manifest = dict[str, Any]


def _join(items: celtypes.ListType, separator: celtypes.StringType | None = None) -> celtypes.StringType:
    """cel-go's strings extension `list<string>.join([separator])`, which Kubernetes enables."""
    if not all(isinstance(item, celtypes.StringType) for item in items):
        raise TypeError(f"join takes a list of strings, not {items!r}")
    return celtypes.StringType((separator or "").join(items))


FUNCTIONS = {"join": _join}


@cache
def _program(expression: str) -> celpy.Runner:
    environment = celpy.Environment()
    return environment.program(environment.compile(expression), functions=FUNCTIONS)


def evaluate(expression: str, activation: dict[str, Any]) -> Any:
    """The value of one CEL expression. JSON-like activation values become CEL values; a CEL map
    (the variables already evaluated) is passed as it is: converting it again would turn its
    booleans into ints (cel-python's BoolType is an int, not a bool)."""
    return _program(expression).evaluate(
        {
            name: value if isinstance(value, celtypes.MapType) else celpy.json_to_cel(value)
            for name, value in activation.items()
        }
    )


@dataclass(frozen=True)
class PodRequest:
    """One admission request for a pod, as the API server describes it to CEL."""

    pod: Manifest
    namespace: str
    username: str
    operation: str = "CREATE"
    old_pod: Manifest | None = None
    namespace_labels: dict[str, str] = field(default_factory=dict)

    def activation(self) -> dict[str, Any]:
        labels = {"kubernetes.io/metadata.name": self.namespace, **self.namespace_labels}
        return {
            "object": self.pod,
            "oldObject": self.old_pod,
            "request": {
                "operation": self.operation,
                "namespace": self.namespace,
                "name": self.pod["metadata"].get("name", ""),
                "userInfo": {"username": self.username},
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
            },
            "namespaceObject": {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": self.namespace, "labels": labels},
            },
        }


def _binding_selects(binding: Manifest, request: PodRequest) -> bool:
    resources = binding["spec"].get("matchResources", {})
    assert set(resources) <= {"namespaceSelector"}, f"not modelled: {resources}"
    selector = resources.get("namespaceSelector", {})
    assert set(selector) <= {"matchLabels"}, f"not modelled: {selector}"
    labels = request.activation()["namespaceObject"]["metadata"]["labels"]
    return all(labels.get(key) == value for key, value in selector.get("matchLabels", {}).items())


def _constraints_match(policy: Manifest, request: PodRequest) -> bool:
    constraints = policy["spec"]["matchConstraints"]
    assert set(constraints) == {"resourceRules"}, f"not modelled: {constraints}"
    return any(
        "" in rule["apiGroups"] and "v1" in rule["apiVersions"] and "pods" in rule["resources"]
        and request.operation in rule["operations"]
        for rule in constraints["resourceRules"]
    )  # fmt: skip


def variables(policy: Manifest, request: PodRequest) -> celtypes.MapType:
    """The policy's variables, each evaluated after those before it (which it may read)."""
    activation = request.activation()
    values = celtypes.MapType()
    for variable in policy["spec"].get("variables", []):
        value = evaluate(variable["expression"], {**activation, "variables": values})
        values[celtypes.StringType(variable["name"])] = value
    return values


def _message(validation: Manifest, activation: dict[str, Any]) -> str:
    """The API server's choice: messageExpression's string, else message, else the expression."""
    if "messageExpression" in validation:
        try:
            text = evaluate(validation["messageExpression"], activation)
        except celpy.CELEvalError:
            text = ""
        if text:
            return str(text)
    return validation.get("message") or f"failed expression: {validation['expression']}"


def denials(policy: Manifest, bindings: list[Manifest], request: PodRequest) -> list[str] | None:
    """None when no binding of `policy` selects the request or its match conditions exclude it;
    otherwise the messages of the failed validations (an empty list: admitted)."""
    name = policy["metadata"]["name"]
    if not any(b["spec"]["policyName"] == name and _binding_selects(b, request) for b in bindings):
        return None
    if not _constraints_match(policy, request):
        return None
    activation = request.activation()
    if not all(_holds(c["expression"], activation) for c in policy["spec"].get("matchConditions", [])):
        return None
    activation["variables"] = variables(policy, request)
    return [
        _message(validation, activation)
        for validation in policy["spec"]["validations"]
        if not _holds(validation["expression"], activation)
    ]


def _holds(expression: str, activation: dict[str, Any]) -> bool:
    """A validation's verdict. An evaluation error raises (CELEvalError) instead of denying, as the
    API server would under failurePolicy Fail: a test must not pass because an expression broke."""
    result = evaluate(expression, activation)
    assert isinstance(result, celtypes.BoolType), f"{expression!r} gave {result!r}, not a bool"
    return bool(result)


@dataclass(frozen=True)
class Policy:
    """A rendered chart's one ValidatingAdmissionPolicy and its bindings."""

    policy: Manifest
    bindings: list[Manifest]

    @classmethod
    def of(cls, manifests: list[Manifest]) -> Policy:
        (policy,) = [m for m in manifests if m["kind"] == "ValidatingAdmissionPolicy"]
        bindings = [m for m in manifests if m["kind"] == "ValidatingAdmissionPolicyBinding"]
        return cls(policy, bindings)

    def denials(self, request: PodRequest) -> list[str] | None:
        return denials(self.policy, self.bindings, request)

    def variables(self, request: PodRequest) -> celtypes.MapType:
        return variables(self.policy, request)
