"""The local publisher: both modes, atomic placement, round trips through get."""

from __future__ import annotations

import os
import subprocess
import tarfile
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings

from publisher_core import (
    PublishContext,
    PublishError,
    SpecError,
    describe,
    get,
    plan,
    publish,
)
from publisher_core._paths import MAX_PATH_DEPTH
from tests.trees import build, snapshot, trees

NOW = datetime(2023, 9, 26, 14, 5, 30, tzinfo=timezone.utc)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


def spec(key: str, compress: bool) -> dict[str, object]:
    return {"Type": "local", "Params": {"Key": key, "Compress": compress}}


@pytest.mark.parametrize("compress", [False, True])
def test_round_trip_both_modes(result_dir, root, tmp_path, compress):
    """publish -> describe -> get rebuilds the tree byte for byte, empty parts included."""
    result = publish(
        spec("r/{jobID}", compress), result_dir, context=PublishContext(job_id="j1", now=NOW)
    )
    assert result.type == "local"
    report = get(describe(result), tmp_path / "out")
    assert snapshot(tmp_path / "out") == snapshot(result_dir)
    assert report.unverified == 0
    assert report.files == 4


def test_directory_mode_layout_and_manifest(result_dir, root):
    """Files land at ROOT/KEY/..., the manifest next to the prefix, not inside."""
    result = publish(spec("runs/{jobID}", False), result_dir, context=PublishContext(job_id="j1"))
    params = result.params
    assert params["Key"] == "runs/j1/"
    assert params["Path"] == str(root.resolve() / "runs" / "j1") + "/"
    assert params["Manifest"] == str(root.resolve() / "runs" / "j1.manifest.json")
    assert params["Files"] == 4
    assert (root / "runs" / "j1" / "données" / "résumé.txt").read_bytes() == "unicode ✓".encode()
    assert not (root / "runs" / "j1" / "j1.manifest.json").exists()
    assert sorted(os.listdir(root / "runs")) == ["j1", "j1.manifest.json"]


