r"""Key naming shared by every publisher: placeholders, suffix rules, store key rules.

1. ``{jobID} {executionID} {nodeID} {date} {time}`` are substituted; date and time come
   from the one UTC ``now`` of the publish context.
2. A substituted value may not contain ``/``, ``\`` or control characters, nor be ``.``
   or ``..``: it could change the key's shape or escape a root.
3. Archive keys end in ``.tar.gz`` (or ``.tgz``); directory keys end in ``/``.
4. The final key is valid Unicode (it encodes as UTF-8) of at most 1024 UTF-8 bytes, has
   no empty, ``.`` or ``..`` segments, no leading ``/`` and no control characters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from ._convert import unicode_problem
from ._errors import Problem, PublishError, SpecError, quoted, summarize
from ._models import PublishContext
from ._names import KnownNames

__all__ = [
    "ARCHIVE_SUFFIXES",
    "MAX_KEY_BYTES",
    "PLACEHOLDERS",
    "check_key",
    "key_problems",
    "key_template_problems",
    "manifest_key",
    "render_key",
    "result_keys",
    "result_name",
]

PLACEHOLDERS: Final = ("jobID", "executionID", "nodeID", "date", "time")
"""The placeholder names a key template may use, exactly as spelled here."""

MAX_KEY_BYTES: Final = 1024
"""S3's limit on the UTF-8 length of an object key."""

ARCHIVE_SUFFIXES: Final = (".tar.gz", ".tgz")
"""Suffixes that mark a key as already naming an archive."""

MANIFEST_SUFFIX: Final = ".manifest.json"
"""Appended to a directory key, less its ``/``, to name the result's manifest."""

_TOKEN = re.compile(r"\{([^{}]*)\}|[{}]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")  # C0, C1, line separators
_KNOWN = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
_PLACEHOLDER_NAMES = KnownNames(PLACEHOLDERS)  # for suggestions: placeholders match exactly


def _placeholder_values(context: PublishContext) -> dict[str, str | None]:
    return {
        "jobID": context.job_id,
        "executionID": context.execution_id,
        "nodeID": context.node_id,
        "date": context.now.strftime("%Y%m%d"),
        "time": context.now.strftime("%H%M%S"),
    }


_OPTION_FOR = {"jobID": "--job-id", "executionID": "--execution-id", "nodeID": "--node-id"}


_STAND_INS = {"jobID": "x", "executionID": "x", "nodeID": "x", "date": "00000000", "time": "000000"}


def _substitute(
    template: str, values: dict[str, str | None], *, stand_ins: bool
) -> tuple[str, list[str]]:
    """Replace placeholders by ``values``.

    A missing value is a problem, or, with ``stand_ins``, replaced by a stand-in of the
    shortest length the value can have.
    """
    problems: list[str] = []
    out: list[str] = []
    pos = 0
    for match in _TOKEN.finditer(template):
        out.append(template[pos : match.start()])
        pos = match.end()
        name = match.group(1)
        if name is None:
            problems.append(
                f"unbalanced {match.group(0)!r} at position {match.start()} in key "
                f"{quoted(template)}; placeholders look like {{jobID}}"
            )
            continue
        if name not in PLACEHOLDERS:
            close = _PLACEHOLDER_NAMES.closest(name)
            hint = f" (did you mean {{{close}}}?)" if close else ""
            shown = "{" + name + "}" if len(name) <= 40 else quoted(name, 40)
            problems.append(f"unknown placeholder {shown}{hint}; known: {_KNOWN}")
            continue
        value = values.get(name)
        if value is None and stand_ins:
            out.append(_STAND_INS[name])
            continue
        if value is None or value == "":
            option = _OPTION_FOR.get(name)
            how = f" (pass {option})" if option else ""
            problems.append(f"placeholder {{{name}}} has no value{how}")
            continue
        if "/" in value or "\\" in value or _CONTROL.search(value) or value in (".", ".."):
            problems.append(
                f"value {quoted(value)} for {{{name}}} is not allowed in a key: it must not "
                "contain '/', '\\' or control characters, nor be '.' or '..'"
            )
            continue
        out.append(value)
    out.append(template[pos:])
    return "".join(out), problems


def check_key(key: str) -> list[str]:
    """Problems of a final key under rule 4 (empty list when the key is valid)."""
    problems: list[str] = []
    if not key:
        return ["key must not be empty"]
    if key.startswith("/"):
        problems.append(f"key {quoted(key)} must not start with '/'")
    if _CONTROL.search(key):
        problems.append(f"key {quoted(key)} must not contain control characters")
    unicode = unicode_problem(key)
    if unicode is not None:
        problems.append(f"key {quoted(key)} {unicode}")
    size = len(key.encode("utf-8", "surrogatepass"))
    if size > MAX_KEY_BYTES:
        problems.append(f"key is {size} UTF-8 bytes; the limit is {MAX_KEY_BYTES}")
    segments = key.split("/")
    if key.endswith("/"):
        segments = segments[:-1]
    if key.startswith("/"):
        segments = segments[1:]  # already reported above
    bad = sorted({s for s in segments if s in ("", ".", "..")})
    if bad:
        shown = ", ".join(repr(s) for s in bad)  # '', '.' or '..'
        problems.append(f"key {quoted(key)} has {shown} path segments; each segment needs a name")
    return problems


