"""The ``local`` publisher: results under a root directory on this machine.

Directory mode copies the tree to ``ROOT/KEY/`` and then writes ``ROOT/KEY.manifest.json``;
archive mode writes ``ROOT/KEY.tar.gz``. Both are written in full under a temporary name in
the destination's directory and renamed into place, so a reader never sees half a result.

``Overwrite: true`` (the default, as in Bacalhau) replaces an earlier result at the key as a
whole: the destination then holds exactly the new result, and no reader ever sees a mixture
of the two (see :func:`publisher_local._place.swap_in`). ``Overwrite: false`` refuses a key
where anything exists, race-free: of two publishes to one key at once, one fails and leaves
nothing behind. Either way, a destination of the wrong kind (a symbolic link, a file where a
directory goes, ...), or a directory holding other results, is refused, never removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import attrs

from publisher_core import (
    DownloadError,
    DownloadItem,
    Manifest,
    ManifestFile,
    Problem,
    PublishContext,
    PublishedResult,
    PublisherInfo,
    PublishError,
    PublishPlan,
    ResultDescription,
    ScannedResult,
    TreeEntry,
    ValidatedSpec,
    empty_directories,
    hookimpl,
    key_problems,
    manifest_key,
    open_entry,
    quoted,
    result_name,
    scan_result,
    scan_tree,
    sha256_b64,
    sha256_validator,
    unstructure_params,
    write_archive,
)
from publisher_local._place import (
    Staging,
    check_destination,
    link_new_file,
    place_new,
    replace_file,
    swap_in,
    turn,
)

__all__ = ["LocalParams", "LocalResult", "LocalSettings", "default_root"]

_CHUNK = 1 << 20


def default_root() -> Path:
    """``$XDG_DATA_HOME/publisher/results`` (``~/.local/share/...`` on Linux)."""
    import platformdirs  # only when no root is configured

    return Path(platformdirs.user_data_dir("publisher")) / "results"


@attrs.frozen(kw_only=True)
class LocalSettings:
    """Operator settings: ``PUBLISHER_LOCAL_ROOT``, ``PUBLISHER_LOCAL_COMPRESSION_LEVEL``."""

    root: Path = attrs.field(factory=default_root)
    compression_level: int = attrs.field(
        default=6, validator=[attrs.validators.ge(0), attrs.validators.le(9)]
    )


@attrs.frozen(kw_only=True)
class LocalParams:
    """Spec parameters: ``Key``, ``Compress`` and ``Overwrite``.

    ``Key`` is a template relative to the root; ``Compress`` picks archive mode.
    ``Overwrite`` (default true, as in Bacalhau; ``opt=overwrite=false`` imperatively):
    true replaces an earlier result at the key as a whole, false refuses a key where
    anything exists.
    """

    key: str
    compress: bool = False
    overwrite: bool = True


@attrs.frozen(kw_only=True)
class LocalResult:
    """Published result parameters.

    ``Path`` is absolute (a directory result's ends in ``/``). Archives carry
    ``ChecksumSHA256`` of the file; directories carry ``Manifest`` and its checksum.
    """

    path: str
    key: str
    size: int
    checksum_sha256: str | None = attrs.field(default=None, validator=sha256_validator())
    files: int | None = None
    manifest: str | None = None
    manifest_checksum_sha256: str | None = attrs.field(default=None, validator=sha256_validator())


@hookimpl
def publisher_info() -> PublisherInfo:
    """Declare the local publisher."""
    return PublisherInfo(
        params=LocalParams,
        result=LocalResult,
        settings=LocalSettings,
        destination=("Key",),
        summary="results under a root directory on this machine",
    )


@hookimpl
def validate_spec(spec: ValidatedSpec, context: PublishContext | None) -> list[Problem]:
    """Check the key template, and its placeholder values when a context is given.

    Each problem is a :class:`~publisher_core.Problem` at ``$.Params.Key``.
    """
    params: LocalParams = spec.params
    return key_problems(params.key, compress=params.compress, context=context)


def _root(settings: LocalSettings, *, create: bool) -> Path:
    root = Path(os.path.abspath(settings.root.expanduser()))
    if create:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PublishError(f"cannot create the local root {root}: {exc.strerror}") from None
    return Path(os.path.realpath(root))


def _destination(root: Path, key: str) -> Path:
    target = root / key.rstrip("/")
    parent = os.path.realpath(target.parent)
    if parent != str(root) and not parent.startswith(str(root) + "/"):
        raise PublishError(
            f"key {quoted(key)} resolves outside the local root {root} through a symlink; refusing"
        )
    return target


@contextlib.contextmanager
def _placement(root: Path, key: str, *, overwrite: bool) -> Iterator[Path]:
    """The destination of ``key``, with its parent directories made; undone on failure.

    Refuses, before anything is written, a destination that may not be written (see
    :func:`~publisher_local._place.check_destination`: anything there with ``overwrite``
    False, a destination of the wrong kind with it True), and one that lies inside another
    directory result (whose prefix must hold exactly its own files). Parent directories
    this publish created are removed again if the publish fails.
    """
    target = _destination(root, key)
    manifest = root / manifest_key(key) if key.endswith("/") else None
    check_destination(target, manifest, overwrite=overwrite)
    for ancestor in target.relative_to(root).parents:
        if ancestor != Path(".") and (root / manifest_key(f"{ancestor}/")).is_file():
            raise PublishError(
                f"key {quoted(key)} lies inside the directory result {root / ancestor}; "
                "choose a key outside it"
            )
    created = [p for p in reversed(target.parents) if not p.exists()]
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield target
    except BaseException:
        for directory in reversed(created):
            with contextlib.suppress(OSError):
                directory.rmdir()  # only if still empty
        raise


def _read(
    spec: ValidatedSpec, source: Path, context: PublishContext
) -> tuple[LocalParams, ScannedResult]:
    """The params, and the result with its key, as both modes see them."""
    params: LocalParams = spec.params
    return params, scan_result(params.key, source, context, archive=params.compress)


@hookimpl
def plan_publish(
    spec: ValidatedSpec, source: Path, context: PublishContext, settings: LocalSettings
) -> PublishPlan:
    """The paths under the root that :func:`publish` would write."""
    params, result = _read(spec, source, context)
    return PublishPlan(
        type="local",
        mode="archive" if params.compress else "directory",
        location=str(_root(settings, create=False)),
        keys=result.keys,
    )


def _copy_file(entry: TreeEntry, dst: Path) -> ManifestFile:
    digest = hashlib.sha256()
    size = 0
    with open_entry(entry) as src, open(dst, "xb") as out:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    os.chmod(dst, entry.mode & 0o777)
    os.utime(dst, (entry.mtime, entry.mtime))
    return ManifestFile(path=entry.path, size=size, checksum_sha256=sha256_b64(digest.digest()))


def _publish_directory(
    entries: list[TreeEntry], root: Path, key: str, *, overwrite: bool
) -> PublishedResult:
    manifest_path = root / manifest_key(key)
    with _placement(root, key, overwrite=overwrite) as target:
        staging = Staging(target)
        try:
            copied: list[ManifestFile] = []
            for entry in entries:
                if entry.kind == "dir":
                    (staging.tree / entry.path).mkdir()
                else:
                    copied.append(_copy_file(entry, staging.tree / entry.path))
            manifest = Manifest.build(copied, empty_directories(entries))
            data = manifest.to_bytes()
            staging.write_manifest(data)
            with turn(target.parent):
                if overwrite:
                    swap_in(staging, target, manifest_path)
                else:
                    place_new(staging, target, manifest_path)
        finally:
            staging.discard()  # what is left: a failed publish, or the replaced result
    return PublishedResult(
        type="local",
        params=unstructure_params(
            LocalResult(
                path=str(target) + "/",
                key=key,
                size=manifest.total_size,
                files=len(manifest.files),
                manifest=str(manifest_path),
                manifest_checksum_sha256=sha256_b64(hashlib.sha256(data).digest()),
            )
        ),
    )


def _publish_archive(
    entries: list[TreeEntry], root: Path, key: str, level: int, *, overwrite: bool
) -> PublishedResult:
    with _placement(root, key, overwrite=overwrite) as target:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                summary = write_archive(entries, out, level=level)
            with turn(target.parent):
                if overwrite:
                    replace_file(tmp, target)
                else:
                    link_new_file(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    return PublishedResult(
        type="local",
        params=unstructure_params(
            LocalResult(
                path=str(target),
                key=key,
                size=summary.size,
                checksum_sha256=summary.checksum_sha256,
                files=summary.files,
            )
        ),
    )


@hookimpl
def publish(
    spec: ValidatedSpec, source: Path, context: PublishContext, settings: LocalSettings
) -> PublishedResult:
    """Copy the result under the root (directory mode) or write one ``.tar.gz`` (archive)."""
    params, result = _read(spec, source, context)
    key, entries = result.key, result.entries
    root = _root(settings, create=True)
    try:
        if params.compress:
            return _publish_archive(
                entries, root, key, settings.compression_level, overwrite=params.overwrite
            )
        return _publish_directory(entries, root, key, overwrite=params.overwrite)
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise PublishError(f"local publish to {root} failed: {exc.strerror or exc}{where}") from exc


@hookimpl
def describe_result(params: LocalResult) -> ResultDescription:
    """``file://`` items: the archive, or every file listed in the directory's manifest."""
    name = result_name(params.key)
    path = Path(params.path)
    if not params.key.endswith("/"):
        if not path.is_file():
            raise DownloadError(f"{path} does not exist; the result was moved or deleted")
        item = DownloadItem(
            path=path.name,
            url=path.as_uri(),
            size=params.size,
            checksum_sha256=params.checksum_sha256,
            archive=True,
        )
        return ResultDescription(type="local", name=name, items=(item,))
    if params.manifest is None:
        entries = scan_tree(path, follow_links=False)  # a directory written by another tool
        items = tuple(
            DownloadItem(path=e.path, url=e.source.as_uri(), size=e.size)
            for e in entries
            if e.kind == "file"
        )
        return ResultDescription(
            type="local", name=name, items=items, directories=tuple(empty_directories(entries))
        )
    try:
        data = Path(params.manifest).read_bytes()
    except FileNotFoundError:
        raise DownloadError(
            f"manifest {params.manifest} is missing: the result is incomplete or was deleted"
        ) from None
    manifest = Manifest.from_checked_bytes(data, params.manifest_checksum_sha256, params.manifest)
    items = tuple(
        DownloadItem(
            path=f.path,
            url=(path / f.path).as_uri(),
            size=f.size,
            checksum_sha256=f.checksum_sha256,
        )
        for f in manifest.files
    )
    return ResultDescription(type="local", name=name, items=items, directories=manifest.directories)
