"""clickhouse_db_sync: copy a ClickHouse database to another server, safely.

start >> preflight >> drop_destination_db >> create_db >> migrate_data >> end

- Endpoints are **named profiles** the chart publishes (host, port, user, password Secret, TLS); a run
  only chooses profile names and database names, each checked by a strict pattern when triggered.
- `preflight` runs `clickhouse-migrate --dry-run` with the run's endpoints and credentials (server
  identity, authentication, source database, server-to-server route); nothing destructive runs unless it
  passes.
- `strategy`: `recreate` drops the destination database, recreates it and copies into it (empty
  meanwhile); `swap` skips the drop, and the tool copies into a staging database and swaps it in once
  verified (the destination stays readable with its previous copy until then).
- Refusals (bad input, tool exit codes 2 and 4-8, the preflight's refusal) fail at once; only an
  unreachable server (exit 3) and infrastructure failures (pod eviction) are retried.
- One run at a time; every task and pod has a deadline; e-mail on failure/success when configured.

Passwords never appear in the DAG, a param or the pod spec: they come from the profile's Secret as
environment variables. `clickhouse-migrate` reads them from there; Debian's `clickhouse-client` 18.16
takes a password only as `--password`, so its argument is the Kubernetes reference `$(CLICKHOUSE_PASSWORD)`,
written by this DAG (Kubernetes substitutes it when the container starts). No param can add such a
reference: every param is an enum or matches a pattern without `$`, `(` or spaces, and there is no shell.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from datetime import timedelta
from typing import Any

from airflow.providers.cncf.kubernetes.secret import Secret
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Param, TriggerRule
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from airflow_platform_pools import PresetsError, pod_settings, presets
from airflow_platform_pools.notifications import dag_notifications
from airflow_platform_pools.operators import PlatformPodOperator
from kubernetes.client import models as k8s

SYNC = presets()["clickhouseSync"]
PROFILES: dict[str, dict[str, Any]] = SYNC["profiles"]
CLIENT_POOL = "general"
MIGRATE_POOL = "ssd"  # long-running, I/O-heavy copy
STRATEGIES = ("recreate", "swap")
# A ClickHouse identifier: also keeps SQL, shell and `$(VAR)` syntax out of every argument. `$(?!\n)`:
# Python's `$` (the trigger's check) also matches before a final newline; JavaScript's (the UI) never.
IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
DATABASE_NAME = rf"^{IDENTIFIER}$(?!\n)"
# The server's own databases: a run never copies from, drops or overwrites them, whatever the case.
RESERVED_DATABASES = ("system", "default", "information_schema")
# The server keeps a database as a file `<name>.sql.tmp` of at most 255 bytes, and the swap strategy also
# creates `<destination>__migrate_previous`: longer names failed at create_db or in the copy (the tool
# refuses them too, exit 2).
MAX_DATABASE = 255 - len(".sql.tmp")
MAX_SWAP_DESTINATION_DB = MAX_DATABASE - len("__migrate_previous")
HOST_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")
USER_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]*$")
# clickhouse-migrate: 3 = a server is unreachable. clickhouse-client (code % 256): 209 socket timeout,
# 210 network error. Everything else is the job's verdict and fails without retry.
MIGRATE_RETRY_EXIT_CODES = (3,)
CLIENT_RETRY_EXIT_CODES = (209, 210)
CLIENT_CONFIG_DIR = "/etc/clickhouse-client-platform"
TIMEOUTS = SYNC["timeouts"]


def _case_insensitive(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in word)


# The JSON-schema pattern checked when the run is triggered (no inline flags: the UI checks it too).
DATABASE = (
    "^(?!(" + "|".join(_case_insensitive(name) for name in RESERVED_DATABASES) + ")$)" + DATABASE_NAME[1:]
)


def check_profiles(profiles: dict[str, dict[str, Any]]) -> None:
    """Profiles come from the chart (schema-validated); checked again because they reach arguments."""
    for name, profile in profiles.items():
        problems = [
            field
            for field, pattern in (("host", HOST_NAME), ("user", USER_NAME))
            if not pattern.match(str(profile.get(field, "")))
        ]
        if not isinstance(profile.get("port"), int) or not 1 <= profile["port"] <= 65535:
            problems.append("port")
        if problems:
            raise PresetsError(f"clickhouseSync profile {name!r}: invalid {', '.join(problems)}")


def _canonical_host(host: str, namespace: str) -> str:
    """The name the job pod's resolver ends up querying for `host` (Kubernetes Service short names)."""
    host = host.lower().rstrip(".")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    suffix = ".svc.cluster.local"
    if host.endswith(suffix):
        return host
    if host.endswith(".svc"):
        return host + ".cluster.local"
    labels = host.split(".")
    if len(labels) == 1:
        return f"{host}.{namespace}{suffix}"
    if len(labels) == 2 and labels[1] in _workload_namespaces():
        return host + suffix
    return host


def _workload_namespaces() -> set[str]:
    return {pool["namespace"] for pool in presets()["pools"].values()}


