"""Job pods cannot reach what is not theirs (issue #14): RBAC, egress, namespaces; the admission
policy has its own file (test_admission_policy.py), which also runs its CEL.

Rendered objects are checked here; tests/e2e/test_hardening.py shows the cluster enforcing them.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.facts import GPU_JOBS_NAMESPACE, JOBS_NAMESPACE, WORKER_NAMESPACE

from .rendering import CHART, NAMESPACE, RELEASE, Manifest, find, helm, of_kind, render, render_error
from .test_bad_values import _workload
from .test_service_monitor import ON as SERVICE_MONITOR_ON

WORKERS = WORKER_NAMESPACE
WORKLOADS = (JOBS_NAMESPACE, GPU_JOBS_NAMESPACE)


def _hooks(manifests: list[Manifest]) -> list[Manifest]:
    """The namespace-hardening install hook's objects (not the `helm test` pod)."""
    return [
        m for m in manifests
        if "helm.sh/hook" in m["metadata"].get("annotations", {})
        and m["metadata"]["labels"]["app.kubernetes.io/component"] == "namespace-hardening"
    ]  # fmt: skip


def _hook_job(manifests: list[Manifest]) -> Manifest:
    (job,) = [
        j
        for j in of_kind(manifests, "Job")
        if j["metadata"]["name"].startswith(f"{RELEASE}-namespace-hardening-")
    ]
    assert job["metadata"]["namespace"] == NAMESPACE
    return job


# --- RBAC -----------------------------------------------------------------------------------------


def test_triggerer_only_watches_job_pods(manifests: list[Manifest]) -> None:
    for namespace in WORKLOADS:
        binding = find(manifests, "RoleBinding", f"{RELEASE}-pod-watcher", namespace)
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": f"{RELEASE}-triggerer", "namespace": NAMESPACE}
        ]
        role = find(manifests, "Role", f"{RELEASE}-pod-watcher", namespace)
        verbs = {verb for rule in role["rules"] if "pods" in rule["resources"] for verb in rule["verbs"]}
        assert verbs == {"get", "list", "watch"}
        assert not {"create", "patch", "update", "delete", "deletecollection"} & {
            verb for rule in role["rules"] for verb in rule["verbs"]
        }


def test_only_the_worker_launches_job_pods(manifests: list[Manifest]) -> None:
    for namespace in WORKLOADS:
        binding = find(manifests, "RoleBinding", f"{RELEASE}-pod-launcher", namespace)
        assert [s["name"] for s in binding["subjects"]] == [f"{RELEASE}-worker"]


def test_only_hook_is_cluster_scoped_and_limited_to_the_release_namespace(manifests: list[Manifest]) -> None:
    for kind in ("ClusterRole", "ClusterRoleBinding"):
        for manifest in of_kind(manifests, kind):
            assert manifest in _hooks(manifests), manifest["metadata"]["name"]
    for role in of_kind(manifests, "ClusterRole"):
        assert role["rules"] == [
            {
                "apiGroups": [""],
                "resources": ["namespaces"],
                "resourceNames": [NAMESPACE],
                "verbs": ["get", "patch"],
            }
        ]


# --- default ServiceAccounts and the release namespace ----------------------------------------------


def test_hardening_hook_disables_default_tokens_and_labels_release_namespace(
    manifests: list[Manifest],
) -> None:
    job = _hook_job(manifests)
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert set(json.loads(env["DEFAULT_ACCOUNT_NAMESPACES"])) == {WORKERS, *WORKLOADS}
    labels = json.loads(env["RELEASE_NAMESPACE_LABELS"])
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    for namespace in (WORKERS, *WORKLOADS):
        role = find(manifests, "Role", f"{RELEASE}-namespace-hardening", namespace)
        assert role["rules"] == [
            {
                "apiGroups": [""],
                "resources": ["serviceaccounts"],
                "resourceNames": ["default"],
                "verbs": ["get", "patch"],
            }
        ]


