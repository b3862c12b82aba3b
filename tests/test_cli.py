"""The publisher command line, through the installed console script."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from publisher_core.cli import run


@pytest.fixture
def source(tmp_path: Path) -> Path:
    root = tmp_path / "result"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "x.txt").write_text("x")
    (root / "y.txt").write_text("y")
    return root


def test_list_shows_both_publishers(cli):
    """``list`` prints Type, distribution, version and status."""
    result = cli("list")
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0].split() == ["TYPE", "DISTRIBUTION", "VERSION", "STATUS"]
    assert lines[1].split() == ["local", "publisher-local", "0.1.0", "ok"]
    assert lines[2].split() == ["s3", "publisher-s3", "0.1.0", "ok"]


def test_list_json_shape(cli):
    """``list --json`` is an array of {type, distribution, version, status, error}."""
    rows = json.loads(cli("list", "--json").out)
    assert {tuple(sorted(r)) for r in rows} == {
        ("distribution", "error", "status", "type", "version")
    }


def test_disabled_types_show_in_list(cli):
    """PUBLISHER_DISABLED shows as disabled."""
    out = cli("list", env={"PUBLISHER_DISABLED": "s3"}).out
    assert "disabled" in out.splitlines()[2]


def test_list_and_validate_do_not_import_boto3():
    """Cheap commands never import the S3 SDK, nor the AWS Common Runtime."""
    code = (
        "import sys; from publisher_core.cli import run; "
        "assert run(['list']) == 0; "
        "assert run(['validate', 's3://bucket/key,opt=compress=true']) == 0; "
        "assert run(['validate', 'local://k']) == 0; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 'awscrt')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_validate_typo_exits_2_with_did_you_mean(cli, tmp_path):
    """A typo'd parameter fails with exit 2 and one line naming the fix."""
    (tmp_path / "spec.yaml").write_text("Type: s3\nBucket: b\nKye: k\n")
    result = cli("validate", "spec.yaml")
    assert result.code == 2
    assert result.out == ""
    assert result.err.count("\n") == 1
    assert result.err.startswith("error: invalid spec")
    assert "unknown parameter 'Kye' @ $.Params.Kye (did you mean 'Key'?)" in result.err
    assert "missing required parameter 'Key'" in result.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["validate", "nope.yaml"], "nope.yaml: no such file"),
        (["validate", "ftp://x/y"], "unknown publisher type 'ftp'"),
        (["validate", "local://{jobid}"], "unknown placeholder {jobid} (did you mean {jobID}?)"),
        (["validate", "local://a,opt=compress=yes"], "expected true or false, got 'yes'"),
        (["validate", "local://r/{jobID}", "--job-id", "../x"], "is not allowed in a key"),
        (["validate", "local://r", "--now", "yesterday"], "not an ISO 8601 date-time"),
        (["publish", "local://r", "missing-dir"], "missing-dir: no such file or directory"),
        (["frobnicate"], "No such command 'frobnicate'"),
        (["publish", "local://r"], "Missing argument 'PATH'"),
        (["publish", "local://r", ".", "--output", "xml"], "'xml' is not one of 'yaml', 'json'"),
    ],
)
def test_bad_usage_exits_2_with_one_line(cli, args, message):
    """Bad usage and invalid specs exit 2 with a single 'error:' line."""
    result = cli(*args)
    assert result.code == 2, result
    assert result.err.startswith("error: ")
    assert result.err.count("\n") == 1, result.err
    assert message in result.err


def test_spec_from_stdin(cli):
    """'-' reads the spec from stdin."""
    result = cli("validate", "-", stdin="{Type: local, Params: {Key: out}}")
    assert result.code == 0
    assert result.out == "ok: valid local spec\n"


