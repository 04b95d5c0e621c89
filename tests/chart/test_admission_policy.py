"""The job-pod admission policy (templates/policies/job-pods.yaml): rendered, then run.

Its CEL runs here with cel-python (tests/chart/admission.py) on sample pod requests, so these tests
show what the API server admits and refuses, not only what the manifest says. tests/e2e/test_hardening.py
shows a cluster enforcing it. The allowed Secret names are written into the policy (no paramKind, no
parameter ConfigMap: kubernetes/kubernetes#130887 breaks those after an uninstall).
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.facts import GPU_JOBS_NAMESPACE, JOBS_NAMESPACE, WORKER_NAMESPACE

from .admission import PodRequest, Policy, evaluate
from .rendering import CHART, NAMESPACE, RELEASE, Manifest, helm, of_kind, render, render_error, rendered
from .test_bad_values import DEFAULT_WORKLOADS, _workload
from .test_secrets import render_against_cluster

WORKLOADS = (JOBS_NAMESPACE, GPU_JOBS_NAMESPACE)
WORKER = f"system:serviceaccount:{WORKER_NAMESPACE}:{RELEASE}-worker"
TRIGGERER = f"system:serviceaccount:{NAMESPACE}:{RELEASE}-triggerer"
LAUNCHERS = (WORKER, TRIGGERER)
WORKLOAD_ACCOUNT = "airflow-workload"
# clickhouse.credentialsSecret: the sync DAG's job pods read it in every workload namespace
SYNC_SECRET = yaml.safe_load((CHART / "values.yaml").read_text())["clickhouse"]["credentialsSecret"]
USABLE = {"airflow-platform.io/usable-by-jobs": "true"}


def _pod(**spec: Any) -> Manifest:
    """A job pod as KubernetesPodOperator creates it, with `spec` fields added or replaced."""
    base = {"serviceAccountName": WORKLOAD_ACCOUNT, "containers": [{"name": "base", "image": "busybox"}]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "job", "labels": {}}, "spec": base | spec}


def _container(**fields: Any) -> dict[str, Any]:
    return {"name": "base", "image": "busybox", **fields}


def _request(pod: Manifest, namespace: str = JOBS_NAMESPACE, user: str = WORKER, **kw: Any) -> PodRequest:
    return PodRequest(pod=pod, namespace=namespace, username=user, **kw)


def _allowed(policy: Policy, namespace: str) -> list[str]:
    """The Secret names the policy's CEL allows job pods of `namespace` (its `allowed` variable)."""
    return list(policy.variables(_request(_pod(), namespace))["allowed"])


def _secret(namespace: str, name: str, labels: dict[str, str] | None = None) -> Manifest:
    """A Secret as the cluster holds it (made by a team, not by the chart)."""
    metadata = {"name": name, "namespace": namespace, **({"labels": labels} if labels else {})}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "data": {}}


# Every place a pod spec can name a Secret, each as a pod referencing `name` there.
REFERENCES: dict[str, Callable[[str], Manifest]] = {
    "volume": lambda name: _pod(volumes=[{"name": "s", "secret": {"secretName": name}}]),
    "projected-volume": lambda name: _pod(
        volumes=[
            {
                "name": "s",
                "projected": {"sources": [{"configMap": {"name": "c"}}, {"secret": {"name": name}}]},
            }
        ]
    ),
    "env": lambda name: _pod(
        containers=[
            _container(env=[{"name": "P", "valueFrom": {"secretKeyRef": {"name": name, "key": "k"}}}])
        ]
    ),
    "envFrom": lambda name: _pod(containers=[_container(envFrom=[{"secretRef": {"name": name}}])]),
    "init-container-env": lambda name: _pod(
        initContainers=[
            _container(env=[{"name": "P", "valueFrom": {"secretKeyRef": {"name": name, "key": "k"}}}])
        ]
    ),
    "ephemeral-container-envFrom": lambda name: _pod(
        ephemeralContainers=[_container(envFrom=[{"secretRef": {"name": name}}])]
    ),
    "imagePullSecrets": lambda name: _pod(imagePullSecrets=[{"name": name}]),
}