def test_hardening_hook_script_patches_what_it_says(tmp_path) -> None:
    """The hook's Python runs against a recording stand-in for the kubernetes client."""
    job = _hook_job(render("values.yaml"))
    container = job["spec"]["template"]["spec"]["containers"][0]
    script = container["command"][2]
    fake = tmp_path / "kubernetes"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "import json\n"
        "class _Api:\n"
        "    def patch_namespaced_service_account(self, name, namespace, body):\n"
        "        print('SA', name, namespace, json.dumps(body))\n"
        "    def patch_namespace(self, name, body):\n"
        "        print('NS', name, json.dumps(body))\n"
        "class client:\n"
        "    CoreV1Api = _Api\n"
        "class config:\n"
        "    @staticmethod\n"
        "    def load_incluster_config(): pass\n"
    )
    env = {e["name"]: e["value"] for e in container["env"]}
    result = subprocess.run(
        ["python3", "-c", script], env={**env, "PYTHONPATH": str(tmp_path)},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert f'SA default {WORKERS} {{"automountServiceAccountToken": false}}' in result.stdout
    assert f"NS {NAMESPACE}" in result.stdout and "restricted" in result.stdout


def test_opt_outs_remove_hook_parts() -> None:
    manifests = render(
        "values.yaml",
        "--set",
        "namespaces.release.podSecurityLabels=false",
        "--set",
        "namespaces.create=false",
    )
    assert _hooks(manifests) == []


def test_release_namespace_gets_quota_and_limit_range(manifests: list[Manifest]) -> None:
    assert find(manifests, "ResourceQuota", f"{RELEASE}-quota", NAMESPACE)
    (limits,) = find(manifests, "LimitRange", f"{RELEASE}-limits", NAMESPACE)["spec"]["limits"]
    assert limits["type"] == "Container"
    off = render("values.yaml", "--set", "namespaces.release.enabled=false")
    assert [m for m in of_kind(off, "ResourceQuota") if m["metadata"]["namespace"] == NAMESPACE] == []


def test_release_quota_fits_production_with_a_rolling_update() -> None:
    """Every control-plane pod of the production values, plus one surge pod each, fits the quota."""
    from kubernetes.utils import parse_quantity

    manifests = render("values-production.yaml")
    hard = find(manifests, "ResourceQuota", f"{RELEASE}-quota", NAMESPACE)["spec"]["hard"]
    used: dict[str, float] = {}
    for manifest in manifests:
        if manifest["metadata"].get("namespace") != NAMESPACE or manifest["kind"] not in {
            "Deployment",
            "Job",
        }:
            continue
        spec = manifest["spec"]["template"]["spec"]
        copies = manifest["spec"].get("replicas", 1) + (1 if manifest["kind"] == "Deployment" else 0)
        for scope in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                main = sum(parse_quantity(c["resources"][scope][resource]) for c in spec["containers"])
                init = max(
                    [parse_quantity(c["resources"][scope][resource]) for c in spec.get("initContainers", [])]
                    or [0]
                )
                key = f"{scope}.{resource}"
                used[key] = used.get(key, 0) + copies * max(main, init)
    for key, total in used.items():
        assert total <= parse_quantity(hard[key]), (key, total, hard[key])


# --- egress -----------------------------------------------------------------------------------------


def _egress(manifests: list[Manifest], namespace: str) -> list[dict]:
    policy = find(manifests, "NetworkPolicy", f"{RELEASE}-egress", namespace)
    assert policy["spec"]["podSelector"] == {} and policy["spec"]["policyTypes"] == ["Egress"]
    return policy["spec"]["egress"]


def _dns_rule(rules: list[dict]) -> dict:
    return next(r for r in rules if {"port": 53, "protocol": "UDP"} in r.get("ports", []))


@pytest.mark.parametrize("namespace", (WORKERS, *WORKLOADS))
def test_egress_denied_but_dns(manifests: list[Manifest], namespace: str) -> None:
    rules = _egress(manifests, namespace)
    dns = _dns_rule(rules)
    assert dns["to"][0]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
    }
    for rule in rules:
        assert rule.get("to"), "a rule without `to` allows every destination"
        for peer in rule["to"]:
            assert "ipBlock" not in peer or peer["ipBlock"]["cidr"] != "0.0.0.0/0"


