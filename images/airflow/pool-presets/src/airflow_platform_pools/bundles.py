"""The platform's git DAG bundle: the provider's GitDagBundle, plus failures you can see in the API.

Airflow logs a bundle that cannot be fetched (unreachable repository, wrong credentials, missing
branch) only in the dag-processor log and retries it; the bundle's DAGs simply stop changing. This
subclass also records the failure as an import error of the bundle (UI "Import errors",
`GET /api/v2/importErrors`, `bundle_name` = the bundle), with git's message, and removes it as soon as
a fetch succeeds again. It does nothing else: cloning, versions and checkouts are the provider's.

Only the dag-processor records (it is the process with database access); in worker pods the bundle
behaves exactly like the provider's.
"""

from __future__ import annotations

import logging
import os
import re
import shutil

from airflow.providers.git.bundles.git import GitDagBundle as ProviderGitDagBundle

log = logging.getLogger(__name__)

# Import errors are keyed by file name; this one names the bundle, never a real file of it.
ERROR_FILENAME = "<git bundle {name}>"
# Credentials could only reach a message inside a URL's user-info; never store them.
URL_CREDENTIALS = re.compile(r"(\w+://)[^/@\s]+@")


def _in_dag_processor() -> bool:
    # DagFileProcessorManager marks its process so (airflow.dag_processing.manager.before_run).
    return os.environ.get("_AIRFLOW_PROCESS_CONTEXT") == "server"


def failure_message(bundle: ProviderGitDagBundle, error: BaseException) -> str:
    causes = []
    current: BaseException | None = error
    while current is not None and len(causes) < 5:
        causes.append(f"{type(current).__name__}: {current}")
        current = current.__cause__ or current.__context__
    text = (
        f"DAG bundle {bundle.name!r} cannot be fetched from {bundle.repo_url} "
        f"(ref {bundle.tracking_ref!r}); its DAGs keep their last parsed version until this is fixed.\n"
        + "\n".join(causes)
    )
    return URL_CREDENTIALS.sub(r"\1***@", text)


class GitDagBundle(ProviderGitDagBundle):
    """GitDagBundle whose fetch failures are import errors of the bundle (see the module docstring)."""

    def initialize(self) -> None:
        try:
            super().initialize()
        except Exception as error:
            self._report(error)
            self._discard_tracking_clone()
            raise
        self._report(None)

    def _discard_tracking_clone(self) -> None:
        """A failed first checkout (e.g. of a branch not pushed yet) leaves a clone the provider reuses
        without fetching into it, so the branch would stay missing until a restart: start it afresh."""
        if self.version is None and self.repo_path.exists():
            with self.lock():
                shutil.rmtree(self.repo_path, ignore_errors=True)

    def refresh(self) -> None:
        try:
            super().refresh()
        except Exception as error:
            self._report(error)
            raise
        self._report(None)

    def _report(self, error: BaseException | None) -> None:
        if self.version or not _in_dag_processor():
            return  # a worker's checkout of one version: the task's log has the error
        try:
            _store(self.name, None if error is None else failure_message(self, error))
        except Exception:  # reporting must never turn a fetch problem into a crash
            log.exception("Could not record the state of DAG bundle %s as an import error", self.name)


def _store(bundle_name: str, message: str | None) -> None:
    from airflow.models.errors import ParseImportError
    from airflow.utils import timezone
    from airflow.utils.session import create_session
    from sqlalchemy import delete, select

    filename = ERROR_FILENAME.format(name=bundle_name)
    with create_session() as session:
        if message is None:
            session.execute(
                delete(ParseImportError).where(
                    ParseImportError.bundle_name == bundle_name, ParseImportError.filename == filename
                )
            )
            return
        row = session.scalar(
            select(ParseImportError).where(
                ParseImportError.bundle_name == bundle_name, ParseImportError.filename == filename
            )
        )
        if row is None:
            log.error("DAG bundle %s: %s", bundle_name, message)
            row = ParseImportError(filename=filename, bundle_name=bundle_name)
            session.add(row)
        row.timestamp = timezone.utcnow()
        row.stacktrace = message