def _job_secrets(by_namespace: dict[str, list[str]]) -> list[str]:
    """helm arguments giving each workload namespace of the defaults its jobSecrets."""
    workloads = copy.deepcopy(DEFAULT_WORKLOADS)
    for workload in workloads:
        workload["jobSecrets"] = by_namespace[workload["name"]]
    return _json("namespaces.workloads", workloads)


@pytest.fixture(scope="module")
def policy() -> Policy:
    """The chart defaults with one team Secret listed for each workload namespace."""
    return Policy.of(
        render(
            "values.yaml", *_job_secrets({JOBS_NAMESPACE: ["jobs-team"], GPU_JOBS_NAMESPACE: ["gpu-team"]})
        )
    )


# --- the manifest: no parameter resource -------------------------------------------------------------


def test_policy_uses_no_parameter_resource(manifests: list[Manifest]) -> None:
    """kubernetes/kubernetes#130887: a built-in paramKind stops working for good after an uninstall."""
    policy = Policy.of(manifests)
    assert "paramKind" not in policy.policy["spec"]
    for binding in policy.bindings:
        assert "paramRef" not in binding["spec"], binding["metadata"]["name"]
    expressions = [
        *(v["expression"] for v in policy.policy["spec"]["variables"]),
        *(c["expression"] for c in policy.policy["spec"]["matchConditions"]),
        *(
            text
            for v in policy.policy["spec"]["validations"]
            for text in (v["expression"], v.get("messageExpression", ""))
        ),
    ]
    assert not any("params" in expression for expression in expressions)
    assert not [m for m in of_kind(manifests, "ConfigMap") if m["metadata"]["name"].endswith("-job-secrets")]


def test_one_deny_binding_per_workload_namespace(manifests: list[Manifest]) -> None:
    policy = Policy.of(manifests)
    assert policy.policy["spec"]["failurePolicy"] == "Fail"
    selected = {
        b["spec"]["matchResources"]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]: b
        for b in policy.bindings
    }
    assert set(selected) == set(WORKLOADS) and len(policy.bindings) == len(WORKLOADS)
    for namespace, binding in selected.items():
        assert binding["spec"]["policyName"] == policy.policy["metadata"]["name"]
        assert binding["spec"]["validationActions"] == ["Deny"]
        # the name of the ConfigMap-param design's binding: `helm upgrade` from it patches in place
        assert binding["metadata"]["name"] == f"{policy.policy['metadata']['name']}-{namespace}"
    assert policy.policy["metadata"]["name"] == f"{NAMESPACE}-{RELEASE}-job-pods"


def test_admission_policies_opt_out() -> None:
    manifests = render("values.yaml", "--set", "admissionPolicies.enabled=false")
    assert of_kind(manifests, "ValidatingAdmissionPolicy") == []
    assert of_kind(manifests, "ValidatingAdmissionPolicyBinding") == []


# --- which names each namespace allows -------------------------------------------------------------


def test_every_bound_namespace_has_its_own_list(scenario_manifests: list[Manifest]) -> None:
    """The map holds exactly the namespaces bound; one missing from it would allow nothing."""
    policy = Policy.of(scenario_manifests)
    by_namespace = policy.variables(_request(_pod()))["allowedByNamespace"]
    bound = [
        b["spec"]["matchResources"]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for b in policy.bindings
    ]
    assert sorted(by_namespace) == sorted(bound)
    assert _allowed(policy, "a-namespace-of-no-release") == []


def test_defaults_allow_only_the_sync_credentials(kind_manifests: list[Manifest]) -> None:
    for manifests in (rendered("values.yaml"), kind_manifests):
        policy = Policy.of(manifests)
        for namespace in WORKLOADS:
            assert _allowed(policy, namespace) == [SYNC_SECRET]


