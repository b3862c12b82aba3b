"""The example third-party publisher in examples/publisher-sqlite: installed, listed, used
through the CLI, and held to the plugin-author contract (publisher_core.testing)."""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from publisher_core.testing import PublisherContract, snapshot
from tests.conftest import EXAMPLES

EXAMPLE = EXAMPLES / "publisher-sqlite"


@pytest.fixture(scope="session")
def sqlite_publisher(third_party: dict[str, Path]) -> Path:
    """The folder examples/publisher-sqlite is installed in (with its metadata)."""
    return third_party["sqlite"]


def with_path(folder: Path, database: Path) -> dict[str, str]:
    return {
        "PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]),
        "PUBLISHER_SQLITE_DATABASE": str(database),
    }


def test_the_example_is_short():
    """The example stays a small read: fewer than 80 lines of code, comments aside."""
    lines = [
        line
        for path in EXAMPLE.rglob("*.py")
        if "tests" not in path.parts
        for line in path.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert len(lines) < 80


def test_the_example_is_listed(sqlite_publisher, cli, tmp_path):
    """``publisher list`` finds Type sqlite through the distribution's entry point."""
    listed = cli("list", "--json", env=with_path(sqlite_publisher, tmp_path / "r.sqlite3"))
    assert listed.code == 0, listed.err
    rows = {row["type"]: row for row in json.loads(listed.out)}
    assert rows["sqlite"] == {
        "type": "sqlite",
        "distribution": "publisher-sqlite",
        "version": "0.1.0",
        "status": "ok",
        "error": None,
    }
    assert rows["local"]["status"] == "ok"


@pytest.mark.parametrize("compress", ["false", "true"])
def test_publish_and_get_through_the_cli(sqlite_publisher, cli, result_dir, tmp_path, compress):
    """publish stores rows (or one archive), get rebuilds the tree, a second publish fails."""
    database = tmp_path / "results.sqlite3"
    env = with_path(sqlite_publisher, database)
    target = f"sqlite://runs/{{jobID}},opt=compress={compress}"
    published = cli("publish", target, str(result_dir), "--job-id", "j1", env=env)
    assert published.code == 0, published.err
    got = cli("get", "-", "-o", "out", stdin=published.out, env=env)
    assert got.code == 0, got.err
    assert snapshot(tmp_path / "out") == snapshot(result_dir)
    with closing(sqlite3.connect(database)) as db:
        rows = db.execute("SELECT path, length(data), sha256 FROM files ORDER BY path").fetchall()
    if compress == "true":
        assert [(path, sha is not None) for path, _, sha in rows] == [("", True)]
    else:
        assert [path for path, _, _ in rows] == [
            "",
            "a file with spaces.txt",
            "données/résumé.txt",
            "empty dir",
            "empty.txt",
            "nested/deeper/deepest.bin",
        ]
        assert dict((path, size) for path, size, _ in rows)["nested/deeper/deepest.bin"] == 3072
    again = cli("publish", target, str(result_dir), "--job-id", "j1", env=env)
    assert again.code == 1
    assert "already exists" in again.err
    with closing(sqlite3.connect(database)) as db:
        assert db.execute("SELECT count(*) FROM files").fetchone()[0] == len(rows)


class TestSqlitePublisherContract(PublisherContract):
    publisher_type = "sqlite"

    @pytest.fixture(autouse=True)
    def _store(
        self, sqlite_publisher: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.syspath_prepend(str(sqlite_publisher))
        self.database = tmp_path / "contract.sqlite3"
        monkeypatch.setenv("PUBLISHER_SQLITE_DATABASE", str(self.database))

    def spec(self, key: str, *, compress: bool) -> dict[str, Any]:
        return {"Type": "sqlite", "Params": {"Key": key, "Compress": compress}}

    def stored(self) -> set[str]:
        if not self.database.exists():
            return set()
        with closing(sqlite3.connect(self.database)) as db:
            rows = db.execute("SELECT key, path FROM files").fetchall()
        return {f"{key}\0{path}" for key, path in rows}
