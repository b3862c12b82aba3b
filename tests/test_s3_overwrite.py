"""``Overwrite`` on S3: a result is replaced whole, or the publish refuses; never a mixture.

Each test runs on moto and on Ceph RGW, unversioned and (where it matters) versioned: a
replaced directory prefix holds exactly the new result's files, an earlier record in a
versioned bucket still reads back its own result, a failed overwrite there leaves the
earlier result the latest, and of two publishes racing with ``Overwrite: false`` exactly
one wins while the other leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from publisher_core import PublishedResult, PublishError, describe, get, publish
from publisher_s3 import _directory, _overwrite, _transfer
from publisher_s3._cleanup import WriteLog
from publisher_s3._overwrite import claim_key
from tests.s3_servers import S3Server, s3_spec

OLD = {"a.txt": b"old a\n", "b.txt": b"old b\n", "sub/c.txt": b"old c\n", "sub/d.txt": b"d\n"}
NEW = {"a.txt": b"new a, longer than before\n", "e.txt": b"new e\n"}


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    return root


def _keys(server: S3Server, bucket: str) -> set[str]:
    listed = server.client().list_objects_v2(Bucket=bucket)
    return {o["Key"] for o in listed.get("Contents", [])}


def _got(result: PublishedResult | dict[str, Any], target: Path) -> dict[str, bytes]:
    get(result, target)
    return {
        str(p.relative_to(target)): p.read_bytes() for p in sorted(target.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize("versioned", [False, True], ids=["unversioned", "versioned"])
@pytest.mark.parametrize("archive", [False, True], ids=["directory", "archive"])
def test_overwrite_replaces_the_whole_result(
    s3: S3Server, tmp_path: Path, archive: bool, versioned: bool
) -> None:
    """The default replaces: the key holds exactly the new result; versions keep the old."""
    bucket = s3.new_bucket(versioned=versioned)
    spec = s3_spec(s3, bucket, "runs/res" + ("" if archive else "/"), archive)
    old = publish(spec, _tree(tmp_path / "old", OLD))
    new = publish(spec, _tree(tmp_path / "new", NEW))
    if archive:
        assert _keys(s3, bucket) == {"runs/res.tar.gz"}
    else:
        assert _keys(s3, bucket) == {"runs/res/a.txt", "runs/res/e.txt", "runs/res.manifest.json"}
    assert _got(new, tmp_path / "got-new") == NEW
    if versioned:  # the earlier record pins its versions and still reads its own result
        assert _got(old, tmp_path / "got-old") == OLD
    else:  # replaced: refused by size or checksum, never mixed
        with pytest.raises(Exception, match=r"SHA-256|size|missing|404|bytes"):
            get(old, tmp_path / "got-old")
        assert not (tmp_path / "got-old").exists()


@pytest.mark.parametrize("versioned", [False, True], ids=["unversioned", "versioned"])
def test_a_failed_overwrite_in_a_versioned_bucket_leaves_the_earlier_result_latest(
    s3: S3Server, tmp_path: Path, versioned: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The manifest write fails: what was written and every delete marker are removed."""
    bucket = s3.new_bucket(versioned=versioned)
    spec = s3_spec(s3, bucket, "runs/res/", False)
    old = publish(spec, _tree(tmp_path / "old", OLD))
    put_object = _transfer.put_object

    def failing(to: Any, log: Any, key: str, *args: Any, **kw: Any) -> Any:
        if key.endswith(".manifest.json"):
            raise PublishError("injected: the manifest could not be written")
        return put_object(to, log, key, *args, **kw)

    monkeypatch.setattr(_directory, "put_object", failing)
    with pytest.raises(PublishError, match="injected"):
        publish(spec, _tree(tmp_path / "new", NEW))
    if versioned:
        assert _keys(s3, bucket) == {f"runs/res/{p}" for p in OLD} | {"runs/res.manifest.json"}
        assert _got(old, tmp_path / "got-old") == OLD
        current = s3.client().get_object(Bucket=bucket, Key="runs/res/a.txt")["Body"].read()
        assert current == OLD["a.txt"]
    else:  # the earlier result is gone: its manifest was withdrawn, nothing complete is left
        assert "runs/res.manifest.json" not in _keys(s3, bucket)
        assert not {f"runs/res/{p}" for p in NEW} & _keys(s3, bucket)