def test_job_secrets_are_allowed_in_their_namespace_only() -> None:
    policy = Policy.of(render("values.yaml", *_workload(1, "jobSecrets", ["team-b", "team-a"])))
    assert _allowed(policy, GPU_JOBS_NAMESPACE) == sorted([SYNC_SECRET, "team-a", "team-b"])
    assert _allowed(policy, JOBS_NAMESPACE) == [SYNC_SECRET]
    # each namespace its own, whichever comes first in namespaces.workloads
    both = {JOBS_NAMESPACE: ["jobs-a", "shared"], GPU_JOBS_NAMESPACE: ["shared", "gpu-a"]}
    policy = Policy.of(render("values.yaml", *_job_secrets(both)))
    for namespace, names in both.items():
        assert _allowed(policy, namespace) == sorted([SYNC_SECRET, *names])


def test_sync_profile_secrets_are_allowed_everywhere() -> None:
    policy = Policy.of(
        render(
            "values.yaml", "--set", "presets.clickhouseSync.profiles.demo-source.secretName=warehouse-reader"
        )
    )
    for namespace in WORKLOADS:
        assert _allowed(policy, namespace) == sorted([SYNC_SECRET, "warehouse-reader"])


def test_labelled_secrets_are_found_at_install_time(tmp_path: Path) -> None:
    """Secrets labelled usable-by-jobs=true in a workload namespace, read by the chart's `lookup`
    (helm --dry-run=server against a stand-in API holding them)."""
    cluster = [
        _secret(JOBS_NAMESPACE, "team-labelled", USABLE),
        _secret(JOBS_NAMESPACE, "labelled-false", {"airflow-platform.io/usable-by-jobs": "false"}),
        _secret(JOBS_NAMESPACE, "labelled-yes", {"airflow-platform.io/usable-by-jobs": "yes"}),
        _secret(JOBS_NAMESPACE, "other-label", {"team": "a"}),
        _secret(JOBS_NAMESPACE, "plain"),
        _secret(GPU_JOBS_NAMESPACE, "gpu-labelled", USABLE),
        _secret(NAMESPACE, "control-plane-labelled", USABLE),  # not a workload namespace
    ]
    policy = Policy.of(render_against_cluster(cluster, tmp_path))
    assert _allowed(policy, JOBS_NAMESPACE) == sorted([SYNC_SECRET, "team-labelled"])
    assert _allowed(policy, GPU_JOBS_NAMESPACE) == sorted([SYNC_SECRET, "gpu-labelled"])
    pod = REFERENCES["env"]("gpu-labelled")
    assert policy.denials(_request(pod, GPU_JOBS_NAMESPACE)) == []
    assert policy.denials(_request(pod, JOBS_NAMESPACE))


# --- names cannot become CEL ---------------------------------------------------------------------------

# Strings that would end a CEL string literal, escape from it or change its meaning if spliced in raw.
HOSTILE_NAMES = [
    'a"b',
    "a'b",
    "a\\b",
    '" + "x',
    'x"] + ["y',
    '"""',
    "'''",
    "\\u0022",
    "\\x22",
    "\\",
    "\n\r\t\b\f",
    "\x01\x1b",
    "\u2028\u2029",
    "<>&",
    "é😀",
    "{{ .Release.Name }}",
    'a" || true || "b',
]


def test_cel_literal_helper_round_trips_hostile_strings(tmp_path: Path) -> None:
    """ap.cel.literal on its own (the chart's _helpers.tpl in a scratch chart): CEL reads back the
    very strings, keys and lists it was given."""
    value = {"names": HOSTILE_NAMES, **{name: [name] for name in HOSTILE_NAMES}}
    result = _render_literal(tmp_path, value)
    assert result.returncode == 0, result.stderr
    assert evaluate(yaml.safe_load(result.stdout)["data"]["literal"], {}) == value


@pytest.mark.parametrize(
    "value", [1, 1.5, True, None, ["a", 1], {"k": False}, {"k": ["a", None]}, [["a"], 2]], ids=repr
)
def test_cel_literal_helper_refuses_what_is_not_strings(tmp_path: Path, value: object) -> None:
    result = _render_literal(tmp_path, value)
    assert result.returncode != 0 and "ap.cel.literal takes strings" in result.stderr, result.stderr


