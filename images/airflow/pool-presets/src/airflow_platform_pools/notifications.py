"""E-mail on a DAG run's failure/success through Airflow's own SmtpNotifier, configured by the chart.

The chart publishes `notifications` in the presets (recipients, sender, the SMTP connection id) and its
`airflow-bootstrap` Job writes that SMTP connection into Airflow. A DAG opts in with:

    with DAG(..., **dag_notifications()):
"""

from __future__ import annotations

from typing import Any

from . import presets

SUBJECT = "[airflow] {{ dag.dag_id }} run {{ run_id }}: %s"
BODY = (
    "DAG {{ dag.dag_id }}, run {{ run_id }}: %s.<br>"
    "Task: {{ ti.task_id if ti else 'n/a' }}; reason: {{ reason if reason is defined else '' }}<br>"
    "Params: {{ params }}"
)


def _notifier(settings: dict[str, Any], outcome: str) -> Any:
    # Imported here: the SMTP provider is only needed when notifications are enabled.
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    return SmtpNotifier(
        to=list(settings["to"]),
        from_email=settings["from"],
        smtp_conn_id=settings["connectionId"],
        subject=SUBJECT % outcome,
        html_content=BODY % outcome,
    )


def dag_notifications() -> dict[str, Any]:
    """DAG keyword arguments: on_failure_callback (and on_success_callback) when the chart enables them."""
    settings = presets().get("notifications") or {}
    if not settings.get("enabled"):
        return {}
    callbacks = {"on_failure_callback": _notifier(settings, "failed")}
    if settings.get("onSuccess"):
        callbacks["on_success_callback"] = _notifier(settings, "succeeded")
    return callbacks
