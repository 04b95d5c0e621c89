"""Failures the tool reports as one line, each with its own exit code (listed in --help)."""

from __future__ import annotations

import re
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    UNEXPECTED = 1
    USAGE = 2  # argparse: bad or missing flags, before any connection
    UNREACHABLE = 3
    AUTHENTICATION = 4
    SOURCE_DATABASE_MISSING = 5
    SAME_SOURCE_AND_DESTINATION = 6
    UNSUPPORTED = 7  # a requested feature the server lacks (e.g. DDL dictionaries on the destination)
    SELECTION = 8  # --tables names an object that does not exist, or a dependency cycle
    COPY_FAILED = 9  # DDL or data copy of at least one object failed
    VERIFY_MISMATCH = 10  # counts or checksums differ after the copy
    INTERRUPTED = 130  # SIGINT or SIGTERM: the tool's queries were killed on both servers


EXIT_CODE_HELP = """exit codes:
  0  success
  1  unexpected error: the first line says the step, the server and its error code and message; the
     lines after it the server's whole message and the tool's traceback
  2  bad command line (nothing was contacted): flags of which one makes the other meaningless, a reserved
     source (system, INFORMATION_SCHEMA) or destination (also default) database, a host that is no host
     name or IP address
  3  a server is unreachable, or the executing server cannot reach the other through remote() (retryable)
  4  authentication failed
  5  the source database does not exist
  6  destination is the same server and database as the source (compared by what the servers report), or
     the executing server's remote() leads back to itself while the tool reaches another server there
  7  a server lacks a requested feature (DDL dictionaries before 19.17, remoteSecure() on 18.16, a --setting
     it does not know, remote() of a dotted database or of an IPv6 address on an old server, pushing
     MATERIALIZED from 18.16)
  8  --tables names unknown objects, the objects have a dependency cycle, or a materialized view writes TO a
     database the destination lacks
  9  creating or copying at least one object failed (all failures are listed)
 10  verification found a mismatch (every mismatching object is listed), or far fewer rows were written
     than the plan estimated
130  interrupted (SIGINT/SIGTERM): the tool's queries were killed on both servers
codes 2-8 are raised before anything is written to the destination; with --strategy swap (the default)
the previous destination copy stays readable and complete whatever the exit code."""


class MigrationError(Exception):
    """An error with a clear one-line message and a dedicated exit code."""

    def __init__(self, exit_code: ExitCode, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.message = message


def first_line(error: BaseException) -> str:
    """The server's or library's message without stack trace: one line for a report."""
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    line = message.strip().splitlines()[0] if message.strip() else type(error).__name__
    line = re.sub(r"\.?\s*Stack trace:.*$", "", line.removeprefix("DB::Exception: "))
    return line.rstrip(". ")