def _addresses(host: str) -> set[str]:
    """Every address `host` resolves to here; empty when it does not resolve (then names decide)."""
    try:
        return {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return set()


def same_server(first: dict[str, Any], second: dict[str, Any], namespace: str) -> bool:
    """Whether two profiles reach the same server: by name (case, FQDN, trailing dot) or by address."""
    if int(first["port"]) != int(second["port"]):
        return False
    names = {_canonical_host(profile["host"], namespace) for profile in (first, second)}
    if len(names) == 1:
        return True
    return bool(_addresses(first["host"]) & _addresses(second["host"]))


def check_run(params: dict[str, Any], namespace: str) -> None:
    """Refusals that need two params together, and the database names again (also checked when triggered)."""
    source, destination = PROFILES[params["source_profile"]], PROFILES[params["destination_profile"]]
    for param in ("source_db", "destination_db"):
        if not re.fullmatch(IDENTIFIER, params[param]):
            raise AirflowFailException(
                f"{param} {params[param]!r} is not a database name (letters, digits, _)"
            )
        if params[param].lower() in RESERVED_DATABASES:
            raise AirflowFailException(f"{param} {params[param]!r} is a system database")
    length = len(params["destination_db"])
    if length > MAX_DATABASE or (params.get("strategy") == "swap" and length > MAX_SWAP_DESTINATION_DB):
        raise AirflowFailException(
            f"destination_db is {length} characters long: at most {MAX_DATABASE}, {MAX_SWAP_DESTINATION_DB} "
            "with strategy swap (the server's file name limit; swap also creates <name>__migrate_previous)"
        )
    if source.get("secure"):
        raise AirflowFailException(
            f"source profile {params['source_profile']!r} uses TLS: clickhouse-migrate connects to the "
            "source without TLS; choose a plain-text source profile"
        )
    if params["source_db"] == params["destination_db"] and same_server(source, destination, namespace):
        raise AirflowFailException(
            f"destination {params['destination_profile']}/{params['destination_db']} is the source "
            f"database ({params['source_profile']}/{params['source_db']}): choose another destination"
        )


def _check_run(context: Any) -> None:
    check_run(context["params"], context["task"].namespace)


def _check_run_or_skip_drop(context: Any) -> None:
    _check_run(context)
    if context["params"]["strategy"] == "swap":
        raise AirflowSkipException("strategy swap: the destination database is kept until the swap")


def password_secrets(env_by_side: dict[str, str], params: dict[str, Any]) -> list[Secret]:
    """The Secret references of the chosen profiles (decided per run, so not a template field)."""
    secrets = []
    for env_name, side in env_by_side.items():
        profile = PROFILES[params[f"{side}_profile"]]
        secrets.append(Secret("env", env_name, profile["secretName"], profile["passwordKey"]))
    return secrets


class ClickHousePodOperator(PlatformPodOperator):
    """A pod whose password environment comes from the Secrets of the run's chosen profiles."""

    def __init__(self, *, password_env: dict[str, str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.password_env = password_env

    def execute(self, context: Any) -> Any:
        self.secrets = password_secrets(self.password_env, context["params"])
        return super().execute(context)


def _profile(side: str, field: str) -> str:
    return f"{{{{ profiles[params.{side}_profile].{field} }}}}"


def _endpoint_arguments(side: str) -> list[str]:
    arguments = []
    for flag, field in (("host", "host"), ("port", "port"), ("user", "user")):
        arguments += [f"--{side}-{flag}", _profile(side, field)]
    return [*arguments, f"--{side}-db", f"{{{{ params.{side}_db }}}}"]


def migrate_arguments(*, dry_run: bool) -> list[str]:
    """The tool's flags; never a combination it refuses (verify without TLS: a profile's `verify` is what
    to do when it uses TLS)."""
    yes_no = "{{{{ 'y' if {} else 'n' }}}}"
    destination = "profiles[params.destination_profile]"
    return [
        *_endpoint_arguments("source"),
        *_endpoint_arguments("destination"),
        "--destination-secure-flag", yes_no.format(f"{destination}.secure"),
        "--destination-verify-flag", yes_no.format(f"{destination}.secure and {destination}.verify"),
        "--execute-query-on", SYNC["executeQueryOn"],
        "--strategy", "{{ params.strategy }}",
        *(["--dry-run"] if dry_run else ["--verify"]),
        "--skip-patterns", *SYNC["skipPatterns"],
    ]  # fmt: skip


def _migrate_task(task_id: str, *, dry_run: bool, minutes: int, **settings: Any) -> ClickHousePodOperator:
    return ClickHousePodOperator(
        task_id=task_id,
        name=task_id.replace("_", "-"),
        image=presets()["images"]["clickhouseTools"],
        cmds=["clickhouse-migrate"],
        arguments=migrate_arguments(dry_run=dry_run),
        password_env={
            "CLICKHOUSE_SOURCE_PASSWORD": "source",
            "CLICKHOUSE_DESTINATION_PASSWORD": "destination",
        },
        retry_exit_codes=MIGRATE_RETRY_EXIT_CODES,
        execution_timeout=timedelta(minutes=minutes),
        active_deadline_seconds=minutes * 60,
        **pod_settings(MIGRATE_POOL, **settings),
    )


CLIENT_CONFIG = (
    "{{ ('tls-verify' if profiles[params.destination_profile].verify else 'tls-no-verify') "
    "if profiles[params.destination_profile].secure else 'plain' }}"
)


def _client_task(task_id: str, statement: str, **kwargs: Any) -> ClickHousePodOperator:
    """clickhouse-client against the destination profile, called directly (no shell)."""
    minutes = TIMEOUTS["clientTaskMinutes"]
    config_volume = k8s.V1Volume(
        name="clickhouse-client-config",
        config_map=k8s.V1ConfigMapVolumeSource(name=SYNC["clientConfigMap"]),
    )
    mount = k8s.V1VolumeMount(name="clickhouse-client-config", mount_path=CLIENT_CONFIG_DIR, read_only=True)
    return ClickHousePodOperator(
        task_id=task_id,
        name=task_id.replace("_", "-"),
        image=presets()["images"]["clickhouseTools"],
        cmds=["clickhouse-client"],
        arguments=[
            f"--config-file={CLIENT_CONFIG_DIR}/{CLIENT_CONFIG}.xml",
            f"--host={_profile('destination', 'host')}",
            f"--port={_profile('destination', 'port')}",
            f"--user={_profile('destination', 'user')}",
            # Kubernetes substitutes the Secret's value when the container starts (see module doc).
            "--password",
            "$(CLICKHOUSE_PASSWORD)",
            f"--query={statement}",
        ],
        password_env={"CLICKHOUSE_PASSWORD": "destination"},
        retry_exit_codes=CLIENT_RETRY_EXIT_CODES,
        execution_timeout=timedelta(minutes=minutes),
        active_deadline_seconds=minutes * 60,
        **pod_settings(CLIENT_POOL, volumes=[config_volume], volume_mounts=[mount]),
        **kwargs,
    )


def _params() -> dict[str, Param]:
    profile_names = sorted(PROFILES)
    params: dict[str, Param] = {}
    for side in ("source", "destination"):
        defaults = SYNC[side]
        params[f"{side}_profile"] = Param(
            defaults["profile"], type="string", enum=profile_names,
            description=f"{side} server: one of the endpoint profiles the platform defines",
        )  # fmt: skip
        params[f"{side}_db"] = Param(
            defaults["database"], type="string", pattern=DATABASE, maxLength=MAX_DATABASE,
            description=f"{side} database (letters, digits, _; never system, default, INFORMATION_SCHEMA)",
        )  # fmt: skip
    params["strategy"] = Param(
        SYNC["strategy"], type="string", enum=list(STRATEGIES),
        description="recreate: drop, create, copy. swap: copy into staging, verify, swap (no downtime)",
    )  # fmt: skip
    return params


check_profiles(PROFILES)
check_run(
    {
        "source_profile": SYNC["source"]["profile"],
        "source_db": SYNC["source"]["database"],
        "destination_profile": SYNC["destination"]["profile"],
        "destination_db": SYNC["destination"]["database"],
        "strategy": SYNC["strategy"],
    },
    presets()["pools"][CLIENT_POOL]["namespace"],
)

with DAG(
    dag_id="clickhouse_db_sync",
    description="Copy a ClickHouse database to another server (preflight, recreate or swap)",
    schedule=None,
    catchup=False,
    is_paused_upon_creation=True,
    max_active_runs=1,  # two runs would drop the database the other is copying into
    dagrun_timeout=timedelta(minutes=TIMEOUTS["runMinutes"]),
    tags=["clickhouse", "internal"],
    default_args={"retries": SYNC["retries"], "retry_delay": timedelta(seconds=SYNC["retryDelaySeconds"])},
    params=_params(),
    user_defined_macros={"profiles": PROFILES},
    doc_md=__doc__,
    **dag_notifications(),
) as dag:
    start = EmptyOperator(task_id="start")
    preflight = _migrate_task(
        "preflight", dry_run=True, minutes=TIMEOUTS["preflightMinutes"], pre_execute=_check_run
    )
    drop_destination_db = _client_task(
        "drop_destination_db",
        "DROP DATABASE IF EXISTS `{{ params.destination_db }}`",
        pre_execute=_check_run_or_skip_drop,
    )
    create_db = _client_task(
        "create_db",
        "CREATE DATABASE IF NOT EXISTS `{{ params.destination_db }}`",
        pre_execute=_check_run,
        trigger_rule=TriggerRule.NONE_FAILED,  # runs after a skipped drop (swap)
    )
    migrate_data = _migrate_task(
        "migrate_data",
        dry_run=False,
        minutes=TIMEOUTS["migrateMinutes"],
        pre_execute=_check_run,
        deferrable=SYNC["deferrable"],
        logging_interval=SYNC["loggingIntervalSeconds"],
    )
    end = EmptyOperator(task_id="end")

    start >> preflight >> drop_destination_db >> create_db >> migrate_data >> end