def test_archive_mode_writes_one_checked_tar_gz(result_dir, root):
    """Archive mode writes KEY.tar.gz that GNU tar and sha256sum agree with."""
    import base64

    result = publish(spec("runs/{jobID}", True), result_dir, context=PublishContext(job_id="j1"))
    path = Path(result.params["Path"])
    assert path == root.resolve() / "runs" / "j1.tar.gz"
    assert result.params["Size"] == path.stat().st_size
    sha_hex = subprocess.run(
        ["sha256sum", str(path)], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    assert base64.b64decode(result.params["ChecksumSHA256"]).hex() == sha_hex
    listing = subprocess.run(
        ["tar", "-tzf", str(path)], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert "empty dir/" in listing
    assert "données/résumé.txt" in listing
    assert os.listdir(root / "runs") == ["j1.tar.gz"]


def test_archives_are_reproducible(result_dir, root):
    """Publishing the same tree twice gives the same bytes (no timestamps in gzip)."""
    first = publish(spec("a", True), result_dir)
    second = publish(spec("b", True), result_dir)
    assert first.params["ChecksumSHA256"] == second.params["ChecksumSHA256"]


def test_links_inside_are_links_in_archives_and_copies_in_directories(result_dir, tmp_path):
    """Files that are not regular files (docs/specs.md, Modes), in both modes."""
    os.symlink("a file with spaces.txt", result_dir / "alias")
    archive = publish(spec("arch", True), result_dir)
    with tarfile.open(archive.params["Path"]) as tar:
        assert tar.getmember("alias").issym()
    directory = publish(spec("dir", False), result_dir)
    copied = Path(directory.params["Path"]) / "alias"
    assert not copied.is_symlink()
    assert copied.read_bytes() == b"hello\n"
    get(describe(archive), tmp_path / "restored")
    assert os.readlink(tmp_path / "restored" / "alias") == "a file with spaces.txt"


@pytest.mark.parametrize("compress", [False, True])
def test_with_overwrite_false_an_existing_result_is_never_replaced(result_dir, root, compress):
    """Publishing twice to one key with Overwrite: false fails and keeps the first result."""
    first = publish(spec("same", compress), result_dir)
    before = snapshot(root)
    refusing = {
        "Type": "local",
        "Params": {"Key": "same", "Compress": compress, "Overwrite": False},
    }
    with pytest.raises(PublishError, match="already exists; Overwrite is false"):
        publish(refusing, result_dir)
    assert snapshot(root) == before
    assert describe(first).items


@pytest.mark.parametrize("compress", [False, True])
def test_a_failing_publish_leaves_nothing_behind(result_dir, root, compress):
    """An unreadable file fails the publish and leaves no temporary or partial result."""
    if os.geteuid() == 0:
        pytest.skip("root reads files regardless of their mode")
    (result_dir / "nested" / "secret").write_text("x")
    os.chmod(result_dir / "nested" / "secret", 0)
    with pytest.raises(PublishError):
        publish(spec("fails", compress), result_dir)
    assert [p for p in root.rglob("*") if p.is_file()] == []


def scan_then(change: Any) -> Any:
    """scan_tree as publishers call it (scan_result), with ``change`` applied right after."""
    import publisher_core._prepare as plugin  # where every publisher scans its tree
    from publisher_core import scan_tree

    def scan(source, **kwargs):
        entries = scan_tree(source, **kwargs)
        change(source)
        return entries

    return plugin, scan


@pytest.mark.parametrize("compress", [False, True])
def test_a_file_vanishing_mid_publish_leaves_nothing_behind(
    result_dir, root, compress, monkeypatch
):
    """A file deleted between scan and copy fails the publish and leaves nothing behind."""
    plugin, scan = scan_then(lambda src: (src / "nested" / "deeper" / "deepest.bin").unlink())
    monkeypatch.setattr(plugin, "scan_tree", scan)
    with pytest.raises(PublishError, match=r"deepest\.bin: cannot open"):
        publish(spec("vanish/{jobID}", compress), result_dir, context=PublishContext(job_id="j"))
    assert list(root.rglob("*")) == []


@pytest.mark.parametrize("compress", [False, True])
def test_a_file_swapped_for_a_link_after_the_scan_is_not_followed(
    result_dir, root, compress, monkeypatch
):
    """Replacing a scanned file by a link to a host file publishes nothing from outside."""

    def swap(src: Path) -> None:
        (src / "empty.txt").unlink()
        os.symlink("/etc/hostname", src / "empty.txt")

    plugin, scan = scan_then(swap)
    monkeypatch.setattr(plugin, "scan_tree", scan)
    with pytest.raises(PublishError, match=r"empty\.txt: (cannot open|was replaced)"):
        publish(spec("swap", compress), result_dir)
    assert list(root.rglob("*")) == []


def test_a_result_cannot_be_published_inside_another(result_dir, root):
    """A directory result's prefix holds exactly its own files."""
    publish(spec("r1", False), result_dir)
    for compress in (False, True):
        with pytest.raises(PublishError, match="lies inside the directory result"):
            publish(spec("r1/inner", compress), result_dir)
    assert not (root / "r1" / "inner").exists()


def test_placeholder_values_cannot_escape_the_root(result_dir, root, tmp_path):
    """A job id of '..' or with '/' is refused before anything is written."""
    for bad in ("..", "../../etc", "a/b"):
        with pytest.raises(SpecError, match="is not allowed in a key"):
            publish(spec("{jobID}", False), result_dir, context=PublishContext(job_id=bad))
    assert not root.exists() or list(root.rglob("*")) == []


def test_a_symlinked_directory_in_the_root_cannot_redirect_writes(result_dir, root, tmp_path):
    """A link inside the root pointing elsewhere is not written through."""
    root.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, root / "redirect")
    with pytest.raises(PublishError, match="resolves outside the local root"):
        publish(spec("redirect/x", True), result_dir)
    assert list(elsewhere.iterdir()) == []


def test_single_file_result(tmp_path, root):
    """A single file is published as KEY + name (directory) or archived under its name."""
    single = tmp_path / "report.csv"
    single.write_text("a,b\n")
    directory = publish(spec("one", False), single)
    assert (root / "one" / "report.csv").read_text() == "a,b\n"
    archive = publish(spec("one-archive", True), single)
    get(describe(archive), tmp_path / "restored")
    assert (tmp_path / "restored" / "report.csv").read_text() == "a,b\n"
    get(describe(directory), tmp_path / "restored-dir")
    assert (tmp_path / "restored-dir" / "report.csv").read_text() == "a,b\n"


def test_plan_lists_keys_and_writes_nothing(result_dir, root):
    """A dry run returns every key and does not even create the root."""
    planned = plan(spec("p/{jobID}", False), result_dir, context=PublishContext(job_id="j"))
    assert planned.mode == "directory"
    assert planned.keys[-1] == "p/j.manifest.json"
    assert "p/j/données/résumé.txt" in planned.keys
    assert len(planned.keys) == 5
    assert not root.exists()


def test_missing_manifest_makes_describe_fail(result_dir, root):
    """A directory result without its manifest is incomplete and says so."""
    result = publish(spec("m", False), result_dir)
    Path(result.params["Manifest"]).unlink()
    with pytest.raises(Exception, match=r"manifest .* is missing"):
        describe(result)


def test_tampered_manifest_is_detected(result_dir, root):
    """The manifest itself is checked against the result record."""
    result = publish(spec("m", False), result_dir)
    manifest = Path(result.params["Manifest"])
    manifest.write_bytes(manifest.read_bytes().replace(b'"Size": 6', b'"Size": 7'))
    with pytest.raises(Exception, match=r"manifest .* has SHA-256"):
        describe(result)


@settings(max_examples=25)
@given(trees)
def test_generated_trees_round_trip_in_directory_mode(tree):
    """Any generated tree survives directory mode and get."""
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        source = build(tree, base / "src")
        result = publish(spec("t", False), source, settings={"root": str(base / "root")})
        get(describe(result, settings={"root": str(base / "root")}), base / "out")
        assert snapshot(base / "out") == snapshot(source)


@settings(max_examples=25)
@given(trees)
def test_generated_trees_round_trip_in_archive_mode(tree):
    """Any generated tree survives archive mode and get."""
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        source = build(tree, base / "src")
        result = publish(spec("t", True), source, settings={"root": str(base / "root")})
        get(describe(result), base / "out")
        assert snapshot(base / "out") == snapshot(source)


@pytest.mark.parametrize("compress", [False, True])
def test_a_name_with_a_backslash_is_not_published(result_dir, root, compress):
    """dir/x\\y is refused at publish, naming it, since get could never fetch it."""
    (result_dir / "nested" / "x\\y").write_text("1\n")
    with pytest.raises(PublishError, match=r"'nested/x\\\\y': name contains a backslash"):
        publish(spec("t", compress), result_dir)
    assert not root.exists() or list(root.rglob("*")) == []


@pytest.mark.parametrize("compress", [False, True])
def test_a_tree_at_the_depth_limit_round_trips(tmp_path, root, compress):
    """A file 256 levels down publishes in both modes and get fetches it back."""
    source = tmp_path / "src"
    deep = "/".join(["d"] * (MAX_PATH_DEPTH - 1) + ["f"])
    (source / deep).parent.mkdir(parents=True)
    (source / deep).write_bytes(b"deep")
    result = publish(spec("t", compress), source)
    get(describe(result), tmp_path / "out")
    assert snapshot(tmp_path / "out") == snapshot(source)


@pytest.mark.parametrize("compress", [False, True])
def test_a_tree_over_the_depth_limit_is_not_published(tmp_path, root, compress):
    """A file 257 levels down is refused at publish, as get would refuse it."""
    source = tmp_path / "src"
    (source.joinpath(*["d"] * MAX_PATH_DEPTH)).mkdir(parents=True)
    (source.joinpath(*["d"] * MAX_PATH_DEPTH) / "f").write_bytes(b"deep")
    with pytest.raises(PublishError, match=r"path is 257 levels deep; the limit is 256$"):
        publish(spec("t", compress), source)
