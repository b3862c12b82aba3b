"""The manifest of a directory result: each file's path, size and SHA-256, written last.

A directory result is complete only once its manifest exists; ``get`` trusts the manifest
(itself checked against the result record) rather than a listing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import attrs

from ._checksums import sha256_of
from ._convert import structure_params, unstructure_params
from ._errors import IntegrityError, Problem, SpecError, quoted

__all__ = ["MANIFEST_VERSION", "Manifest", "ManifestFile"]

MANIFEST_VERSION = 1
"""The manifest format version this code writes and reads."""


@attrs.frozen(kw_only=True)
class ManifestFile:
    """One file of a directory result.

    ``version_id`` is the object version the publish created, where the store versions
    objects: a reader pins it, so a later result published over this one cannot be read
    in its place. Absent (and left out of the JSON) elsewhere.
    """

    path: str
    size: int
    checksum_sha256: str
    version_id: str | None = None


@attrs.frozen(kw_only=True)
class Manifest:
    """Files and empty directories of a directory result."""

    files: tuple[ManifestFile, ...] = ()
    directories: tuple[str, ...] = ()
    version: int = MANIFEST_VERSION

    @classmethod
    def build(cls, files: Iterable[ManifestFile], directories: Iterable[str]) -> Manifest:
        """A manifest with files and directories in path order."""
        return cls(
            files=tuple(sorted(files, key=lambda f: f.path)),
            directories=tuple(sorted(directories)),
        )

    @property
    def total_size(self) -> int:
        """Sum of the file sizes."""
        return sum(f.size for f in self.files)

    def to_bytes(self) -> bytes:
        """The canonical JSON encoding (UTF-8, stable order)."""
        doc = {
            "Version": self.version,
            "Files": [unstructure_params(f) for f in self.files],
            "Directories": list(self.directories),
        }
        return (json.dumps(doc, ensure_ascii=False, indent=1) + "\n").encode("utf-8")

    @classmethod
    def from_checked_bytes(cls, data: bytes, checksum_sha256: str | None, where: str) -> Manifest:
        """Parse a manifest after checking it against the checksum its result recorded.

        Raises :class:`IntegrityError` naming ``where`` when the bytes do not match.
        """
        actual = sha256_of(data)
        if checksum_sha256 is not None and actual != checksum_sha256:
            raise IntegrityError(
                f"manifest {where} has SHA-256 {actual}, the result recorded {checksum_sha256}"
            )
        return cls.from_bytes(data)

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        """Parse a manifest; raises :class:`SpecError` naming what is wrong."""
        try:
            doc: Any = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SpecError(f"not valid JSON: {exc}", what="manifest") from None
        if not isinstance(doc, dict):
            raise SpecError(Problem("$", "expected a JSON object"), what="manifest")
        if doc.get("Version") != MANIFEST_VERSION:
            raise SpecError(
                Problem(
                    "$.Version",
                    f"unsupported Version {quoted(doc.get('Version'))}, "
                    f"expected {MANIFEST_VERSION}",
                ),
                what="manifest",
            )
        files = doc.get("Files")
        directories = doc.get("Directories", [])
        if not isinstance(files, list) or not isinstance(directories, list):
            raise SpecError(Problem("$", "Files and Directories must be lists"), what="manifest")
        parsed = [
            structure_params(f, ManifestFile, path=f"$.Files[{i}]", what="manifest")
            for i, f in enumerate(files)
        ]
        if not all(isinstance(d, str) for d in directories):
            raise SpecError(
                Problem("$.Directories", "Directories must hold strings"), what="manifest"
            )
        return cls(files=tuple(parsed), directories=tuple(directories))
