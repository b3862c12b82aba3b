"""The ``sqlite`` publisher, an example plugin: results in one SQLite database file."""

import hashlib
import io
import os
import sqlite3
from contextlib import closing
from pathlib import Path

import attrs

import publisher_core as pc

# One row (key, path, data, sha256) per file of a directory result and per empty directory
# (data NULL). Row (key, '') is the result itself: its archive, or NULL for a directory.
SCHEMA = "CREATE TABLE IF NOT EXISTS files (key, path, data, sha256, PRIMARY KEY (key, path))"


@attrs.frozen
class SqliteSettings:
    """Operator setting ``PUBLISHER_SQLITE_DATABASE``: the database file."""

    database: Path = Path("publisher.sqlite3")


@attrs.frozen
class SqliteParams:
    """Spec parameters: ``Key`` (a key template) and ``Compress``."""

    key: str
    compress: bool = False


@attrs.frozen
class SqliteResult:
    """Published result: the database, the key and (archives) the SHA-256."""

    database: str
    key: str
    checksum_sha256: str | None = attrs.field(default=None, validator=pc.sha256_validator())


@pc.hookimpl
def publisher_info() -> pc.PublisherInfo:
    """Declare the sqlite publisher."""
    return pc.PublisherInfo(params=SqliteParams, result=SqliteResult, settings=SqliteSettings)


@pc.hookimpl
def validate_spec(spec: pc.ValidatedSpec, context: pc.PublishContext | None) -> list[pc.Problem]:
    """Check the key template, and its placeholder values when they are known."""
    return pc.key_problems(spec.params.key, compress=spec.params.compress, context=context)


def _read(entry: pc.TreeEntry) -> tuple[bytes, str]:
    with pc.open_entry(entry) as handle:  # not open(): it refuses files swapped for links
        data = handle.read()
    return data, pc.sha256_b64(hashlib.sha256(data).digest())


def _contents(tree: pc.ScannedResult) -> list[tuple[str, bytes | None, str | None]]:
    # (path, bytes, SHA-256) of the archive, or of the result row, each file and empty directory
    entries = tree.entries
    if tree.archive:
        summary = pc.write_archive(entries, archive := io.BytesIO())
        return [("", archive.getvalue(), summary.checksum_sha256)]
    files = [(entry.path, *_read(entry)) for entry in entries if entry.kind == "file"]
    return [("", None, None), *files, *((p, None, None) for p in pc.empty_directories(entries))]


@pc.hookimpl
def publish(
    spec: pc.ValidatedSpec, source: Path, context: pc.PublishContext, settings: SqliteSettings
) -> pc.PublishedResult:
    """Store the result under its key in one transaction, never replacing a key."""
    scan = pc.scan_result(spec.params.key, source, context, archive=spec.params.compress)
    with closing(sqlite3.connect(settings.database)) as db:
        db.execute(SCHEMA)
        try:
            with db:  # one transaction: committed at the end, rolled back on any failure
                rows = [(scan.key, *row) for row in _contents(scan)]
                db.executemany("INSERT INTO files VALUES (?, ?, ?, ?)", rows)
        except sqlite3.IntegrityError:
            raise pc.PublishError(f"{scan.key!r} already exists in {settings.database}") from None
    result = SqliteResult(str(settings.database.resolve()), scan.key, rows[0][3])
    return pc.PublishedResult(type="sqlite", params=pc.unstructure_params(result))


def _item(database: Path, name: str, path: str, data: bytes, sha: str) -> pc.DownloadItem:
    target = Path(f"{database}.export") / sha.replace("/", "_")  # named by content
    target.parent.mkdir(exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}")
    temporary.write_bytes(data)
    os.replace(temporary, target)  # whole files only, even with two exports at once
    path, archive, url = path or f"{name}.tar.gz", not path, target.as_uri()
    return pc.DownloadItem(path=path, url=url, size=len(data), checksum_sha256=sha, archive=archive)


@pc.hookimpl
def describe_result(params: SqliteResult) -> pc.ResultDescription:
    """Export the stored bytes beside the database: ``file://`` items with their SHA-256."""
    database, name, key = Path(params.database), pc.result_name(params.key), params.key
    with closing(sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)) as db:
        rows = db.execute("SELECT path, data, sha256 FROM files WHERE key = ?", (key,)).fetchall()
    if not rows:
        raise pc.DownloadError(f"{key!r} is not in {database}")
    items = [_item(database, name, *row) for row in rows if row[1] is not None]
    empty = tuple(path for path, data, _ in rows if data is None and path)
    return pc.ResultDescription(type="sqlite", name=name, items=tuple(items), directories=empty)
