"""The ``publisher`` command line: list, validate, publish, describe, get.

Exit codes: 0 success; 2 bad usage or an invalid spec, result or setting; 1 a publish or
download that failed. Errors are one line on stderr (``error: ...``); ``--debug`` adds
tracebacks and debug logs.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any, TypeVar

import click

from . import _api
from ._documents import (
    description_to_document,
    dump_document,
    parse_document,
    result_to_document,
)
from ._errors import PluginError, PublisherError, SpecError, TargetExistsError, quoted
from ._models import PublishContext, PublisherSpec
from ._retry import DEFAULT_ATTEMPTS
from ._sizes import format_size, parse_size
from ._transport import DEFAULT_TIMEOUT

__all__ = ["Terminated", "main", "run"]

_state = {"debug": False}

GC_THRESHOLD = 50_000
"""Allocations between the cyclic collector's young-generation passes while the CLI runs.

The default (700) runs the collector ~1,000 times in a publish of 20,000 small files, and
its older generations then walk every object botocore loaded and every file recorded:
0.78 s of a 6-7 s publish (0.29 s of a get), against 0.06 s at this threshold, peak RSS
unchanged (timed with ``gc.callbacks``; docs/performance.md). Only the CLI sets it, for
its own run, and puts the previous thresholds back.
"""

F = TypeVar("F", bound=Callable[..., Any])

_stdout: list[IO[str]] = []
"""The CLI's own stdout while a command runs (see :func:`_plugins_write_to_stderr`)."""


def _echo(message: str, *, nl: bool = True) -> None:
    """Print the command's output on the real stdout, which plugins cannot write to."""
    click.echo(message, nl=nl, file=_stdout[-1] if _stdout else None)


@contextlib.contextmanager
def _plugins_write_to_stderr() -> Iterator[None]:
    """Send everything but the CLI's own output (:func:`_echo`) to stderr meanwhile.

    A plugin that prints while it is imported or inside a hook would otherwise corrupt
    what the CLI prints on stdout (``list --json``, the result of ``publish``). Python's
    ``sys.stdout`` points at ``sys.stderr``, and when stdout is a real file descriptor,
    that descriptor points at stderr's too (so ``os.write(1, ...)`` and child processes
    are caught); both are restored afterwards.
    """
    real = sys.stdout
    try:
        out_fd: int | None = real.fileno()
        err_fd: int | None = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # captured in memory (tests, hosts)
        out_fd = err_fd = None
    saved: int | None = None
    own: IO[str] = real
    if out_fd is not None and err_fd is not None and out_fd != err_fd:
        try:
            real.flush()
            saved = os.dup(out_fd)
        except (OSError, ValueError):
            saved = None
        if saved is not None:
            own = open(  # noqa: SIM115 - closed below
                saved,
                "w",
                encoding=getattr(real, "encoding", None) or "utf-8",
                errors=getattr(real, "errors", None) or "strict",
                closefd=False,
            )
            os.dup2(err_fd, out_fd)
    _stdout.append(own)
    sys.stdout = sys.stderr
    try:
        yield
    finally:
        sys.stdout = real
        _stdout.pop()
        if saved is not None and out_fd is not None:
            with contextlib.suppress(OSError, ValueError):
                real.flush()  # what a plugin left in sys.__stdout__'s buffer goes to stderr
                sys.stderr.flush()
            own.close()  # flushes the CLI's output to the saved descriptor
            os.dup2(saved, out_fd)
            os.close(saved)


def _guarded(command: F) -> F:
    """Run ``command`` under :func:`_plugins_write_to_stderr`.

    Only once its options are parsed: ``--help`` still prints on stdout.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _plugins_write_to_stderr():
            return command(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


class _WarningHandler(logging.Handler):
    """``warning: <message>`` on one line of the current stderr, for records >= WARNING."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = " ".join(record.getMessage().split())
            click.echo(f"warning: {message}", err=True)
        except Exception:
            self.handleError(record)


def _log_warnings(context: click.Context) -> None:
    """Print the framework's and publishers' warnings as ``warning: ...`` lines.

    Until the command ends; Python's last-resort handler would print them bare.
    """
    handler = _WarningHandler()
    loggers = [logging.getLogger(name) for name in ("publisher_core", *_publisher_modules())]
    for logger in loggers:
        logger.addHandler(handler)

    def remove() -> None:
        for logger in loggers:
            logger.removeHandler(handler)

    context.call_on_close(remove)


def _publisher_modules() -> list[str]:
    """Top-level modules of installed publishers, whose loggers ``--debug`` opens up."""
    from importlib import metadata

    from ._registry import ENTRY_POINT_GROUP

    return sorted(
        {
            ep.value.split(".")[0].split(":")[0]
            for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)
        }
    )