def test_publish_describe_get_round_trip_in_both_modes(cli, source, tmp_path):
    """publish prints a YAML record; describe --json then get rebuild the tree."""
    for spec, name in (
        ("local://runs/{jobID}", "dir"),
        ("local://runs/{jobID},opt=compress=true", "arch"),
    ):
        published = cli("publish", spec, str(source), "--job-id", name)
        assert published.code == 0, published.err
        record = yaml.safe_load(published.out)
        assert record["Type"] == "local"
        (tmp_path / f"{name}.yaml").write_text(published.out)
        described = cli("describe", f"{name}.yaml", "--json")
        assert described.code == 0, described.err
        (tmp_path / f"{name}.json").write_text(described.out)
        got = cli("get", f"{name}.json", "-o", f"out-{name}")
        assert got.code == 0, got.err
        assert "verified" in got.out
        assert (tmp_path / f"out-{name}" / "sub" / "x.txt").read_text() == "x"
        assert (tmp_path / f"out-{name}" / "y.txt").read_text() == "y"


def test_publish_json_output_and_get_from_stdin(cli, source, tmp_path):
    """--output json prints JSON; get reads a result from stdin."""
    published = cli("publish", "local://j", str(source), "--output", "json")
    record = json.loads(published.out)
    assert record["Params"]["Key"] == "j/"
    got = cli("get", "-", "-o", "restored", stdin=published.out)
    assert got.code == 0, got.err
    assert (tmp_path / "restored" / "y.txt").read_text() == "y"


def test_get_defaults_to_the_result_name(cli, source, tmp_path):
    """Without -o, get rebuilds into ./NAME of the result."""
    published = cli("publish", "local://a/b/run-1,opt=compress=true", str(source))
    assert cli("get", "-", stdin=published.out).code == 0
    assert (tmp_path / "run-1" / "y.txt").is_file()


def test_dry_run_prints_keys_and_writes_nothing(cli, source, tmp_path):
    """--dry-run lists the keys on stdout and creates nothing."""
    result = cli("publish", "local://p/{jobID}", str(source), "--job-id", "j", "--dry-run")
    assert result.code == 0, result.err
    assert result.out.splitlines() == ["p/j/sub/x.txt", "p/j/y.txt", "p/j.manifest.json"]
    assert not (tmp_path / "store").exists()


def test_time_placeholders_use_now(cli, source):
    """--now pins {date} and {time} to one UTC instant."""
    result = cli(
        "publish",
        "local://results/{jobID}/{date}/{time}",
        str(source),
        "--job-id",
        "abc123",
        "--now",
        "2023-09-26T14:05:30Z",
        "--dry-run",
    )
    assert result.out.splitlines()[-1] == "results/abc123/20230926/140530.manifest.json"


def test_get_of_a_tampered_result_exits_1_and_writes_nothing(cli, source, tmp_path):
    """Tampering is a failed download: exit 1, nothing in the output directory."""
    published = cli("publish", "local://t", str(source))
    record = yaml.safe_load(published.out)
    Path(record["Params"]["Path"], "y.txt").write_text("Y")
    result = cli("get", "-", "-o", "out", stdin=published.out)
    assert result.code == 1
    assert "SHA-256" in result.err
    assert not (tmp_path / "out").exists()


def test_get_into_non_empty_directory_exits_2(cli, source, tmp_path):
    """A non-empty output directory is bad usage."""
    published = cli("publish", "local://t", str(source))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep").write_text("k")
    result = cli("get", "-", "-o", "out", stdin=published.out)
    assert result.code == 2
    assert "exists and is not empty" in result.err


def test_publish_failure_exits_1(cli, source):
    """A publish that fails (result already there, Overwrite false) exits 1."""
    assert cli("publish", "local://same", str(source)).code == 0
    result = cli("publish", "local://same,opt=overwrite=false", str(source))
    assert result.code == 1
    assert "already exists" in result.err


def test_debug_shows_a_traceback(cli):
    """--debug adds the traceback; without it there is none."""
    plain = cli("validate", "ftp://x")
    assert "Traceback" not in plain.err
    debug = cli("--debug", "validate", "ftp://x")
    assert "Traceback" in debug.err
    assert debug.code == 2


def test_help_texts_teach_by_example(cli):
    """Every command's --help has examples."""
    for command in ("list", "validate", "publish", "describe", "get"):
        result = cli(command, "--help")
        assert result.code == 0
        assert "Examples:" in result.out
        assert "publisher " + command in result.out


def test_version(cli):
    """--version prints the core's version."""
    assert "0.1.0" in cli("--version").out