@pytest.mark.parametrize("archive", [False, True], ids=["directory", "archive"])
def test_overwrite_false_refuses_and_writes_nothing(
    s3: S3Server, tmp_path: Path, archive: bool
) -> None:
    """Anything at the key fails the publish, naming it; the earlier result is untouched."""
    bucket = s3.new_bucket()
    spec = s3_spec(s3, bucket, "runs/res" + ("" if archive else "/"), archive)
    old = publish(spec, _tree(tmp_path / "old", OLD))
    before = _keys(s3, bucket)
    with pytest.raises(PublishError, match=r"Overwrite is false.*nothing was written") as caught:
        publish({**spec, "Overwrite": False}, _tree(tmp_path / "new", NEW))
    assert f"s3://{bucket}/runs/res" in str(caught.value)
    assert _keys(s3, bucket) == before
    assert _got(old, tmp_path / "got") == OLD


def test_overwrite_never_deletes_other_results_under_the_prefix(
    s3: S3Server, tmp_path: Path
) -> None:
    """A prefix that holds another result is not replaced; a file named like one is fine."""
    bucket = s3.new_bucket()
    inner = publish(s3_spec(s3, bucket, "runs/all/j1/", False), _tree(tmp_path / "j1", OLD))
    s3.client().put_object(Bucket=bucket, Key="runs/all/loose.txt", Body=b"loose")
    before = _keys(s3, bucket)
    with pytest.raises(PublishError, match=r"holds other results \(runs/all/j1\.manifest\.json\)"):
        publish(s3_spec(s3, bucket, "runs/all/", False), _tree(tmp_path / "new", NEW))
    assert _keys(s3, bucket) == before
    assert _got(inner, tmp_path / "got") == OLD
    # A result whose own files look like a nested result is replaced as usual.
    lookalike = {"x.manifest.json": b"{}", "x/y.txt": b"y\n"}
    spec = s3_spec(s3, bucket, "runs/own/", False)
    publish(spec, _tree(tmp_path / "look", lookalike))
    publish(spec, _tree(tmp_path / "new2", NEW))
    assert {k for k in _keys(s3, bucket) if k.startswith("runs/own")} == {
        "runs/own/a.txt",
        "runs/own/e.txt",
        "runs/own.manifest.json",
    }


def test_overwrite_false_refuses_a_lone_manifest_and_a_leftover_file(
    s3: S3Server, tmp_path: Path
) -> None:
    """A directory key counts as taken by its manifest alone, or by any object under it."""
    bucket = s3.new_bucket()
    spec = {**s3_spec(s3, bucket, "runs/res/", False), "Overwrite": False}
    s3.client().put_object(Bucket=bucket, Key="runs/res.manifest.json", Body=b"{}")
    with pytest.raises(PublishError, match=r"runs/res\.manifest\.json already exists"):
        publish(spec, _tree(tmp_path / "new", NEW))
    other = s3.new_bucket()
    s3.client().put_object(Bucket=other, Key="runs/res/left.bin", Body=b"x")
    with pytest.raises(PublishError, match=r"already holds objects \(runs/res/left\.bin\)"):
        publish({**spec, "Bucket": other}, _tree(tmp_path / "new", NEW))
    assert _keys(s3, other) == {"runs/res/left.bin"}


@pytest.mark.parametrize("archive", [False, True], ids=["directory", "archive"])
def test_overwrite_false_publishes_to_a_free_key_and_leaves_no_claim(
    s3: S3Server, tmp_path: Path, archive: bool
) -> None:
    """A free key is published as ever; the claim is gone afterwards."""
    bucket = s3.new_bucket()
    key = "runs/res" + ("" if archive else "/")
    spec = {**s3_spec(s3, bucket, key, archive), "Overwrite": False}
    result = publish(spec, _tree(tmp_path, NEW))
    keys = _keys(s3, bucket)
    assert not any(k.endswith(".claim") for k in keys)
    assert _got(result, tmp_path / "got") == NEW