def _apply_suffix(key: str, compress: bool) -> tuple[str, list[str]]:
    if compress:
        if key.endswith("/"):
            return key, [
                f"key {quoted(key)} ends with '/' but Compress is true: an archive needs a file "
                "name, e.g. 'results/{jobID}.tar.gz'"
            ]
        if not key.lower().endswith(ARCHIVE_SUFFIXES):
            key += ".tar.gz"
        return key, []
    return (key if key.endswith("/") else key + "/"), []


def _checked_key(
    template: str, values: dict[str, str | None], *, compress: bool, stand_ins: bool
) -> tuple[str, list[str]]:
    """The key ``template`` gives with ``values``, and every problem rules 1 to 4 find.

    The one check behind :func:`render_key` (no stand-ins: a missing value is a problem)
    and :func:`key_template_problems` (stand-ins for the values not known yet).
    """
    if not template:
        return template, ["key must not be empty"]
    substituted, problems = _substitute(template, values, stand_ins=stand_ins)
    if problems:
        return substituted, problems
    key, problems = _apply_suffix(substituted, compress)
    found = problems or check_key(key)
    last = template[template.rfind("{") + 1 : -1] if template.endswith("}") else ""
    free_text = last in _OPTION_FOR  # the ids; {date} and {time} are digits
    if found and compress and key != substituted and free_text and values.get(last) is None:
        # A stand-in (a value given is never None): the unknown last value may itself
        # complete '.tar.gz' (e.g. '.tar.{jobID}' with 'gz'), so judge the key without a
        # suffix, as the shortest it can become.
        return key, check_key(substituted)
    return key, found


def key_template_problems(
    template: str, *, compress: bool, context: PublishContext | None = None
) -> list[str]:
    """Problems of a key template, checking only the placeholder values that are known.

    Values missing from ``context`` (all of them without one) are replaced by stand-ins of
    their shortest length, so a key that is too long is caught before any value is known.
    """
    values = _placeholder_values(context) if context is not None else {}
    return _checked_key(template, values, compress=compress, stand_ins=True)[1]


def render_key(
    template: str, context: PublishContext, *, compress: bool, path: str = "$.Params.Key"
) -> str:
    """The final key for ``template`` in ``context``: placeholders, suffix, store rules.

    Raises :class:`SpecError` naming every problem, each at ``path``.
    """
    values = _placeholder_values(context)
    key, problems = _checked_key(template, values, compress=compress, stand_ins=False)
    if problems:
        raise SpecError([Problem(path, problem) for problem in problems])
    return key


def manifest_key(directory_key: str) -> str:
    """Where the manifest of a directory result lives: next to its prefix, not inside.

    ``results/abc/`` -> ``results/abc.manifest.json``.
    """
    return directory_key.rstrip("/") + MANIFEST_SUFFIX


def result_keys(key: str, file_paths: Iterable[str]) -> list[str]:
    """Every key a publish writes, in write order.

    That is the archive's key, or each file's key under the directory prefix followed by
    the manifest's.

    Raises :class:`PublishError` when a file's key would break rule 4 (too long).
    """
    if not key.endswith("/"):
        return [key]
    keys = [key + path for path in file_paths]
    problems = [f"{k[len(key) :]}: {p}" for k in keys for p in check_key(k)]
    problems += [f"the manifest: {p}" for p in check_key(manifest_key(key))]
    if problems:
        raise PublishError(
            f"{len(problems)} files cannot be stored under {quoted(key)}: {summarize(problems, 5)}"
        )
    return [*keys, manifest_key(key)]


def key_problems(
    template: str,
    *,
    compress: bool,
    context: PublishContext | None,
    path: str = "$.Params.Key",
) -> list[Problem]:
    """What ``validate_spec`` reports about a key: :class:`Problem` records at ``path``.

    The template is always checked; placeholder values only where ``context`` has them
    (a missing value is reported when the key is rendered, at publish time). Each is a
    problem of :func:`key_template_problems` placed at ``path``; ``str`` shows it as
    ``message @ path``, and ``validate_spec`` returns the records as they are.
    """
    problems = key_template_problems(template, compress=compress, context=context)
    return [Problem(path, problem) for problem in problems]


def result_name(key: str) -> str:
    """The name ``get`` gives a result by default: the key's last segment, no suffix.

    ``runs/j1.tar.gz`` -> ``j1``; ``runs/j1/`` -> ``j1``.
    """
    name = key.rstrip("/").rsplit("/", 1)[-1]
    for suffix in ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name