def _render_literal(workdir: Path, value: object) -> subprocess.CompletedProcess[str]:
    """`include "ap.cel.literal" value` rendered into a ConfigMap by a scratch chart."""
    chart = workdir / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: cel-literal\nversion: 0.0.1\n")
    shutil.copy(CHART / "templates" / "_helpers.tpl", chart / "templates")
    (chart / "templates" / "literal.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: literal}\n"
        'data:\n  literal: {{ include "ap.cel.literal" .Values.value | toJson }}\n'
    )
    values = workdir / "values.json"
    # Helm's YAML reader refuses raw control characters and reads U+2028/U+2029 as line breaks:
    # JSON-escaped (\\uXXXX) they are read as the characters themselves
    text = json.dumps({"value": value}, ensure_ascii=False)
    values.write_text(text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
    return helm("template", "t", str(chart), "--values", str(values), check=False)


def test_hostile_secret_names_from_the_cluster_stay_names(tmp_path: Path) -> None:
    """Names read by `lookup` skip the values schema (the API server validates them; a stand-in
    here does not): each is allowed as exactly itself, and no fragment of it is."""
    cluster = [_secret(JOBS_NAMESPACE, name, USABLE) for name in HOSTILE_NAMES]
    policy = Policy.of(render_against_cluster(cluster, tmp_path))
    assert _allowed(policy, JOBS_NAMESPACE) == sorted([SYNC_SECRET, *HOSTILE_NAMES])
    assert _allowed(policy, GPU_JOBS_NAMESPACE) == [SYNC_SECRET]
    for name in HOSTILE_NAMES:
        assert policy.denials(_request(REFERENCES["env"](name))) == [], name
    for fragment in ("a", "b", "x", "y", "true", "\\u0022", ""):
        if fragment not in HOSTILE_NAMES:
            assert policy.denials(_request(REFERENCES["env"](fragment))), fragment


def _json(key: str, value: object) -> list[str]:
    """--set-json: --set and --set-string would read a backslash or comma in `value` themselves."""
    return ["--set-json", f"{key}={json.dumps(value)}"]


# Every values key a name of the allowed lists comes from, as helm arguments setting it to `name`.
NAME_SOURCES: dict[str, Callable[[str], list[str]]] = {
    "jobSecrets": lambda name: _workload(0, "jobSecrets", [name]),
    "workload-namespace": lambda name: _workload(0, "name", name),
    "pullSecrets": lambda name: _json("images.pullSecrets", [name]),
    "credentialsSecret": lambda name: _json("clickhouse.credentialsSecret", name),
    "profile-secretName": lambda name: _json("presets.clickhouseSync.profiles.demo-source.secretName", name),
}


@pytest.mark.parametrize("name", ['a"b', "a'b", "a\\b", "a b", "a,b", "A"], ids=repr)
@pytest.mark.parametrize("source", NAME_SOURCES)
def test_schema_refuses_names_that_are_not_dns_names(source: str, name: str) -> None:
    """The first line of defence: values never carry a quote, backslash or space into the policy."""
    assert "values don't meet the specifications of the schema" in render_error(*NAME_SOURCES[source](name))


# --- what the API server admits ------------------------------------------------------------------------


@pytest.mark.parametrize("launcher", LAUNCHERS)
@pytest.mark.parametrize("reference", REFERENCES)
def test_allowed_secrets_are_admitted(policy: Policy, reference: str, launcher: str) -> None:
    for namespace, team in ((JOBS_NAMESPACE, "jobs-team"), (GPU_JOBS_NAMESPACE, "gpu-team")):
        for name in (SYNC_SECRET, team):
            assert policy.denials(_request(REFERENCES[reference](name), namespace, launcher)) == []


@pytest.mark.parametrize("reference", REFERENCES)
def test_other_secrets_are_refused_naming_the_allowed_ones(policy: Policy, reference: str) -> None:
    """Unknown names, and names another workload namespace may use, are refused."""
    for namespace, own, other in (
        (JOBS_NAMESPACE, "jobs-team", "gpu-team"),
        (GPU_JOBS_NAMESPACE, "gpu-team", "jobs-team"),
    ):
        for name in ("kube-root-secret", other):
            (message,) = policy.denials(_request(REFERENCES[reference](name), namespace))
            assert message.startswith(f"job pods in {namespace} may "), message
            assert "Secrets usable by jobs" in message, message
            assert f"({', '.join(sorted([SYNC_SECRET, own]))})" in message, message


def test_refusals_name_the_secret_asked_for(policy: Policy) -> None:
    (mount,) = policy.denials(_request(REFERENCES["volume"]("stolen")))
    assert mount.endswith("; the pod mounts stolen"), mount
    env = [_container(env=[
        {"name": "OK", "valueFrom": {"secretKeyRef": {"name": SYNC_SECRET, "key": "k"}}},
        {"name": "BAD", "valueFrom": {"secretKeyRef": {"name": "stolen", "key": "k"}}},
        {"name": "PLAIN", "value": "v"},
    ])]  # fmt: skip
    (message,) = policy.denials(_request(_pod(containers=env)))
    assert message.endswith("; an environment variable references stolen"), message


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"serviceAccountName": "default"},
            f"must run as the ServiceAccount {WORKLOAD_ACCOUNT}, not default",
        ),
        ({"serviceAccountName": f"{RELEASE}-worker"}, f"not {RELEASE}-worker"),
        ({"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}, "job pods may not mount hostPath volumes"),
        ({"hostNetwork": True}, "job pods may not use the host's network, PID or IPC namespace"),
        ({"hostPID": True}, "job pods may not use the host's network, PID or IPC namespace"),
        ({"hostIPC": True}, "job pods may not use the host's network, PID or IPC namespace"),
        (
            {"containers": [_container(securityContext={"privileged": True})]},
            "job pods may not run privileged",
        ),
        ({"initContainers": [_container(securityContext={"privileged": True})]}, "may not run privileged"),
        (
            {"ephemeralContainers": [_container(securityContext={"privileged": True})]},
            "may not run privileged",
        ),
    ],
    ids=lambda v: json.dumps(v)[:60] if isinstance(v, dict) else None,
)
def test_pod_rules(policy: Policy, spec: dict[str, Any], expected: str) -> None:
    for namespace in WORKLOADS:
        (message,) = policy.denials(_request(_pod(**spec), namespace))
        assert expected in message, message