@pytest.mark.parametrize("namespace", WORKLOADS)
def test_job_pods_reach_only_dns_and_their_namespace(manifests: list[Manifest], namespace: str) -> None:
    rules = _egress(manifests, namespace)
    peers = [peer for rule in rules for peer in rule["to"]]
    assert {"podSelector": {}} in peers  # own namespace (the demo ClickHouse)
    assert not any("ipBlock" in peer for peer in peers)  # no API server, no metadata address
    assert not any(
        peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
        == NAMESPACE
        for peer in peers
    )  # not the control plane (api-server, Postgres)


def test_workers_reach_execution_api_and_configured_api_server() -> None:
    manifests = render(
        "values.yaml", "--set-json", 'networkPolicies.egress.apiServer.cidrs=["172.18.0.2/32"]'
    )
    rules = _egress(manifests, WORKERS)
    execution = next(r for r in rules if r.get("ports") == [{"port": 8080, "protocol": "TCP"}])
    assert execution["to"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": NAMESPACE
    }
    assert execution["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "api-server"
    api = next(r for r in rules if any("ipBlock" in p for p in r["to"]))
    assert api["to"] == [{"ipBlock": {"cidr": "172.18.0.2/32"}}]
    assert {p["port"] for p in api["ports"]} == {443, 6443}


def test_egress_allow_list_is_appended() -> None:
    allow = [{"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}], "ports": [{"port": 9000, "protocol": "TCP"}]}]
    manifests = render("values.yaml", *_workload(1, "egressAllow", allow))
    assert allow[0] in _egress(manifests, GPU_JOBS_NAMESPACE)
    assert allow[0] not in _egress(manifests, JOBS_NAMESPACE)


@pytest.mark.parametrize(
    "cidr", ["0.0.0.0/0", "169.254.0.0/16", "169.254.169.254/32", "128.0.0.0/1", "169.254.169.0/24"]
)
def test_egress_allow_list_may_not_open_the_metadata_address(cidr: str) -> None:
    allow = [{"to": [{"ipBlock": {"cidr": cidr}}]}]
    error = render_error(*_workload(0, "egressAllow", allow))
    assert "namespaces.workloads[0].egressAllow[0].to[0].ipBlock" in error
    assert "169.254.169.254" in error


@pytest.mark.parametrize(
    "rule",
    [
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}}]},
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.0.0/16", "10.0.0.0/8"]}}]},
        {"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": [{"port": 443}]},
    ],
)
def test_egress_allow_list_accepts_excepted_blocks(rule: dict) -> None:
    render("values.yaml", *_workload(0, "egressAllow", [rule]))


@pytest.mark.parametrize(
    ("rule", "key"),
    [
        ({"to": []}, "/namespaces/workloads/0/egressAllow/0/to"),
        ({"ports": [{"port": 53}]}, "/namespaces/workloads/0/egressAllow/0"),
        ({"to": [{}]}, "/namespaces/workloads/0/egressAllow/0/to/0"),
        ({"to": [{"namespaceSelector": {}}]}, "/namespaces/workloads/0/egressAllow/0/to/0/namespaceSelector"),
        (
            {"to": [{"podSelector": {"matchLabels": {"a": "b"}}}], "ports": [{"port": 70000}]},
            "/namespaces/workloads/0/egressAllow/0/ports/0/port",
        ),
    ],
)
def test_egress_allow_list_must_name_destinations(rule: dict, key: str) -> None:
    error = render_error(*_workload(0, "egressAllow", [rule]))
    assert key in error, error