def test_run_in_process_returns_exit_codes(tmp_path, monkeypatch):
    """run() returns the exit code instead of exiting."""
    monkeypatch.chdir(tmp_path)
    assert run(["validate", "local://k"]) == 0
    assert run(["validate", "local://{x}"]) == 2
    assert os.listdir(tmp_path) == []


def test_describe_accepts_its_own_output(cli, source, tmp_path):
    """describe of a describe --json document prints it again instead of failing."""
    published = cli("publish", "local://d", str(source))
    described = cli("describe", "-", "--json", stdin=published.out)
    again = cli("describe", "-", "--json", stdin=described.out)
    assert again.code == 0, again.err
    assert json.loads(again.out) == json.loads(described.out)


def test_validate_checks_only_the_ids_given(cli):
    """--job-id alone does not demand --execution-id (docs/specs.md, Keys)."""
    assert cli("validate", "local://{jobID}/{executionID}", "--job-id", "j1").code == 0
    bad = cli("validate", "local://{jobID}/{executionID}", "--execution-id", "..")
    assert bad.code == 2
    assert "is not allowed in a key" in bad.err


def test_warnings_are_printed_with_a_warning_prefix(cli_in_process, monkeypatch):
    """A warning a publisher logs reaches stderr as one ``warning: ...`` line."""
    from publisher_core import _api

    validate = _api.validate

    def warning_validate(*args, **kwargs):
        logging.getLogger("publisher_local").warning("publish failed; could not remove:\n%s", "x")
        logging.getLogger("publisher_core.x").error("second")
        return validate(*args, **kwargs)

    monkeypatch.setattr(_api, "validate", warning_validate)
    ran = cli_in_process("validate", "local://k")
    assert ran.code == 0, ran.err
    assert ran.out == "ok: valid local spec\n"
    assert ran.err == "warning: publish failed; could not remove: x\nwarning: second\n"
    again = cli_in_process("validate", "local://k")  # the handler does not pile up
    assert again.err.count("warning: second") == 1


def test_plugin_output_in_process_goes_to_stderr(cli_in_process, monkeypatch):
    """In process too, what a hook prints goes to stderr and stdout holds the CLI's output."""
    from publisher_core import _api

    validate = _api.validate

    def printing_validate(*args, **kwargs):
        print("a plugin's chatter")
        return validate(*args, **kwargs)

    monkeypatch.setattr(_api, "validate", printing_validate)
    before = sys.stdout
    ran = cli_in_process("validate", "local://k")
    assert (ran.code, ran.out, ran.err) == (0, "ok: valid local spec\n", "a plugin's chatter\n")
    assert sys.stdout is before


def test_an_interrupt_while_the_result_is_printed_is_held_and_reported(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A signal after the publish finished does not lose its record: held, then a warning."""
    import signal

    from publisher_core import cli as publisher_cli

    with publisher_cli._holding():
        publisher_cli._interrupt(signal.SIGINT, None)  # as the handler would be called
        publisher_cli._interrupt(signal.SIGTERM, None)
        print("Type: local")
    captured = capsys.readouterr()
    assert captured.out == "Type: local\n"
    assert captured.err.splitlines() == [
        "warning: SIGINT arrived after the result was published; it is kept",
        "warning: SIGTERM arrived after the result was published; it is kept",
    ]
    with pytest.raises(publisher_cli.Terminated):
        publisher_cli._interrupt(signal.SIGTERM, None)
    with pytest.raises(KeyboardInterrupt):
        publisher_cli._interrupt(signal.SIGINT, None)


def test_the_collector_runs_less_often_during_a_command_and_as_before_after(monkeypatch):
    """The CLI raises the young generation's threshold for its run and restores it."""
    import gc

    from publisher_core import cli

    seen: list[tuple[int, ...]] = []

    def command(argv: list[str] | None) -> int:
        seen.append(gc.get_threshold())
        return 0

    monkeypatch.setattr(cli, "_run", command)
    before = gc.get_threshold()
    assert run(["list"]) == 0
    assert seen == [(cli.GC_THRESHOLD, *before[1:])]
    assert gc.get_threshold() == before
