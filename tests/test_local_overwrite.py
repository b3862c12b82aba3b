"""The local publisher's ``Overwrite``: replace a result as a whole, or refuse, race-free."""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import publisher_core._prepare as plugin  # where every publisher scans its tree
import publisher_local._place as place
from publisher_core import PublishError, describe, get, publish, scan_tree
from publisher_core.testing.strategies import Tree
from tests.conftest import BIN
from tests.trees import build, snapshot

OLD: Tree = {
    "a.txt": b"old a\n",
    "b.txt": b"old b\n",
    "sub": {"c.txt": b"old c\n", "deeper": {"d.bin": bytes(range(256)) * 4}},
    "e.txt": b"",
}
NEW: Tree = {"only.txt": b"the new result\n"}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def old(tmp_path: Path) -> Path:
    return build(OLD, tmp_path / "old")


@pytest.fixture
def new(tmp_path: Path) -> Path:
    return build(NEW, tmp_path / "new")


def spec(key: str, compress: bool, overwrite: bool | None = None) -> dict[str, object]:
    params: dict[str, object] = {"Key": key, "Compress": compress}
    if overwrite is not None:
        params["Overwrite"] = overwrite
    return {"Type": "local", "Params": params}


def listing(path: Path) -> list[str]:
    """Every entry below ``path``, hidden ones included, as sorted relative paths."""
    out = []
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            out.append(os.path.relpath(os.path.join(dirpath, name), path))
    return sorted(out)


def expected_listing(key: str, tree: Tree, compress: bool) -> list[str]:
    """What the root holds after publishing ``tree`` alone at ``key``."""
    if compress:
        return [f"{key}.tar.gz"]
    inside = [os.path.join(key, p) for p in snapshot_paths(tree)]
    return sorted([key, f"{key}.manifest.json", *inside])


def state(path: Path) -> dict[str, tuple[str, bytes | str | None]]:
    """Every entry below ``path`` (hidden ones included), links and special files too,
    without following links or opening anything but regular files."""
    out: dict[str, tuple[str, bytes | str | None]] = {}
    if not path.exists():
        return out
    for rel in listing(path):
        full = path / rel
        mode = os.lstat(full).st_mode
        if stat.S_ISLNK(mode):
            out[rel] = ("link", os.readlink(full))
        elif stat.S_ISREG(mode):
            out[rel] = ("file", full.read_bytes())
        else:
            out[rel] = ("dir" if stat.S_ISDIR(mode) else "special", None)
    return out


def snapshot_paths(tree: Tree, prefix: str = "") -> list[str]:
    out = []
    for name, node in tree.items():
        out.append(prefix + name)
        if isinstance(node, dict):
            out += snapshot_paths(node, f"{prefix}{name}/")
    return out


