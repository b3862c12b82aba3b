"""Shared fixtures: an isolated local root, the real CLI entry point, fake plugins."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

pytest_plugins = [
    "tests.s3_servers",
    "tests.fault_table",
    "tests.downloads",
    "tests.http_servers",
]

PLUGINS = Path(__file__).parent / "plugins"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every test starts without publisher variables and with its own local root."""
    for name in list(os.environ):
        if name.startswith("PUBLISHER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PUBLISHER_LOCAL_ROOT", str(tmp_path / "store"))


@pytest.fixture
def result_dir(tmp_path: Path) -> Path:
    """A small job result: spaces and unicode in names, an empty file and directory, nesting."""
    from tests.trees import build

    return build(
        {
            "a file with spaces.txt": b"hello\n",
            "données": {"résumé.txt": "unicode ✓".encode()},
            "empty.txt": b"",
            "nested": {"deeper": {"deepest.bin": bytes(range(256)) * 12}},
            "empty dir": {},
        },
        tmp_path / "result",
    )


@dataclass
class CLIResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(tmp_path: Path):
    """Run the installed ``publisher`` console script in ``tmp_path``."""

    def run(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> CLIResult:
        proc = subprocess.run(
            [str(BIN / "publisher"), *args],
            input=stdin,
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**os.environ, **(env or {})},
            timeout=120,
        )
        return CLIResult(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture
def cli_in_process(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """Run the CLI in this process (faster than ``cli``): same exit code, stdout, stderr.

    ``env`` is set for the test; the registry is rebuilt around each run, since it reads
    ``PUBLISHER_DISABLED`` and ``sys.path`` when it is built.
    """
    from publisher_core import cli as publisher_cli
    from publisher_core._api import default_registry

    def run(*args: str, env: dict[str, str] | None = None) -> CLIResult:
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        default_registry.cache_clear()
        capsys.readouterr()
        try:
            code = publisher_cli.run(list(args))
        finally:
            default_registry.cache_clear()
        captured = capsys.readouterr()
        return CLIResult(code, captured.out, captured.err)

    return run


def _pip_install_target(target: Path, *projects: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "--target",
            str(target),
            *map(str, projects),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )


@pytest.fixture(scope="session")
def third_party(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Fake third-party distributions, each installed (with metadata) into its own folder.

    ``working``: Type ``memo``; ``broken``: fails on import, and one with invalid hooks;
    ``duplicate``: claims Type ``local`` a second time; ``raising``: hooks that raise;
    ``sqlite``: the example publisher in examples/publisher-sqlite.
    """
    base = tmp_path_factory.mktemp("third-party")
    folders = {
        "working": [PLUGINS / "memo_publisher"],
        "broken": [PLUGINS / "broken_publisher"],
        "duplicate": [PLUGINS / "duplicate_publisher"],
        "raising": [PLUGINS / "raising_publisher"],
        "sqlite": [EXAMPLES / "publisher-sqlite"],
    }
    installed: dict[str, Path] = {}
    for name, projects in folders.items():
        _pip_install_target(base / name, *projects)
        installed[name] = base / name
    yield installed