@pytest.mark.parametrize("archive", [False, True], ids=["directory", "archive"])
def test_a_result_written_meanwhile_by_a_replacing_publish_is_kept(
    s3: S3Server, tmp_path: Path, archive: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The final write is create-only: what another publish stored meanwhile stays."""
    bucket = s3.new_bucket()
    final = "runs/res.tar.gz" if archive else "runs/res.manifest.json"
    claim = _overwrite.Claim.before

    def intruded(self: _overwrite.Claim) -> None:
        claim(self)
        s3.client().put_object(Bucket=bucket, Key=final, Body=b"theirs")

    monkeypatch.setattr(_overwrite.Claim, "before", intruded)
    spec = s3_spec(s3, bucket, "runs/res" + ("" if archive else "/"), archive)
    with pytest.raises(PublishError, match=r"created by another publish .*Overwrite is false"):
        publish({**spec, "Overwrite": False}, _tree(tmp_path, NEW))
    assert _keys(s3, bucket) == {final}
    assert s3.client().get_object(Bucket=bucket, Key=final)["Body"].read() == b"theirs"


def test_a_claim_left_by_a_killed_publish_is_named(s3: S3Server, tmp_path: Path) -> None:
    """A claim blocks the key with an error that says what to do."""
    bucket = s3.new_bucket()
    s3.client().put_object(Bucket=bucket, Key=claim_key("runs/res.tar.gz"), Body=b"{}")
    spec = {**s3_spec(s3, bucket, "runs/res", True), "Overwrite": False}
    with pytest.raises(PublishError, match=r"holds its claim .*a killed one left the claim"):
        publish(spec, _tree(tmp_path, NEW))
    assert _keys(s3, bucket) == {"runs/res.tar.gz.claim"}


def test_overwrite_false_from_the_command_line(
    s3: S3Server, tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``opt=overwrite=false`` and YAML ``Overwrite: false`` both refuse with exit 1."""
    bucket = s3.new_bucket()
    source = _tree(tmp_path / "src", OLD)
    base = f"s3://{bucket}/runs/res/,opt=endpoint={s3.endpoint}"
    first = cli("publish", base, str(source))
    assert first.code == 0, first.err
    second = cli("publish", base + ",opt=overwrite=false", str(source))
    assert second.code == 1
    assert "Overwrite is false" in second.err and f"s3://{bucket}/runs/res/" in second.err
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"Type: s3\nBucket: {bucket}\nKey: runs/res/\nEndpoint: {s3.endpoint}\nOverwrite: false\n"
    )
    third = cli("publish", str(spec), str(source))
    assert third.code == 1 and "Overwrite is false" in third.err


_RACER = """
import json, sys
from publisher_core import publish, PublishError
try:
    result = publish(json.loads(sys.argv[1]), sys.argv[2])
    print(json.dumps({"Type": result.type, "Params": dict(result.params)}))
except PublishError as exc:
    print(exc, file=sys.stderr)
    sys.exit(1)
"""


