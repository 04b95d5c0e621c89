"""Runs the pods the chart renders as Docker containers, with their real commands and security settings.

A pod spec is translated to `docker run`: the image and command; env values and secretKeyRefs (read from
the rendered Secrets); configMap/secret volumes as files from the rendered objects; emptyDir and PVCs as
host directories; runAsUser/runAsGroup/fsGroup, read-only root filesystem, all capabilities dropped and
no privilege escalation. Init containers run to completion first. Services become network aliases, so
the components find each other by their cluster DNS names. It checks the chart's commands, config and
security context against the real images without a cluster (the kind cluster checks scheduling).
"""

from __future__ import annotations

import base64
import re
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

Manifest = dict[str, Any]


KUBERNETES_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand_references(text: str, env: dict[str, str]) -> str:
    """Kubernetes' expansion of env values, command and args: `$(NAME)` of a defined variable becomes its
    value, `$$` becomes `$`, an undefined `$(NAME)` stays as written."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return KUBERNETES_REFERENCE.sub(replace, text)


class PodRunner:
    def __init__(self, manifests: list[Manifest], cluster_domain: str = "svc.cluster.local") -> None:
        self.manifests = manifests
        self.cluster_domain = cluster_domain
        self.prefix = f"chart-test-{uuid.uuid4().hex[:6]}"
        self.network = self.prefix
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-"))
        self.containers: list[str] = []
        self._claims: dict[str, Path] = {}

    def __enter__(self) -> PodRunner:
        self._docker("network", "create", self.network)
        return self

    def __exit__(self, *_: object) -> None:
        for name in reversed(self.containers):
            subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
        subprocess.run(["docker", "network", "rm", self.network], capture_output=True, check=False)
        # files written by the containers' uids: tests run as root (make test), so rm can remove them
        subprocess.run(["rm", "-rf", str(self.workdir)], capture_output=True, check=False)

    def _docker(
        self, *args: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)

    def _object(self, kind: str, name: str, namespace: str) -> Manifest:
        return next(
            m for m in self.manifests
            if (m["kind"], m["metadata"]["name"], m["metadata"].get("namespace")) == (kind, name, namespace)
        )  # fmt: skip

    def _secret_value(self, namespace: str, name: str, key: str) -> str:
        return base64.b64decode(self._object("Secret", name, namespace)["data"][key]).decode()

    def _volume_dirs(self, pod: str, namespace: str, spec: dict[str, Any]) -> dict[str, Path]:
        dirs: dict[str, Path] = {}
        for volume in spec.get("volumes", []):
            path = self.workdir / pod / volume["name"]
            if "persistentVolumeClaim" in volume:
                claim = f"{namespace}/{volume['persistentVolumeClaim']['claimName']}"
                path = self._claims.setdefault(claim, self.workdir / "claims" / claim.replace("/", "_"))
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o777)
            if "configMap" in volume:
                data = self._object("ConfigMap", volume["configMap"]["name"], namespace)["data"]
                for key, text in data.items():
                    (path / key).write_text(text)
                    (path / key).chmod(0o644)
            elif "secret" in volume:
                secret = volume["secret"]
                items = secret.get("items") or [{"key": k, "path": k} for k in self._object(
                    "Secret", secret["secretName"], namespace)["data"]]  # fmt: skip
                for item in items:
                    (path / item["path"]).write_text(
                        self._secret_value(namespace, secret["secretName"], item["key"])
                    )
                    (path / item["path"]).chmod(0o644)
            dirs[volume["name"]] = path
        return dirs

    def _env(self, namespace: str, container: dict[str, Any], pod_name: str) -> dict[str, str]:
        """The container's environment as the kubelet makes it: `$(NAME)` in a value expands to the
        variables defined before it (the chart builds the database URL that way); a fieldRef gives
        the pod's name or namespace (the metrics' pod label comes from it)."""
        env: dict[str, str] = {}
        fields = {"metadata.name": pod_name, "metadata.namespace": namespace}
        for variable in container.get("env", []):
            if "value" in variable:
                value = expand_references(variable["value"], env)
            elif "secretKeyRef" in variable["valueFrom"]:
                reference = variable["valueFrom"]["secretKeyRef"]
                value = self._secret_value(namespace, reference["name"], reference["key"])
            else:
                field = variable["valueFrom"]["fieldRef"]["fieldPath"]
                assert field in fields, f"{variable['name']}: the pod runner knows no fieldRef {field!r}"
                value = fields[field]
            env[variable["name"]] = value
        return env

    def _run_args(
        self,
        name: str,
        namespace: str,
        spec: dict[str, Any],
        container: dict[str, Any],
        dirs: dict[str, Path],
    ) -> list[str]:
        pod_context, context = spec.get("securityContext", {}), container["securityContext"]
        user = context.get("runAsUser", pod_context.get("runAsUser"))
        group = context.get("runAsGroup", pod_context.get("runAsGroup"))
        args = ["--name", name, "--network", self.network, "--cap-drop", "ALL",
                "--security-opt", "no-new-privileges"]  # fmt: skip
        assert context["allowPrivilegeEscalation"] is False and context["capabilities"]["drop"] == ["ALL"]
        if context.get("readOnlyRootFilesystem"):
            args.append("--read-only")
        if user is not None:
            args += ["--user", f"{user}:{group if group is not None else user}"]
        if "fsGroup" in pod_context:
            args += ["--group-add", str(pod_context["fsGroup"])]
        for mount in container.get("volumeMounts", []):
            source = dirs[mount["name"]]
            if mount.get("subPath"):
                source = source / mount["subPath"]
                if not source.exists():
                    source.mkdir(mode=0o777)
                    source.chmod(0o777)
            args += ["--volume", f"{source}:{mount['mountPath']}{':ro' if mount.get('readOnly') else ''}"]
        env = self._env(namespace, container, name)
        args += [arg for name, value in env.items() for arg in ("--env", f"{name}={value}")]
        command = [expand_references(part, env) for part in container.get("command", [])]
        if command:
            args += ["--entrypoint", command[0]]
        container_args = [expand_references(part, env) for part in container.get("args", [])]
        return [*args, container["image"], *command[1:], *container_args]

    def run_pod(self, kind: str, name: str, namespace: str, aliases: tuple[str, ...] = ()) -> dict[str, str]:
        """Runs one workload's pod: init containers to completion, then the containers detached.
        Returns container name in the pod -> docker container name."""
        spec = self._object(kind, name, namespace)["spec"]["template"]["spec"]
        dirs = self._volume_dirs(name, namespace, spec)
        run = f"{self.prefix}-{name}-{len(self.containers)}"  # a pod may run again (a Job re-run)
        for init in spec.get("initContainers", []):
            docker_name = f"{run}-{init['name']}"
            self.containers.append(docker_name)
            result = self._docker(
                "run", *self._run_args(docker_name, namespace, spec, init, dirs), check=False
            )
            assert result.returncode == 0, (
                f"init container {name}/{init['name']} failed:\n{result.stderr[-3000:]}"
            )
        started = {}
        for container in spec["containers"]:
            docker_name = f"{run}-{container['name']}"
            self.containers.append(docker_name)
            alias_args = [arg for alias in aliases for arg in ("--network-alias", alias)]
            run_args = self._run_args(docker_name, namespace, spec, container, dirs)
            self._docker("run", "--detach", *alias_args, *run_args)
            started[container["name"]] = docker_name
        return started

    def run_job(self, name: str, namespace: str, timeout: float = 300) -> str:
        """Runs a Job's pod to completion and returns its output (fails with it on a non-zero exit)."""
        (container,) = self.run_pod("Job", name, namespace).values()
        try:
            exit_code = self._docker("wait", container, timeout=timeout).stdout.strip()
        except subprocess.TimeoutExpired:
            exit_code = f"none: still running after {timeout:.0f} s"
        logs = self._docker("logs", container)
        output = logs.stdout + logs.stderr
        assert exit_code == "0", f"job {name} exit code {exit_code}; its log ends with:\n{output[-3000:]}"
        return output

    def service_aliases(self, service: str, namespace: str) -> tuple[str, ...]:
        return (service, f"{service}.{namespace}", f"{service}.{namespace}.{self.cluster_domain}")

    def exec_probe(self, container: str, probe: dict[str, Any], timeout: float = 240) -> None:
        """Runs an exec probe until it succeeds (like a startup probe) or the timeout passes."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            result = self._docker("exec", container, *probe["exec"]["command"], check=False)
            if result.returncode == 0:
                return
            last = result.stdout + result.stderr
            state = self._docker("inspect", "-f", "{{.State.Running}}", container).stdout.strip()
            if state != "true":
                logs = self._docker("logs", container, check=False)
                raise AssertionError(f"{container} stopped:\n{(logs.stdout + logs.stderr)[-3000:]}")
            time.sleep(3)
        raise AssertionError(f"probe {probe['exec']['command']} of {container} never passed: {last[-2000:]}")

    def container_ip(self, container: str) -> str:
        template = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
        return self._docker("inspect", "-f", template, container).stdout.strip()