def write_spec(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def archive_members(path: Path) -> list[str]:
    with tarfile.open(path) as tar:
        return sorted(m.name for m in tar.getmembers() if m.isfile())


# --- Overwrite: true (the default) ------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True])
def test_the_default_replaces_the_whole_result(cli, tmp_path, root, old, new, compress):
    """5 files, then 1 file at the same key: exactly the new file is left, and only the
    new record gets back; the old one fails with a clear error."""
    imperative = "local://res" + (",opt=compress=true" if compress else "")
    first = cli("publish", imperative, str(old))
    assert first.code == 0, first.err
    assert len([p for p in snapshot(old).values() if p is not None]) == 5
    assert listing(root) == expected_listing("res", OLD, compress)
    second = cli("publish", imperative, str(new))
    assert second.code == 0, second.err

    assert listing(root) == expected_listing("res", NEW, compress)
    if compress:
        assert archive_members(root / "res.tar.gz") == ["only.txt"]
    else:
        assert snapshot(root / "res") == snapshot(new)

    (tmp_path / "first.yaml").write_text(first.out)
    (tmp_path / "second.yaml").write_text(second.out)
    got = cli("get", "second.yaml", "-o", "got-new")
    assert got.code == 0, got.err
    assert snapshot(tmp_path / "got-new") == snapshot(new)

    stale = cli("get", "first.yaml", "-o", "got-old")
    assert stale.code == 1
    assert stale.err.startswith("error: ")
    assert len(stale.err.strip().splitlines()) == 1
    if compress:
        assert "res.tar.gz" in stale.err
    else:
        assert f"manifest {root.resolve() / 'res.manifest.json'} has SHA-256" in stale.err
    assert not (tmp_path / "got-old").exists()
    assert listing(root) == expected_listing("res", NEW, compress)


@pytest.mark.parametrize("compress", [False, True])
def test_overwrite_true_spelled_out_is_the_default(root, old, new, compress):
    """Overwrite: true (YAML) and opt=overwrite=true behave as leaving it out."""
    publish(spec("k", compress), old)
    publish(spec("k", compress, overwrite=True), new)
    publish(f"local://k,opt=overwrite=true{',opt=compress=true' if compress else ''}", old)
    assert listing(root) == expected_listing("k", OLD, compress)


def test_a_directory_without_its_manifest_is_replaced(root, new):
    """A leftover directory at the key (no manifest: not a complete result) is replaced."""
    build({"stale.txt": b"stale", "stale dir": {"x": b"x"}}, root / "k")
    result = publish(spec("k", False), new)
    assert snapshot(root / "k") == snapshot(new)
    assert listing(root) == expected_listing("k", NEW, False)
    assert describe(result).items


def test_a_manifest_without_its_directory_is_replaced(root, old, new, tmp_path):
    """A result whose directory was deleted: the new one goes in, the old manifest goes."""
    publish(spec("k", False), old)
    shutil.rmtree(root / "k")
    result = publish(spec("k", False), new)
    assert listing(root) == expected_listing("k", NEW, False)
    get(describe(result), tmp_path / "out")
    assert snapshot(tmp_path / "out") == snapshot(new)


# --- Overwrite: false ---------------------------------------------------------------------


SPELLINGS = ["yaml", "imperative"]


def refusing_spec(tmp_path: Path, spelling: str, compress: bool) -> str:
    if spelling == "yaml":
        return write_spec(
            tmp_path,
            "refuse.yaml",
            f"Type: local\nKey: res\nCompress: {str(compress).lower()}\nOverwrite: false\n",
        )
    return "local://res,opt=overwrite=false" + (",opt=compress=true" if compress else "")


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("spelling", SPELLINGS)
def test_overwrite_false_refuses_and_changes_nothing(
    cli, tmp_path, root, old, new, spelling, compress
):
    """Both spellings of Overwrite: false refuse an existing result, exit 1, name the path."""
    first = cli("publish", "local://res" + (",opt=compress=true" if compress else ""), str(old))
    assert first.code == 0, first.err
    before = snapshot(root)
    refused = cli("publish", refusing_spec(tmp_path, spelling, compress), str(new))
    assert refused.code == 1
    assert refused.out == ""
    assert len(refused.err.strip().splitlines()) == 1
    path = root.resolve() / ("res.tar.gz" if compress else "res")
    assert refused.err.strip() == (
        f"error: {path} already exists; Overwrite is false, so nothing was written: "
        "choose another Key (e.g. with {executionID}) or set Overwrite: true"
    )
    assert "never replaces" not in refused.err
    assert snapshot(root) == before  # byte for byte, and no temporary files
    (tmp_path / "first.yaml").write_text(first.out)
    got = cli("get", "first.yaml", "-o", "got")
    assert got.code == 0, got.err
    assert snapshot(tmp_path / "got") == snapshot(old)


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_overwrite_false_publishes_to_a_free_key(cli, tmp_path, root, new, spelling):
    """Overwrite: false changes nothing where the key is free."""
    done = cli("publish", refusing_spec(tmp_path, spelling, False), str(new))
    assert done.code == 0, done.err
    assert listing(root) == expected_listing("res", NEW, False)


@pytest.mark.parametrize("present", ["directory", "manifest", "file at the key"])
def test_overwrite_false_refuses_any_part_of_a_result(root, new, present):
    """A directory alone, a manifest alone, or any file at the key is enough to refuse."""
    root.mkdir()
    if present == "directory":
        (root / "k").mkdir()
        blocking = root / "k"
    elif present == "manifest":
        (root / "k.manifest.json").write_text("{}")
        blocking = root / "k.manifest.json"
    else:
        (root / "k").write_text("not a result")
        blocking = root / "k"
    before = snapshot(root)
    with pytest.raises(
        PublishError, match=f"^{blocking.resolve()} already exists; Overwrite is false"
    ):
        publish(spec("k", False, overwrite=False), new)
    assert snapshot(root) == before


# --- the swap, step by step ---------------------------------------------------------------


class Steps:
    """Counts the swap's renames (``os.rename`` and the ``renameat2`` helper) under ``root``
    and makes the ones listed in ``fail`` raise (1-based, counting every call)."""

    def __init__(self, root: Path, *, exchange: bool, fail: frozenset[int] = frozenset()) -> None:
        self.root = str(root.resolve())
        self.exchange = exchange
        self.fail = set(fail)
        self.calls: list[str] = []
        self.error: BaseException = OSError(errno.EIO, "injected failure")

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real_rename = os.rename
        real_renameat2 = place.renameat2

        def rename(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            if str(src).startswith(self.root):
                self._step("rename")
            real_rename(src, dst, *args, **kwargs)

        def renameat2(src: Path, dst: Path, flags: int) -> bool:
            name = "exchange" if flags == place.RENAME_EXCHANGE else "noreplace"
            self._step(name)
            return real_renameat2(src, dst, flags) if self.exchange else False

        monkeypatch.setattr(os, "rename", rename)
        monkeypatch.setattr(place, "renameat2", renameat2)

    def _step(self, name: str) -> None:
        self.calls.append(name)
        if len(self.calls) in self.fail:
            raise self.error


# The forward steps of replacing a directory result: old manifest aside; new directory in
# (one exchange, or old aside + new in); new manifest in.
EXCHANGE_STEPS = ["rename", "exchange", "rename"]
FALLBACK_STEPS = ["rename", "exchange", "rename", "rename", "rename"]


@pytest.mark.parametrize(("exchange", "steps"), [(True, EXCHANGE_STEPS), (False, FALLBACK_STEPS)])
def test_the_swap_takes_the_documented_steps(root, old, new, monkeypatch, exchange, steps):
    """With renameat2 and without it (the fallback), a replacement takes these renames and
    ends with exactly the new result."""
    publish(spec("k", False), old)
    counter = Steps(root, exchange=exchange)
    counter.install(monkeypatch)
    result = publish(spec("k", False), new)
    assert counter.calls == steps
    assert listing(root) == expected_listing("k", NEW, False)
    assert snapshot(root / "k") == snapshot(new)
    assert describe(result).items[0].path == "only.txt"


def _failing_cases() -> list[Any]:
    cases = []
    for exchange, steps in ((True, EXCHANGE_STEPS), (False, FALLBACK_STEPS)):
        for number in range(1, len(steps) + 1):
            if not exchange and number == 2:
                continue  # the helper reporting "unsupported" is not a failure
            label = f"{'renameat2' if exchange else 'fallback'}-step{number}-{steps[number - 1]}"
            cases.append(pytest.param(exchange, number, id=label))
    return cases


@pytest.mark.parametrize(("exchange", "number"), _failing_cases())
def test_a_failing_swap_step_leaves_the_old_result_complete(
    root, old, new, tmp_path, monkeypatch, exchange, number
):
    """Each step of the swap failing in turn: undone, the old result complete and
    retrievable, nothing left over, one PublishError."""
    first = publish(spec("k", False), old)
    before = snapshot(root)
    counter = Steps(root, exchange=exchange, fail=frozenset({number}))
    counter.install(monkeypatch)
    with pytest.raises(PublishError, match=r"could not replace .*/k: injected failure; the earl"):
        publish(spec("k", False), new)
    monkeypatch.undo()
    assert snapshot(root) == before
    assert listing(root) == expected_listing("k", OLD, False)
    get(describe(first), tmp_path / "out")
    assert snapshot(tmp_path / "out") == snapshot(old)


@pytest.mark.parametrize("exchange", [True, False])
def test_an_interrupt_during_the_swap_is_undone_too(root, old, new, monkeypatch, exchange):
    """A KeyboardInterrupt at the last step puts the old result back and propagates."""
    publish(spec("k", False), old)
    before = snapshot(root)
    steps = EXCHANGE_STEPS if exchange else FALLBACK_STEPS
    counter = Steps(root, exchange=exchange, fail=frozenset({len(steps)}))
    counter.error = KeyboardInterrupt()
    counter.install(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        publish(spec("k", False), new)
    monkeypatch.undo()
    assert snapshot(root) == before


def test_a_failing_undo_keeps_the_old_parts_and_says_where(root, old, new, monkeypatch):
    """If putting the old result back fails too, nothing is deleted: the error names the
    temporary directory that holds the old result's missing parts."""
    publish(spec("k", False), old)
    # fallback step 5 (the new manifest in) fails, and so does the first undo after it
    counter = Steps(root, exchange=False, fail=frozenset({5, 6}))
    counter.install(monkeypatch)
    with pytest.raises(PublishError, match="nor put the earlier result back") as caught:
        publish(spec("k", False), new)
    monkeypatch.undo()
    kept = str(caught.value).rsplit(" in ", 1)[1]
    assert Path(kept).parent == root.resolve()
    assert snapshot(Path(kept) / "old") == snapshot(old)
    assert (Path(kept) / "old.manifest.json").is_file()


@pytest.mark.parametrize("compress", [False, True])
def test_a_failure_before_the_swap_leaves_the_old_result_untouched(
    root, old, new, tmp_path, monkeypatch, compress
):
    """A file vanishing while the new result is copied: the old result is as it was."""
    first = publish(spec("k", compress), old)
    before = snapshot(root)

    def scan(source: Path, **kwargs: Any) -> Any:
        entries = scan_tree(source, **kwargs)
        (source / "only.txt").unlink()
        return entries

    monkeypatch.setattr(plugin, "scan_tree", scan)
    with pytest.raises(PublishError, match=r"only\.txt: cannot open"):
        publish(spec("k", compress), new)
    assert snapshot(root) == before
    get(describe(first), tmp_path / "out")
    assert snapshot(tmp_path / "out") == snapshot(old)


@pytest.mark.parametrize("compress", [False, True])
def test_an_archive_or_directory_failing_to_go_in_keeps_the_old(
    root, old, new, monkeypatch, compress
):
    """os.replace of an archive failing, or the first rename of a directory swap."""
    publish(spec("k", compress), old)
    before = snapshot(root)
    if compress:
        real_replace = os.replace

        def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            if str(src).startswith(str(root.resolve())):
                raise OSError(errno.EIO, "injected failure")
            real_replace(src, dst, *args, **kwargs)

        monkeypatch.setattr(os, "replace", replace)
    else:
        Steps(root, exchange=True, fail=frozenset({1})).install(monkeypatch)
    with pytest.raises(PublishError, match="injected failure"):
        publish(spec("k", compress), new)
    monkeypatch.undo()
    assert snapshot(root) == before


# --- without renameat2 (the fallback) -------------------------------------------------------


@pytest.fixture
def no_renameat2(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The helper reports renameat2 unsupported; the flags it was asked for are listed."""
    asked: list[int] = []

    def unsupported(src: Path, dst: Path, flags: int) -> bool:
        asked.append(flags)
        return False

    monkeypatch.setattr(place, "renameat2", unsupported)
    return asked


@pytest.mark.parametrize("compress", [False, True])
def test_the_fallback_replaces_and_refuses_alike(root, old, new, tmp_path, no_renameat2, compress):
    """Without renameat2: the same replacement, the same refusal."""
    publish(spec("k", compress), old)
    second = publish(spec("k", compress), new)
    assert listing(root) == expected_listing("k", NEW, compress)
    get(describe(second), tmp_path / "out")
    assert snapshot(tmp_path / "out") == snapshot(new)
    before = snapshot(root)
    with pytest.raises(PublishError, match="already exists; Overwrite is false"):
        publish(spec("k", compress, overwrite=False), old)
    assert snapshot(root) == before
    fresh = publish(spec("fresh", compress, overwrite=False), old)
    assert describe(fresh).items
    if not compress:
        assert place.RENAME_EXCHANGE in no_renameat2
        assert place.RENAME_NOREPLACE in no_renameat2


# --- Overwrite: false against a publish that wins in between ----------------------------------


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "fallback"])
@pytest.mark.parametrize("intruder", ["directory", "manifest"])
def test_a_result_appearing_after_the_check_is_not_replaced(
    root, old, new, monkeypatch, exchange, intruder
):
    """Something another writer puts at the key after the last check (even one that takes
    no turn) is refused by the no-clobber renames, and kept; nothing of ours is left."""
    if not exchange:
        monkeypatch.setattr(place, "renameat2", lambda src, dst, flags: False)
    real_check = place.check_destination

    def check_then_intrude(target: Path, manifest: Path | None, **kwargs: Any) -> None:
        real_check(target, manifest, **kwargs)
        if intruder == "directory":
            build(OLD, target)
        else:
            assert manifest is not None
            manifest.write_text("theirs")

    monkeypatch.setattr(place, "check_destination", check_then_intrude)
    blocked = "k" if intruder == "directory" else "k.manifest.json"
    with pytest.raises(PublishError, match=f"{blocked} already exists; Overwrite is false"):
        publish(spec("k", False, overwrite=False), new)
    if intruder == "directory":
        assert listing(root) == sorted(["k", *(f"k/{p}" for p in snapshot_paths(OLD))])
        assert snapshot(root / "k") == snapshot(old)
    else:
        assert listing(root) == ["k.manifest.json"]
        assert (root / "k.manifest.json").read_text() == "theirs"


# --- destinations of the wrong kind ----------------------------------------------------------


def _wrong_kinds() -> list[Any]:
    def file_at_directory(root: Path, elsewhere: Path) -> str:
        (root / "k").write_text("a plain file")
        return "/k is a regular file, where a directory result goes"

    def link_at_directory(root: Path, elsewhere: Path) -> str:
        build({"keep.txt": b"keep"}, elsewhere)
        os.symlink(elsewhere, root / "k")
        return "/k is a symbolic link, where a directory result goes"

    def directory_at_manifest(root: Path, elsewhere: Path) -> str:
        (root / "k.manifest.json").mkdir()
        return r"/k\.manifest\.json is a directory, where the manifest \(a regular file\) goes"

    def link_at_manifest(root: Path, elsewhere: Path) -> str:
        elsewhere.mkdir()
        (elsewhere / "m.json").write_text("{}")
        os.symlink(elsewhere / "m.json", root / "k.manifest.json")
        return r"/k\.manifest\.json is a symbolic link, where the manifest"

    def directory_at_archive(root: Path, elsewhere: Path) -> str:
        build({"x": b"x"}, root / "k.tar.gz")
        return r"/k\.tar\.gz is a directory, where an archive \(a regular file\) goes"

    def link_at_archive(root: Path, elsewhere: Path) -> str:
        elsewhere.mkdir()
        (elsewhere / "a.tar.gz").write_bytes(b"not ours")
        os.symlink(elsewhere / "a.tar.gz", root / "k.tar.gz")
        return r"/k\.tar\.gz is a symbolic link, where an archive"

    def fifo_at_archive(root: Path, elsewhere: Path) -> str:
        os.mkfifo(root / "k.tar.gz")
        return r"/k\.tar\.gz is a special file, where an archive"

    def results_inside(root: Path, elsewhere: Path) -> str:
        build({"j1": {"f": b"1"}, "j1.manifest.json": b"{}", "loose.txt": b"x"}, root / "k")
        return r"/k holds other results \(/.*/k/j1\.manifest\.json\); replacing it would"

    def results_deep_inside_a_result(root: Path, elsewhere: Path) -> str:
        # a complete result at k whose directory got other results put in it by hand
        publish(spec("k", False), build({"mine.txt": b"m"}, elsewhere))
        for n in range(1, 6):
            build({"f": b"1"}, root / "k" / "a" / f"j{n}")
            (root / "k" / "a" / f"j{n}.manifest.json").write_text("{}")
        return (
            r"/k holds other results \(/.*/k/a/j1\.manifest\.json, .*, "
            r".*/k/a/j3\.manifest\.json and 2 more\)"
        )

    cases = [
        (file_at_directory, False),
        (link_at_directory, False),
        (directory_at_manifest, False),
        (link_at_manifest, False),
        (directory_at_archive, True),
        (link_at_archive, True),
        (fifo_at_archive, True),
        (results_inside, False),
        (results_deep_inside_a_result, False),
    ]
    return [pytest.param(make, compress, id=make.__name__) for make, compress in cases]


@pytest.mark.parametrize(("make", "compress"), _wrong_kinds())
def test_a_destination_of_the_wrong_kind_is_refused_and_kept(
    cli_in_process, tmp_path, root, new, make: Callable[[Path, Path], str], compress
):
    """A file where a directory goes, a link, a directory where the archive goes, a
    directory holding other results: refused with one line, exit 1, nothing removed."""
    root.mkdir()
    message = make(root, tmp_path / "elsewhere")
    before, elsewhere = state(root), state(tmp_path / "elsewhere")
    imperative = "local://k" + (",opt=compress=true" if compress else "")
    refused = cli_in_process("publish", imperative, str(new))
    assert refused.code == 1
    assert refused.out == ""
    assert len(refused.err.strip().splitlines()) == 1, refused.err
    assert refused.err.startswith(f"error: {root.resolve()}/")
    assert re.search(message, refused.err), refused.err
    assert refused.err.rstrip().endswith(
        ("- remove it or choose another Key", "choose a key that holds no other result")
    )
    assert state(root) == before  # nothing removed, changed or left over
    assert state(tmp_path / "elsewhere") == elsewhere


def test_a_result_holding_files_named_like_a_result_is_replaced(root, new, tmp_path):
    """Its own files x/ and x.manifest.json (listed in its manifest) are no other result."""
    lookalike = build({"x.manifest.json": b"{}", "x": {"y.txt": b"y\n"}}, tmp_path / "look")
    publish(spec("own", False), lookalike)
    publish(spec("own", False), new)
    assert listing(root) == expected_listing("own", NEW, False)


def test_a_directory_holding_only_loose_files_is_replaced(root, new):
    """Files that are no directory result (an archive among them) do not stop a replace."""
    build({"loose.txt": b"x", "j1.tar.gz": b"not checked"}, root / "k")
    publish(spec("k", False), new)
    assert listing(root) == expected_listing("k", NEW, False)


def test_a_key_inside_another_result_is_still_refused(root, old, new):
    """Overwrite does not let a key reach into another directory result."""
    publish(spec("outer", False), old)
    before = snapshot(root)
    for compress in (False, True):
        with pytest.raises(PublishError, match="lies inside the directory result"):
            publish(spec("outer/sub", compress, overwrite=True), new)
    assert snapshot(root) == before


# --- two publishers at once ---------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True])
def test_two_publishers_racing_with_overwrite_false_one_wins(tmp_path, root, compress):
    """Two processes publish different trees to one fresh key at once, ten times: exactly
    one succeeds, the key holds exactly its result, the loser leaves nothing behind."""
    trees = {
        name: build(
            {f"{name}-{i:03}.txt": f"{name} {i}\n".encode() * 50 for i in range(150)},
            tmp_path / f"src-{name}",
        )
        for name in ("left", "right")
    }
    env = {**os.environ, "PUBLISHER_LOCAL_ROOT": str(root)}
    for attempt in range(10):
        key = f"race{attempt}/r"
        imperative = f"local://{key},opt=overwrite=false" + (
            ",opt=compress=true" if compress else ""
        )
        procs = {
            name: subprocess.Popen(
                [str(BIN / "publisher"), "publish", imperative, str(source)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
                cwd=tmp_path,
            )
            for name, source in trees.items()
        }
        outcome = {}
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=120)
            outcome[name] = (proc.returncode, out, err)
        codes = sorted(code for code, _, _ in outcome.values())
        assert codes == [0, 1], outcome
        winner = next(name for name, (code, _, _) in outcome.items() if code == 0)
        loser = next(name for name, (code, _, _) in outcome.items() if code == 1)
        assert "already exists; Overwrite is false" in outcome[loser][2]
        assert outcome[loser][1] == ""
        base = root / f"race{attempt}"
        names = sorted(os.listdir(trees[winner]))
        if compress:
            assert listing(base) == ["r.tar.gz"]
            assert archive_members(base / "r.tar.gz") == names
        else:
            assert listing(base) == sorted(["r", "r.manifest.json", *(f"r/{n}" for n in names)])
            assert snapshot(base / "r") == snapshot(trees[winner])
        record = tmp_path / f"record{attempt}.yaml"
        record.write_text(outcome[winner][1])
        out = tmp_path / f"out{attempt}"
        get(describe(record), out)
        assert snapshot(out) == snapshot(trees[winner])
    assert sorted(os.listdir(root)) == [f"race{i}" for i in range(10)]