def _read_stdin(what: str) -> Any:
    return parse_document(sys.stdin.read(), what=what)


def _load_spec(spec: str) -> PublisherSpec:
    if spec == "-":
        return _api.load_spec(_read_stdin("spec"))
    return _api.load_spec(spec)


def _load_result(result: str) -> Any:
    return _api.load_result(_read_stdin("result") if result == "-" else result)


def _parse_now(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{quoted(value)} is not an ISO 8601 date-time like 2023-09-26T14:05:30Z"
        ) from None
    if parsed.tzinfo is None:
        raise click.BadParameter(f"{quoted(value)} has no time zone; add Z for UTC")
    return parsed


def _parse_size(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    try:
        return None if value is None else parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _context_options(func: Any) -> Any:
    for option in reversed(
        [
            click.option("--job-id", metavar="J", help="Value of {jobID} in the key."),
            click.option("--execution-id", metavar="E", help="Value of {executionID} in the key."),
            click.option("--node-id", metavar="N", help="Value of {nodeID} in the key."),
            click.option(
                "--now",
                metavar="ISO",
                callback=_parse_now,
                help="The instant for {date} and {time} (default: now), e.g. 2023-09-26T14:05:30Z.",
            ),
        ]
    ):
        func = option(func)
    return func


def _context(
    job_id: str | None,
    execution_id: str | None,
    node_id: str | None,
    now: datetime | None,
    *,
    always: bool,
) -> PublishContext | None:
    if not always and job_id is None and execution_id is None and node_id is None and now is None:
        return None
    if now is None:
        return PublishContext(job_id=job_id, execution_id=execution_id, node_id=node_id)
    return PublishContext(job_id=job_id, execution_id=execution_id, node_id=node_id, now=now)


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="""\b
Examples:
  publisher list
  publisher validate 's3://my-bucket/results/{jobID}/,opt=region=eu-west-1'
  publisher publish spec.yaml ./outputs --job-id j1
  publisher publish 'local://runs/{jobID},opt=compress=true' ./outputs --job-id j1 > result.yaml
  publisher describe result.yaml --json > download.json
  publisher get download.json -o ./restored
""",
)
@click.option("--debug", is_flag=True, help="Print tracebacks and debug logs on stderr.")
@click.version_option(package_name="publisher-core", prog_name="publisher")
def main(debug: bool) -> None:
    """Publish job results to durable storage and get them back, verified.

    SPEC is a YAML/JSON file, '-' for stdin, or the imperative form
    'TYPE://DESTINATION,opt=NAME=VALUE,...'. RESULT is the YAML/JSON a publish printed,
    or the output of 'publisher describe --json'.
    """
    _state["debug"] = debug
    if not debug:
        _log_warnings(click.get_current_context())
    else:
        # Debug logs of the framework and its publishers only: SDK loggers (botocore) print
        # request headers and signatures at DEBUG, so they stay at WARNING.
        logging.basicConfig(
            level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
        )
        for name in ("publisher_core", *_publisher_modules()):
            logging.getLogger(name).setLevel(logging.DEBUG)


