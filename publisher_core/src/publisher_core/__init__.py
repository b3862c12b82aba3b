"""publisher_core: the framework behind ``publisher``: specs, plugins, keys and ``get``.

Hosts use :func:`validate`, :func:`publish`, :func:`describe` and :func:`get`; publisher
plugins implement the hooks in :mod:`publisher_core.hookspecs` with :data:`hookimpl` and
use the key, tree, archive and manifest helpers and the retry policy re-exported here.
"""

from ._api import default_registry, describe, get, load_result, load_spec, plan, publish, validate
from ._archive import (
    ArchiveSummary,
    BinarySink,
    GzipFactory,
    GzipStream,
    HashingSink,
    write_archive,
    zlib_gzip,
)
from ._checks import safe_relative_path
from ._checksums import sha256_b64, sha256_of, sha256_validator
from ._convert import capital_name, converter, did_you_mean, structure_params, unstructure_params
from ._documents import (
    description_from_document,
    description_to_document,
    dump_document,
    parse_document,
    result_from_document,
    result_to_document,
    spec_from_document,
    spec_to_document,
)
from ._download import GetReport, download
from ._errors import (
    DownloadError,
    IntegrityError,
    PluginError,
    Problem,
    PublisherError,
    PublishError,
    SpecError,
    TargetExistsError,
    UnsafePathError,
    quoted,
    summarize,
)
from ._imperative import parse_imperative
from ._keys import (
    MANIFEST_SUFFIX,
    MAX_KEY_BYTES,
    PLACEHOLDERS,
    check_key,
    key_problems,
    key_template_problems,
    manifest_key,
    render_key,
    result_keys,
    result_name,
)
from ._manifest import Manifest, ManifestFile
from ._models import (
    DownloadItem,
    PublishContext,
    PublishedResult,
    PublisherInfo,
    PublisherSpec,
    PublishPlan,
    ResultDescription,
    ValidatedSpec,
    redact_url,
)
from ._names import KnownNames
from ._paths import MAX_PATH_BYTES, MAX_PATH_DEPTH, MAX_SEGMENT_BYTES, path_problem
from ._prepare import ScannedResult, scan_result
from ._registry import ENTRY_POINT_GROUP, Publisher, PublisherStatus, Registry
from ._retry import RetryPolicy, retry_after_seconds
from ._settings import load_settings
from ._tree import TreeEntry, empty_directories, open_entry, read_entry, scan_tree
from .hookspecs import hookimpl

__all__ = [
    "ENTRY_POINT_GROUP",
    "MANIFEST_SUFFIX",
    "MAX_KEY_BYTES",
    "MAX_PATH_BYTES",
    "MAX_PATH_DEPTH",
    "MAX_SEGMENT_BYTES",
    "PLACEHOLDERS",
    "ArchiveSummary",
    "BinarySink",
    "DownloadError",
    "DownloadItem",
    "GetReport",
    "GzipFactory",
    "GzipStream",
    "HashingSink",
    "IntegrityError",
    "KnownNames",
    "Manifest",
    "ManifestFile",
    "PluginError",
    "Problem",
    "PublishContext",
    "PublishError",
    "PublishPlan",
    "PublishedResult",
    "Publisher",
    "PublisherError",
    "PublisherInfo",
    "PublisherSpec",
    "PublisherStatus",
    "Registry",
    "ResultDescription",
    "RetryPolicy",
    "ScannedResult",
    "SpecError",
    "TargetExistsError",
    "TreeEntry",
    "UnsafePathError",
    "ValidatedSpec",
    "capital_name",
    "check_key",
    "converter",
    "default_registry",
    "describe",
    "description_from_document",
    "description_to_document",
    "did_you_mean",
    "download",
    "dump_document",
    "empty_directories",
    "get",
    "hookimpl",
    "key_problems",
    "key_template_problems",
    "load_result",
    "load_settings",
    "load_spec",
    "manifest_key",
    "open_entry",
    "parse_document",
    "parse_imperative",
    "path_problem",
    "plan",
    "publish",
    "quoted",
    "read_entry",
    "redact_url",
    "render_key",
    "result_from_document",
    "result_keys",
    "result_name",
    "result_to_document",
    "retry_after_seconds",
    "safe_relative_path",
    "scan_result",
    "scan_tree",
    "sha256_b64",
    "sha256_of",
    "sha256_validator",
    "spec_from_document",
    "spec_to_document",
    "structure_params",
    "summarize",
    "unstructure_params",
    "validate",
    "write_archive",
    "zlib_gzip",
]
