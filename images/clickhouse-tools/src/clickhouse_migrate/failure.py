"""How an unexpected error (exit 1) is reported: the cause on one line, then everything else.

An operator reads the first line: which step of the run failed, on which server, the server's error code,
its name and message. The lines after it, indented, keep the whole detail for whoever debugs it: the
server's full message with its stack trace and the tool's own traceback. Nothing is dropped; each line is
escaped (a name with a newline cannot start a line of its own) and the passwords are masked.

Where the error happened is recorded on the exception as it passes through (`add_note`): the server by
`Server.run`, the step by `step()`, the innermost of each winning.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from clickhouse_driver import errors as driver_errors

from .errors import MigrationError
from .report import escape
from .sql import mask_secret

_STEP_NOTE = "clickhouse-migrate step: "
_SERVER_NOTE = "clickhouse-migrate server: "
_CODE_NAMES = {code: name for name, code in vars(driver_errors.ErrorCodes).items() if isinstance(code, int)}
DETAIL_INDENT = "    "


@contextmanager
def step(description: str) -> Iterator[None]:
    """Name the step of the run for an unexpected error raised inside it (also usable as a decorator)."""
    try:
        yield
    except MigrationError:
        raise  # already says what failed
    except Exception as error:
        _note_once(error, _STEP_NOTE, description)
        raise


def note_server(error: BaseException, server: str) -> None:
    """Remember which server (`source host:port`) raised `error`."""
    _note_once(error, _SERVER_NOTE, server)


def _note_once(error: BaseException, prefix: str, text: str) -> None:
    if _noted(error, prefix) is None:
        error.add_note(prefix + text)


def _noted(error: BaseException, prefix: str) -> str | None:
    for note in getattr(error, "__notes__", ()):
        if isinstance(note, str) and note.startswith(prefix):
            return note.removeprefix(prefix)
    return None


def cause(error: BaseException) -> str:
    """The server's code, code name and message (without its stack trace), or the exception's type and
    message: all of it, a newline in a name included (escaped when printed)."""
    if not isinstance(error, driver_errors.ServerException):
        return f"{type(error).__name__}: {str(error).strip() or '-'}"
    text = error.message or ""
    head, separator, _stack_trace = text.rpartition(". Stack trace:\n")  # how the driver appends it
    message = (head if separator else text).strip().removeprefix("DB::Exception: ")
    name = _CODE_NAMES.get(error.code)
    if name:  # current servers end the message with the code name themselves
        message = message.removesuffix(f"({name})").rstrip()
    return f"ClickHouse error {error.code}{f' ({name})' if name else ''}: {message.rstrip('. ')}"


def unexpected_error_lines(error: BaseException, secrets: Sequence[str]) -> list[str]:
    """The report of an unexpected error: the one-line cause, then the indented detail."""
    step_name, server = _noted(error, _STEP_NOTE), _noted(error, _SERVER_NOTE)
    where = (f" while {step_name}," if step_name else "") + (f" on {server}" if server else "")
    lines = [
        f"clickhouse-migrate: error: unexpected error{where.rstrip(',')}: {cause(error)}",
        "clickhouse-migrate: detail (the server's whole message and the tool's traceback):",
    ]
    detail = "".join(traceback.format_exception(error)).splitlines()
    lines += [DETAIL_INDENT + line for line in detail if line.strip()]
    for secret in secrets:
        lines = [mask_secret(line, secret) for line in lines]
    return [escape(line) for line in lines]