@main.command(
    "list",
    epilog="""\b
Examples:
  publisher list
  publisher list --json | jq '.[] | select(.status != "ok")'
  PUBLISHER_DISABLED=s3 publisher list
""",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
@_guarded
def list_command(as_json: bool) -> None:
    """List installed publishers: Type, distribution, version and status."""
    rows = _api.default_registry().statuses()
    if as_json:
        _echo(
            dump_document(
                [
                    {
                        "type": r.type,
                        "distribution": r.distribution,
                        "version": r.version,
                        "status": r.status,
                        "error": r.error,
                    }
                    for r in rows
                ],
                "json",
            ),
            nl=False,
        )
        return
    table = [("TYPE", "DISTRIBUTION", "VERSION", "STATUS")] + [
        (
            r.type,
            r.distribution or "-",
            r.version or "-",
            r.status if r.error is None or r.status == "ok" else f"{r.status}: {r.error}",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for row in table:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        _echo("  ".join(cells) + "  " + row[3])


@main.command(
    epilog="""\b
Examples:
  publisher validate spec.yaml
  publisher validate 's3://my-bucket/{jobID}/out,opt=compress=true'
  publisher validate 'local://runs/{jobID}' --job-id j1
  echo '{Type: local, Params: {Key: out}}' | publisher validate -
"""
)
@click.argument("spec")
@_context_options
@_guarded
def validate(
    spec: str,
    job_id: str | None,
    execution_id: str | None,
    node_id: str | None,
    now: datetime | None,
) -> None:
    """Check SPEC completely, writing nothing; every problem is reported at once.

    Without --job-id/--execution-id/--node-id/--now only the key template is checked;
    with them the placeholder values are checked too.
    """
    context = _context(job_id, execution_id, node_id, now, always=False)
    validated = _api.validate(_load_spec(spec), context=context)
    _echo(f"ok: valid {validated.type} spec")


@main.command(
    epilog="""\b
Examples:
  publisher publish spec.yaml ./outputs --job-id j1 --execution-id e1 --node-id n1
  publisher publish 'local://runs/{jobID},opt=compress=true' ./outputs --job-id j1
  publisher publish 's3://my-bucket/results/{date}/' ./outputs --dry-run
  publisher publish spec.yaml ./outputs --output json > result.json
"""
)
@click.argument("spec")
@click.argument("path", type=click.Path(path_type=Path))
@_context_options
@click.option(
    "--output",
    "output_format",
    type=click.Choice(["yaml", "json"]),
    default="yaml",
    show_default=True,
    help="Format of the published result on stdout.",
)
@click.option(
    "--dry-run", is_flag=True, help="Print the keys that would be written; write nothing."
)
@_guarded
def publish(
    spec: str,
    path: Path,
    job_id: str | None,
    execution_id: str | None,
    node_id: str | None,
    now: datetime | None,
    output_format: str,
    dry_run: bool,
) -> None:
    """Publish the result at PATH (a directory or one file) as SPEC says.

    Prints the published result (YAML by default) on stdout; keep it to describe or get
    the result later.
    """
    context = _context(job_id, execution_id, node_id, now, always=True)
    loaded = _load_spec(spec)
    if dry_run:
        planned = _api.plan(loaded, path, context=context)
        click.echo(
            f"# dry run: {planned.type} would write {len(planned.keys)} "
            f"{'object' if len(planned.keys) == 1 else 'objects'} in {planned.mode} mode "
            f"to {planned.location}",
            err=True,
        )
        for key in planned.keys:
            _echo(key)
        return
    started = time.monotonic()
    result = _api.publish(loaded, path, context=context)
    with _holding():
        _echo(
            dump_document(
                result_to_document(result), "json" if output_format == "json" else "yaml"
            ),
            nl=False,
        )
    if sys.stderr.isatty():
        click.echo(
            f"published {path} with {result.type} in {time.monotonic() - started:.1f} s", err=True
        )


@main.command(
    epilog="""\b
Examples:
  publisher describe result.yaml
  publisher describe result.yaml --json > download.json   # then, anywhere:
  publisher get download.json -o ./restored
"""
)
@click.argument("result")
@click.option(
    "--json", "as_json", is_flag=True, help="Print JSON (the input 'publisher get' takes)."
)
@_guarded
def describe(result: str, as_json: bool) -> None:
    """Turn RESULT into download items: path, URL, size, SHA-256 and expiry.

    The output lets 'publisher get' fetch and verify the result with no storage
    credentials; pre-signed URLs in it are secrets until they expire.
    """
    description = _api.describe(_load_result(result))
    _echo(
        dump_document(description_to_document(description), "json" if as_json else "yaml"), nl=False
    )


@main.command(
    epilog="""\b
Examples:
  publisher get result.yaml -o ./restored
  publisher get download.json -o ./restored      # from 'publisher describe --json'
  publisher publish spec.yaml ./out | publisher get - -o ./copy
"""
)
@click.argument("result")
@click.option(
    "-o",
    "--output-dir",
    "output",
    type=click.Path(path_type=Path),
    help="Directory to rebuild the result in; must not exist or be empty "
    "(default: ./NAME of the result).",
)
@click.option(
    "--timeout",
    metavar="SECONDS",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Give up on a connection or a read that is silent this long (then retry).",
)
@click.option(
    "--attempts",
    metavar="N",
    type=click.IntRange(min=1),
    default=DEFAULT_ATTEMPTS,
    show_default=True,
    help="Tries per HTTP(S) download: throttling (429), 5xx errors, dropped connections, "
    "timeouts and damaged bodies are retried, with exponential backoff.",
)
@click.option(
    "--max-size",
    "max_bytes",
    metavar="SIZE",
    callback=_parse_size,
    help="Stop when the result would take more: every download counts as it arrives, "
    "and an archive's content, declared or decompressed. Bytes, or a number with K, M, "
    "G or T (binary, e.g. 500M, 1.5G) (default: the free space where the result is "
    "rebuilt).",
)
@_guarded
def get(
    result: str, output: Path | None, timeout: float, attempts: int, max_bytes: int | None
) -> None:
    """Download RESULT, verify every byte, and rebuild its tree in a directory.

    Sizes and SHA-256 are checked before anything is extracted; the directory appears
    only when everything checked out. A result larger than --max-size (or than the free
    space) is refused as it arrives: files with no recorded size and decompression bombs
    included.
    """
    report = _api.get(
        _load_result(result), output, timeout=timeout, attempts=attempts, max_bytes=max_bytes
    )
    note = f", {report.unverified} without a recorded SHA-256" if report.unverified else ""
    _echo(
        f"verified {report.verified} of {report.verified + report.unverified} downloads by size "
        f"and SHA-256{note}; {report.files} files ({format_size(report.bytes)}) in {report.target}"
    )


_LINE_LIMIT = 1000
"""Characters of a message the CLI prints that neither it nor the framework wrote."""


def _one_line(text: str) -> str:
    """``text`` on one line, cut to :data:`_LINE_LIMIT` characters."""
    line = " ".join(text.split())
    return line if len(line) <= _LINE_LIMIT else line[:_LINE_LIMIT] + "..."


def _exit_code(exc: PublisherError) -> int:
    return 2 if isinstance(exc, (SpecError, PluginError, TargetExistsError)) else 1


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so a publish cleans up exactly as after Ctrl-C."""


_held: list[int] = []
"""Signals that arrived while a finished publish printed its result (see :func:`_holding`)."""
_holding_state = {"on": False}


def _interrupt(signum: int, _frame: object) -> None:
    """SIGINT and SIGTERM: raise in the main thread, unless a result is being delivered."""
    if _holding_state["on"]:
        _held.append(signum)
        return
    if signum == signal.SIGTERM:
        raise Terminated
    raise KeyboardInterrupt


@contextlib.contextmanager
def _holding() -> Iterator[None]:
    """Hold interrupts while a published result is printed, then say they came too late.

    The publish has finished: its result is complete at the destination, and the record
    on stdout is the only way to find it; an interrupt now would print nothing and leave
    the result behind. So the record is printed, and the command still succeeds.
    """
    _held.clear()
    _holding_state["on"] = True
    try:
        yield
        (_stdout[-1] if _stdout else sys.stdout).flush()  # the record is out before any raise
    finally:
        _holding_state["on"] = False
    for signum in dict.fromkeys(_held):
        name = signal.Signals(signum).name
        click.echo(f"warning: {name} arrived after the result was published; it is kept", err=True)


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (the console script's entry point).

    SIGINT and SIGTERM stop a publish or get part-way: what it wrote is removed (a
    warning names anything that could not be), then the exit code is 130 or 143.
    """
    _state["debug"] = False
    in_main = threading.current_thread() is threading.main_thread()
    previous = (
        {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
        if in_main
        else {}
    )
    thresholds = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, *thresholds[1:])
    try:
        return _run(argv)
    finally:
        # The handlers first: a signal after the command ended must reach the previous
        # handler, not raise from here (any work before this widens that window).
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        gc.set_threshold(*thresholds)


def _run(argv: list[str] | None) -> int:
    try:
        # Not main.main(): it turns an interrupt into click.Abort after printing a blank
        # line; interrupts reach the handlers below as they are.
        args = sys.argv[1:] if argv is None else argv
        with main.make_context("publisher", list(args)) as context:
            main.invoke(context)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.Abort:
        click.echo("error: aborted", err=True)
        return 130
    except click.ClickException as exc:
        ctx = getattr(exc, "ctx", None)
        no_args = getattr(click.exceptions, "NoArgsIsHelpError", None)  # click >= 8.2
        if no_args is not None and isinstance(exc, no_args) and ctx is not None:
            click.echo(ctx.get_help(), err=True)  # bare 'publisher': the help, not one line
            return 2
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        click.echo(f"error: {_one_line(exc.format_message())}{hint}", err=True)
        return exc.exit_code
    except PublisherError as exc:
        if _state["debug"]:
            traceback.print_exc()
        click.echo(f"error: {' '.join(str(exc).split())}", err=True)
        return _exit_code(exc)
    except Terminated:
        click.echo("error: terminated (SIGTERM)", err=True)
        return 143
    except KeyboardInterrupt:
        click.echo("error: interrupted (SIGINT)", err=True)
        return 130
    except Exception as exc:  # a bug, or a plugin's; keep the one-line promise
        if _state["debug"]:
            traceback.print_exc()
        click.echo(
            f"error: unexpected {type(exc).__name__}: {_one_line(str(exc))} "
            "(run 'publisher --debug ...' for a traceback)",
            err=True,
        )
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run())
