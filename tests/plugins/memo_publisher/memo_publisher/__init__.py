"""A third-party publisher for the tests: one archive per result in a memo directory."""

from __future__ import annotations

import hashlib
from pathlib import Path

import attrs

from publisher_core import (
    DownloadItem,
    PublishContext,
    PublishedResult,
    PublisherInfo,
    ResultDescription,
    ValidatedSpec,
    hookimpl,
    render_key,
    scan_tree,
    unstructure_params,
    write_archive,
)


@attrs.frozen
class MemoSettings:
    dir: Path = Path("memo-store")


@attrs.frozen
class MemoParams:
    name: str


@attrs.frozen
class MemoResult:
    file: str
    size: int
    checksum_sha256: str


@hookimpl
def publisher_info() -> PublisherInfo:
    return PublisherInfo(
        params=MemoParams,
        result=MemoResult,
        settings=MemoSettings,
        destination=("Name",),
        summary="archives in a memo folder",
    )


@hookimpl
def publish(
    spec: ValidatedSpec, source: Path, context: PublishContext, settings: MemoSettings
) -> PublishedResult:
    key = render_key(spec.params.name, context, compress=True, path="$.Params.Name")
    target = settings.dir / hashlib.sha256(key.encode()).hexdigest()[:16]
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as out:
        summary = write_archive(scan_tree(source, follow_links=False), out)
    result = MemoResult(
        file=str(target.resolve()), size=summary.size, checksum_sha256=summary.checksum_sha256
    )
    return PublishedResult(type="memo", params=unstructure_params(result))


@hookimpl
def describe_result(params: MemoResult) -> ResultDescription:
    item = DownloadItem(
        path="memo.tar.gz",
        url=Path(params.file).as_uri(),
        size=params.size,
        checksum_sha256=params.checksum_sha256,
        archive=True,
    )
    return ResultDescription(type="memo", name="memo", items=(item,))
