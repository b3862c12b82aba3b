"""The bad-input corpus: each case is one wrong input, the exact exit code and a one-line
error that names the problem. Every case here exits 2 (bad usage, spec, result or
setting), prints nothing on stdout and exactly one line on stderr, starting ``error: ``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from publisher_core._api import default_registry
from publisher_core.cli import run

LONG = "k" * 1100  # a key over the 1024-byte limit

CASES: list[tuple[str, dict[str, str], list[str], dict[str, str], str]] = [
    (
        "yaml-malformed",
        {"s.yaml": "type: [local\n"},
        ["validate", "s.yaml"],
        {},
        "YAML syntax error at line 2, column 1",
    ),
    (
        "yaml-tab-indent",
        {"s.yaml": "type: local\nparams:\n\tkey: x\n"},
        ["validate", "s.yaml"],
        {},
        "YAML syntax error at line 3",
    ),
    (
        "json-malformed",
        {"s.json": '{"Type": "local",'},
        ["validate", "s.json"],
        {},
        "syntax error at line 2",
    ),
    (
        "json-duplicate-key",
        {"s.json": '{"Type": "local", "Type": "s3"}'},
        ["validate", "s.json"],
        {},
        "duplicate key 'Type'",
    ),
    (
        "yaml-duplicate-key",
        {"s.yaml": "type: local\ntype: s3\n"},
        ["validate", "s.yaml"],
        {},
        "duplicate key 'type'",
    ),
    (
        "spec-is-list",
        {"s.yaml": "- local\n"},
        ["validate", "s.yaml"],
        {},
        "expected a mapping with a Type .*got list",
    ),
    (
        "spec-is-scalar",
        {"s.yaml": "local\n"},
        ["validate", "s.yaml"],
        {},
        "expected a mapping with a Type .*got str",
    ),
    ("spec-empty", {"s.yaml": ""}, ["validate", "s.yaml"], {}, "got an empty document"),
    (
        "spec-missing-type",
        {"s.yaml": "params: {key: x}\n"},
        ["validate", "s.yaml"],
        {},
        "missing required field 'Type'",
    ),
    (
        "spec-type-not-string",
        {"s.yaml": "type: 3\n"},
        ["validate", "s.yaml"],
        {},
        "unknown publisher type '3'",
    ),
    (
        "spec-params-list",
        {"s.yaml": "type: local\nparams: [1]\n"},
        ["validate", "s.yaml"],
        {},
        "Params must be a mapping",
    ),
    (
        "spec-unknown-top-field",
        {"s.yaml": "type: local\nparamz: {}\n"},
        ["validate", "s.yaml"],
        {},
        "unknown parameter 'paramz'",
    ),
    (
        "unknown-type",
        {"s.yaml": "type: ftp\n"},
        ["validate", "s.yaml"],
        {},
        "unknown publisher type 'ftp'; installed: local, s3",
    ),
    (
        "unknown-type-typo",
        {"s.yaml": "type: s4\nparams: {bucket: b}\n"},
        ["validate", "s.yaml"],
        {},
        "unknown publisher type 's4'",
    ),
    (
        "disabled-type",
        {"s.yaml": "type: local\nparams: {key: x}\n"},
        ["validate", "s.yaml"],
        {"PUBLISHER_DISABLED": "local"},
        "'local' cannot be used: disabled by PUBLISHER_DISABLED",
    ),
    (
        "unknown-param",
        {"s.yaml": "type: local\nparams: {kee: x}\n"},
        ["validate", "s.yaml"],
        {},
        "unknown parameter 'kee' @ \\$\\.Params\\.kee \\(did you mean 'Key'\\?\\)",
    ),
    (
        "s3-missing-bucket",
        {"s.yaml": "type: s3\nparams: {key: x}\n"},
        ["validate", "s.yaml"],
        {},
        "missing required parameter 'Bucket' @ \\$\\.Params",
    ),
    (
        "bool-as-string",
        {"s.yaml": "type: local\nparams: {key: x, compress: yes}\n"},
        ["validate", "s.yaml"],
        {},
        "expected true or false, got 'yes' @ \\$\\.Params\\.Compress",
    ),
    (
        "bool-as-int",
        {"s.json": '{"Type": "local", "Params": {"Key": "x", "Compress": 1}}'},
        ["validate", "s.json"],
        {},
        "expected true or false, got 1 @ \\$\\.Params\\.Compress",
    ),
    (
        "key-as-list",
        {"s.yaml": "type: local\nparams: {key: [a]}\n"},
        ["validate", "s.yaml"],
        {},
        "expected a string, got list \\['a'\\] @ \\$\\.Params\\.Key",
    ),
    (
        "bucket-uppercase",
        {"s.yaml": "type: s3\nparams: {bucket: MyBucket, key: x}\n"},
        ["validate", "s.yaml"],
        {},
        "bucket name 'MyBucket' is invalid",
    ),
    (
        "bucket-too-short",
        {"s.yaml": "type: s3\nparams: {bucket: ab, key: x}\n"},
        ["validate", "s.yaml"],
        {},
        "bucket name 'ab' is invalid",
    ),
    (
        "bucket-underscore",
        {"s.yaml": "type: s3\nparams: {bucket: my_bucket, key: x}\n"},
        ["validate", "s.yaml"],
        {},
        "bucket name 'my_bucket' is invalid",
    ),
    (
        "bucket-ip",
        {"s.yaml": "type: s3\nparams: {bucket: 192.168.1.1, key: x}\n"},
        ["validate", "s.yaml"],
        {},
        "must not look like an IP address",
    ),
    (
        "bucket-adjacent-dots",
        {"s.yaml": "type: s3\nparams: {bucket: a..b, key: x}\n"},
        ["validate", "s.yaml"],
        {},
        "has adjacent '\\.'/'-' characters",
    ),
    (
        "bucket-reserved-prefix",
        {"s.yaml": "type: s3\nparams: {bucket: xn--abc, key: x}\n"},
        ["validate", "s.yaml"],
        {},
        "uses a prefix or suffix S3 reserves",
    ),
    (
        "key-too-long",
        {"s.yaml": "type: s3\nparams: {bucket: bkt, key: " + LONG + "}\n"},
        ["validate", "s.yaml"],
        {},
        "key is 1101 UTF-8 bytes; the limit is 1024",
    ),
    (
        "key-dot-segment",
        {"s.yaml": "type: s3\nparams: {bucket: bkt, key: a/./b}\n"},
        ["validate", "s.yaml"],
        {},
        "has '\\.' path segments",
    ),
    (
        "key-dotdot-segment",
        {"s.yaml": "type: s3\nparams: {bucket: bkt, key: a/../b}\n"},
        ["validate", "s.yaml"],
        {},
        "has '\\.\\.' path segments",
    ),
    (
        "key-empty-segment",
        {"s.yaml": "type: s3\nparams: {bucket: bkt, key: a//b}\n"},
        ["validate", "s.yaml"],
        {},
        "has '' path segments",
    ),
    (
        "key-unknown-placeholder",
        {"s.yaml": "type: s3\nparams: {bucket: bkt, key: 'r/{jobid}'}\n"},
        ["validate", "s.yaml"],
        {},
        "unknown placeholder \\{jobid\\} \\(did you mean \\{jobID\\}\\?\\)",
    ),
    (
        "key-unbalanced-open",
        {"s.yaml": "type: s3\nparams: {bucket: bkt, key: 'r/{jobID'}\n"},
        ["validate", "s.yaml"],
        {},
        "unbalanced '\\{' at position 2",
    ),
    (
        "key-unbalanced-close",
        {"s.yaml": "type: s3\nparams: {bucket: bkt, key: 'r/jobID}'}\n"},
        ["validate", "s.yaml"],
        {},
        "unbalanced '\\}' at position 7",
    ),
    (
        "placeholder-value-slash",
        {"s.yaml": "type: s3\nparams: {bucket: bkt, key: 'r/{jobID}'}\n"},
        ["validate", "s.yaml", "--job-id", "a/b"],
        {},
        "value 'a/b' for \\{jobID\\} is not allowed",
    ),
    (
        "placeholder-value-dotdot",
        {"s.yaml": "type: s3\nparams: {bucket: bkt, key: 'r/{jobID}'}\n"},
        ["validate", "s.yaml", "--job-id", ".."],
        {},
        "value '\\.\\.' for \\{jobID\\} is not allowed",
    ),
    (
        "key-control-char",
        {"s.json": '{"Type": "s3", "Params": {"Bucket": "bkt", "Key": "a\\u0007b"}}'},
        ["validate", "s.json"],
        {},
        "must not contain control characters",
    ),
    (
        "endpoint-no-scheme",
        {"s.yaml": "type: s3\nparams: {bucket: bkt, key: x, endpoint: 'minio.local:9000'}\n"},
        ["validate", "s.yaml"],
        {},
        "Endpoint 'minio\\.local:9000' needs a scheme: use 'https://minio\\.local:9000'",
    ),
    (
        "endpoint-credentials",
        {
            "s.yaml": "type: s3\nparams: {bucket: bkt, key: x, endpoint: 'https://user:pw@minio.local'}\n"
        },
        ["validate", "s.yaml"],
        {},
        "Endpoint must not contain credentials",
    ),
    (
        "endpoint-ftp",
        {"s.yaml": "type: s3\nparams: {bucket: bkt, key: x, endpoint: 'ftp://minio.local'}\n"},
        ["validate", "s.yaml"],
        {},
        "Endpoint scheme 'ftp' is not supported",
    ),
    (
        "endpoint-bad-port",
        {
            "s.yaml": "type: s3\nparams: {bucket: bkt, key: x, endpoint: 'https://minio.local:99999'}\n"
        },
        ["validate", "s.yaml"],
        {},
        "Endpoint is not a valid URL \\(Port out of range",
    ),
    (
        "s3-bad-encoding",
        {"s.yaml": "type: s3\nparams: {bucket: bkt, key: x, encoding: zstd}\n"},
        ["validate", "s.yaml"],
        {},
        "Encoding must be 'gzip' or 'plain', got 'zstd'",
    ),
    (
        "imperative-unknown-type",
        {},
        ["validate", "ftp://bkt/x"],
        {},
        "unknown publisher type 'ftp'",
    ),
    (
        "imperative-bad-opt",
        {},
        ["validate", "s3://bkt/x,opt=colour=red"],
        {},
        "unknown parameter 'colour'",
    ),
    (
        "imperative-bad-encoding",
        {},
        ["validate", "s3://bkt/x,opt=encoding=zip"],
        {},
        "encoding must be 'gzip' or 'plain', got 'zip'",
    ),
    ("spec-file-missing", {}, ["validate", "nope.yaml"], {}, "nope\\.yaml: no such file"),
    (
        "setting-unknown",
        {"s.yaml": "type: local\nparams: {key: x}\n"},
        ["validate", "s.yaml"],
        {"PUBLISHER_LOCAL_ROTO": "/x"},
        "unknown setting PUBLISHER_LOCAL_ROTO \\(did you mean 'PUBLISHER_LOCAL_ROOT'\\?\\)",
    ),
    (
        "setting-not-int",
        {"s.yaml": "type: s3\nparams: {bucket: bkt, key: x}\n"},
        ["validate", "s.yaml"],
        {"PUBLISHER_S3_CONCURRENCY": "many"},
        "expected an integer, got 'many' @ PUBLISHER_S3_CONCURRENCY",
    ),
    (
        "setting-out-of-range",
        {"s.yaml": "type: s3\nparams: {bucket: bkt, key: x}\n"},
        ["validate", "s.yaml"],
        {"PUBLISHER_S3_PART_SIZE": "1024"},
        "'part_size' must be >= 5242880",
    ),
    (
        "result-malformed",
        {"r.yaml": "type: [\n"},
        ["describe", "r.yaml"],
        {},
        "invalid result: YAML syntax error",
    ),
    (
        "result-unknown-type",
        {"r.yaml": "type: ftp\nparams: {path: /x}\n"},
        ["describe", "r.yaml"],
        {},
        "unknown publisher type 'ftp'",
    ),
    (
        "result-missing-field",
        {"r.yaml": "type: local\nparams: {}\n"},
        ["describe", "r.yaml"],
        {},
        "invalid result \\(3 problems\\): missing required parameter 'Path'",
    ),
    (
        "result-bad-checksum-type",
        {"r.json": '{"Type": "local", "Params": {"Path": "/x", "Key": "x", "Size": "big"}}'},
        ["describe", "r.json"],
        {},
        "expected an integer, got 'big' @ \\$\\.Params\\.Size",
    ),
    (
        "publish-source-missing",
        {"s.yaml": "type: local\nparams: {key: x}\n"},
        ["publish", "s.yaml", "no-such-dir"],
        {},
        "no-such-dir: no such file or directory",
    ),
    ("cli-unknown-command", {}, ["frobnicate"], {}, "No such command 'frobnicate'"),
    ("cli-unknown-option", {}, ["validate", "--frob", "x"], {}, "No such option '--frob'"),
    ("cli-missing-argument", {}, ["publish"], {}, "Missing argument 'SPEC'"),
    (
        "cli-bad-output-format",
        {"s.yaml": "type: local\nparams: {key: x}\n"},
        ["publish", "s.yaml", ".", "--output", "xml"],
        {},
        "'xml' is not one of 'yaml', 'json'",
    ),
    (
        "spec-params-null",
        {"s.yaml": "type: local\nparams: null\n"},
        ["validate", "s.yaml"],
        {},
        "missing required parameter 'Key' @ \\$\\.Params",
    ),
    (
        "s3-region-invalid",
        {"s.yaml": "type: s3\nparams: {bucket: bkt, key: x, region: 'us east 1'}\n"},
        ["validate", "s.yaml"],
        {},
        "Region 'us east 1' is invalid",
    ),
    ("imperative-no-bucket", {}, ["validate", "s3://"], {}, "missing required parameter 'Bucket'"),
    (
        "key-nul",
        {"s.json": '{"Type": "s3", "Params": {"Bucket": "bkt", "Key": "a\\u0000b"}}'},
        ["validate", "s.json"],
        {},
        "must not contain control characters",
    ),
    (
        "key-line-separator",
        {"s.json": '{"Type": "s3", "Params": {"Bucket": "bkt", "Key": "a\\u2028b"}}'},
        ["validate", "s.json"],
        {},
        "must not contain control characters",
    ),
    (
        "json-trailing-garbage",
        {"s.json": '{"Type": "local"} x'},
        ["validate", "s.json"],
        {},
        "syntax error at line 1, column 19",
    ),
]


def test_the_corpus_is_big_enough() -> None:
    assert len(CASES) >= 60
    assert len({case[0] for case in CASES}) == len(CASES)


@pytest.mark.parametrize(
    ("files", "argv", "env", "pattern"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_gets_exit_2_and_one_line_naming_it(
    files: dict[str, str],
    argv: list[str],
    env: dict[str, str],
    pattern: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PUBLISHER_LOCAL_ROOT", str(tmp_path / "root"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    default_registry.cache_clear()  # the registry reads PUBLISHER_DISABLED when built
    try:
        code = run(argv)
    finally:
        default_registry.cache_clear()
    out, err = capsys.readouterr()
    assert code == 2, err
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert re.search(pattern, lines[0]), lines[0]
    assert not (tmp_path / "root").exists()  # nothing was stored