def test_a_pod_without_service_account_is_refused(policy: Policy) -> None:
    pod = _pod()
    del pod["spec"]["serviceAccountName"]
    (message,) = policy.denials(_request(pod))
    assert message.endswith(f"must run as the ServiceAccount {WORKLOAD_ACCOUNT}, not default"), message


def test_false_flags_are_admitted(policy: Policy) -> None:
    pod = _pod(hostNetwork=False, hostPID=False, hostIPC=False,
               containers=[_container(securityContext={"privileged": False})])  # fmt: skip
    assert policy.denials(_request(pod)) == []


def test_launchers_may_relabel_but_not_change_a_pod(policy: Policy) -> None:
    old = REFERENCES["env"](SYNC_SECRET)
    relabelled = json.loads(json.dumps(old))
    relabelled["metadata"]["labels"]["already_checked"] = "True"
    assert policy.denials(_request(relabelled, operation="UPDATE", old_pod=old)) == []
    changed = json.loads(json.dumps(old))
    changed["spec"]["containers"][0]["image"] = "evil"
    (message,) = policy.denials(_request(changed, operation="UPDATE", old_pod=old))
    assert message == "the platform's launchers may relabel job pods but not change their spec"


def test_only_launchers_in_workload_namespaces_are_checked(policy: Policy) -> None:
    """Other identities and namespaces are left to RBAC and Pod Security (None: not evaluated)."""
    hostile = _pod(serviceAccountName="default", hostNetwork=True)
    for user in (f"system:serviceaccount:{NAMESPACE}:{RELEASE}-scheduler", "kubernetes-admin",
                 f"system:serviceaccount:{JOBS_NAMESPACE}:{WORKLOAD_ACCOUNT}"):  # fmt: skip
        assert policy.denials(_request(hostile, user=user)) is None, user
    for namespace in (NAMESPACE, WORKER_NAMESPACE, "kube-system"):
        assert policy.denials(_request(hostile, namespace)) is None, namespace
    assert policy.denials(_request(hostile, operation="DELETE")) is None
    assert policy.denials(_request(hostile))  # the same pod where it is checked