@pytest.mark.parametrize("versioned", [False, True], ids=["unversioned", "versioned"])
@pytest.mark.parametrize("archive", [False, True], ids=["directory", "archive"])
def test_two_racing_publishes_with_overwrite_false_one_wins(
    s3: S3Server, tmp_path: Path, archive: bool, versioned: bool
) -> None:
    """Started together, again and again: one wins, the loser leaves nothing behind.

    On Ceph 16 a versioned bucket ignores ``If-None-Match``: the oldest claim decides.
    """
    bucket = s3.new_bucket(versioned=versioned)
    trees = [
        _tree(tmp_path / "one", {f"f{i}.txt": b"one %d\n" % i for i in range(40)}),
        _tree(tmp_path / "two", {f"f{i}.txt": b"two %d\n" % i for i in range(40)}),
    ]
    for round_ in range(6):
        key = f"runs/r{round_}" + ("" if archive else "/")
        spec = {**s3_spec(s3, bucket, key, archive), "Overwrite": False}
        racers = [
            subprocess.Popen(
                [sys.executable, "-c", _RACER, json.dumps(spec), str(tree)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, "PUBLISHER_S3_PROCESSES": "1"},
            )
            for tree in trees
        ]
        outcomes = [(r.wait(timeout=120), *r.communicate()) for r in racers]
        codes = sorted(code for code, _, _ in outcomes)
        assert codes == [0, 1], outcomes
        winner = next(i for i, (code, _, _) in enumerate(outcomes) if code == 0)
        loser_err = outcomes[1 - winner][2]
        assert "Overwrite is false" in loser_err, loser_err
        record = json.loads(outcomes[winner][1])
        expected = {p.name: p.read_bytes() for p in trees[winner].iterdir()}
        assert _got(record, tmp_path / f"got{round_}") == expected
        keys = {k for k in _keys(s3, bucket) if k.startswith(f"runs/r{round_}")}
        assert not any(k.endswith(".claim") for k in keys), keys
        if not archive:
            assert keys == {f"runs/r{round_}/{name}" for name in expected} | {
                f"runs/r{round_}.manifest.json"
            }
        uploads = s3.client().list_multipart_uploads(Bucket=bucket, Prefix=f"runs/r{round_}")
        assert not uploads.get("Uploads")
        if versioned:  # no version the loser wrote (its claim included) is left
            listed = s3.client().list_object_versions(Bucket=bucket, Prefix=f"runs/r{round_}")
            assert not listed.get("DeleteMarkers"), listed.get("DeleteMarkers")
            assert sorted(v["Key"] for v in listed.get("Versions", [])) == sorted(keys)


def test_an_unversioned_describe_pins_no_file_version(s3: S3Server, tmp_path: Path) -> None:
    """Files are pinned to their versions only where the bucket keeps versions."""
    for versioned in (False, True):
        bucket = s3.new_bucket(versioned=versioned)
        result = publish(s3_spec(s3, bucket, "runs/res/", False), _tree(tmp_path, NEW))
        urls = [item.url for item in describe(result).items]
        assert all(("versionId=" in url) == versioned for url in urls), urls


@pytest.mark.parametrize("versioned", [False, True], ids=["unversioned", "versioned"])
def test_a_store_that_ignores_conditional_writes(
    s3: S3Server,
    tmp_path: Path,
    versioned: bool,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The second write of the claim must be refused; a store that accepts it is noticed.

    Here the claim is written without ``If-None-Match``, as a store that ignores it sees
    it. In a versioned bucket the oldest claim version decides (Ceph 16 really ignores it
    there); in an unversioned one a warning names the store. No claim is left either way.
    """
    put_object = _transfer.put_object

    def ignored(*args: Any, **kw: Any) -> Any:
        return put_object(*args, **{**kw, "create_only": False})

    monkeypatch.setattr(_overwrite, "put_object", ignored)
    bucket = s3.new_bucket(versioned=versioned)
    spec = {**s3_spec(s3, bucket, "runs/res", True), "Overwrite": False}
    result = publish(spec, _tree(tmp_path, NEW))
    warned = [r.getMessage() for r in caplog.records if "ignores If-None-Match" in r.getMessage()]
    assert bool(warned) == (not versioned), warned
    versions = s3.client().list_object_versions(Bucket=bucket, Prefix="runs/res.tar.gz.claim")
    assert not versions.get("Versions") and not versions.get("DeleteMarkers")
    assert _got(result, tmp_path / "got") == NEW
    if versioned:  # an older claim version (another publish's) wins
        s3.client().put_object(Bucket=bucket, Key="runs/two.tar.gz.claim", Body=b"{}")
        client = s3.client()
        to = _transfer.Destination(client, bucket)
        racing = _overwrite.Claim(to, WriteLog(client, bucket), "runs/two.tar.gz")
        with pytest.raises(PublishError, match="claimed it first"):
            racing._claim()
