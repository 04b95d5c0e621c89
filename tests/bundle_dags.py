"""DAG files the git-bundle tests push: the local Airflow (tests/dags) and the live platform (tests/e2e)
prove the same behaviour with the same DAGs; only how a run's gate opens differs (a file on this
machine, an Airflow Variable on the cluster)."""

from __future__ import annotations

from dataclasses import dataclass

GREETING = "hello from git"

HELLO_DAG = """
from __future__ import annotations

from airflow.sdk import DAG, task

with DAG("{dag_id}", schedule=None, catchup=False, tags=["{tag}"]) as dag:

    @task
    def hello() -> str:
        return "{greeting}"

    hello()
"""

BROKEN_DAG = """
from airflow.sdk import DAG
import a_module_that_does_not_exist  # the import error the API must report

with DAG("{dag_id}", schedule=None) as dag:
    pass
"""

VERSIONED_DAG = '''
from __future__ import annotations

import time
from pathlib import Path

from airflow.sdk import DAG, Variable, task

CODE_VERSION = "{version}"

# The description changes with the code, so a push is also a new DAG version (the structure changed).
with DAG(
    "{dag_id}",
    description=f"code {{CODE_VERSION}}",
    schedule=None,
    catchup=False,
    tags=["{tag}"],
    params={{"gate": {gate.default}}},
) as dag:

    @task
    def wait_for_gate(gate: str) -> None:
        """Keeps the run in flight until the test opens the gate."""
        deadline = time.monotonic() + {gate.timeout}
        while {gate.closed}:
            if time.monotonic() > deadline:
                raise TimeoutError(f"gate {{gate}} never opened")
            time.sleep({gate.poll})

    @task
    def report() -> str:
        return CODE_VERSION

    wait_for_gate(gate="{{{{ params.gate }}}}") >> report()
'''


@dataclass(frozen=True)
class Gate:
    """How a versioned DAG's run waits for the test: Python source for the `gate` param's default and for
    "still closed" (`gate` is the rendered param), with the seconds to give up after and between checks."""

    default: str
    closed: str
    timeout: int
    poll: int


# The run gets a file path as its gate and waits until the test creates that file.
FILE_GATE = Gate(default='""', closed="gate and not Path(gate).exists()", timeout=300, poll=1)


def variable_gate(variable: str) -> Gate:
    """The run is triggered with gate True and waits until the test sets `variable` to "open"."""
    closed = f'gate == "True" and Variable.get("{variable}", default="closed") != "open"'
    return Gate(default="False", closed=closed, timeout=600, poll=2)


def hello_dag(dag_id: str, tag: str) -> str:
    """A DAG whose one task returns GREETING."""
    return HELLO_DAG.format(dag_id=dag_id, tag=tag, greeting=GREETING)


def broken_dag(dag_id: str) -> str:
    """A DAG file that fails to import."""
    return BROKEN_DAG.format(dag_id=dag_id)


def versioned_dag(dag_id: str, tag: str, version: str, gate: Gate) -> str:
    """A DAG whose `report` task returns `version`, after `wait_for_gate` lets the run go on."""
    return VERSIONED_DAG.format(dag_id=dag_id, tag=tag, version=version, gate=gate)