def test_egress_opt_out() -> None:
    manifests = render("values.yaml", "--set", "networkPolicies.egress.enabled=false")
    assert not [m for m in of_kind(manifests, "NetworkPolicy") if m["metadata"]["name"].endswith("-egress")]


# --- ingress controller and metrics scraper ---------------------------------------------------------


def test_ingress_controller_and_metrics_scraper_policies() -> None:
    peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    manifests = render(
        "values.yaml",
        "--set-json", f"networkPolicies.ingressController.from={json.dumps([peer])}",
        "--set-json", f"networkPolicies.metricsScraper.from={json.dumps([peer])}",
        "--set-json", "networkPolicies.metricsScraper.ports=[9102]",
    )  # fmt: skip
    ingress = find(manifests, "NetworkPolicy", f"{RELEASE}-ingress-controller", NAMESPACE)["spec"]
    assert ingress["ingress"] == [{"ports": [{"port": 8080, "protocol": "TCP"}], "from": [peer]}]
    for namespace in (NAMESPACE, WORKERS, *WORKLOADS):
        scraper = find(manifests, "NetworkPolicy", f"{RELEASE}-metrics-scraper", namespace)["spec"]
        assert scraper["ingress"] == [{"ports": [{"port": 9102, "protocol": "TCP"}], "from": [peer]}]
        assert scraper["podSelector"] == {"matchLabels": {"app.kubernetes.io/instance": RELEASE}}


def test_no_scraper_or_controller_policy_by_default(manifests: list[Manifest]) -> None:
    names = {m["metadata"]["name"] for m in of_kind(manifests, "NetworkPolicy")}
    assert f"{RELEASE}-ingress-controller" not in names and f"{RELEASE}-metrics-scraper" not in names


# --- NOTES.txt warnings -----------------------------------------------------------------------------


def _notes(*arguments: str) -> str:
    result = helm("install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--dry-run=client", *arguments)
    return result.stdout.split("NOTES:", 1)[1]


@pytest.mark.parametrize(
    ("arguments", "warning"),
    [
        (["--set", "namespaces.podSecurityLevel=privileged"], 'Pod Security "privileged"'),
        (_workload(1, "podSecurityLevel", "baseline"), 'airflow-gpu-jobs enforces Pod Security "baseline"'),
        (["--set", "networkPolicies.enabled=false"], "networkPolicies.enabled is false"),
        (["--set", "networkPolicies.egress.enabled=false"], "169.254.169.254"),
        (["--set", "admissionPolicies.enabled=false"], "admissionPolicies.enabled is false"),
        (["--set", "namespaces.create=false"], "namespaces.create is false"),
        (["--set", "namespaces.release.podSecurityLabels=false"], "kubectl label ns airflow"),
        (["--set", "images.tag=latest", "--set", "images.pullPolicy=Always"], "images.tag is latest"),
        (["--set", "airflow.readOnlyRootFilesystem=false"], "readOnlyRootFilesystem is false"),
        (
            ["--set", "metrics.enabled=true", "--set", "metrics.otlpEndpoint=http://otel:4318/v1/metrics"],
            "metrics.receiverPeers is empty",
        ),
        (
            list(SERVICE_MONITOR_ON),
            "networkPolicies.metricsScraper.from is empty",
        ),
        (  # a scraper admitted on no port: the policy template renders nothing at all
            [
                "--set-json",
                'networkPolicies.metricsScraper.from=[{"podSelector": {"matchLabels": {"app": "prom"}}}]',
            ],
            "networkPolicies.metricsScraper.ports is empty",
        ),
        (["--set-json", "networkPolicies.metricsScraper.ports=[9102]"], "metricsScraper.from is empty"),
        (["--namespace", "default"], "the release is in namespace default"),  # no -n: rendered, but warned
    ],
)
def test_risky_choices_warn_in_notes(arguments: list[str], warning: str) -> None:
    assert warning in _notes(*arguments)


def test_default_values_warn_about_nothing() -> None:
    assert "WARNINGS" not in _notes()
