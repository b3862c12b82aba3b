"""The bad-input corpus: each case is one wrong input, the exact exit code and a one-line
error that names the problem. Every case prints nothing on stdout and exactly one line on
stderr, starting ``error: ``, and stores nothing under ``PUBLISHER_LOCAL_ROOT``.

- ``CASES``: bad usage, specs, result records and settings; all exit 2.
- ``TREE_CASES``, ``CHANGING_CASES``, ``UNREADABLE_CASES``: result trees that cannot be
  published, in directory and archive mode; all exit 1 (a publish that failed).
- ``RECORD_CASES``: published records that were truncated or tampered with, or whose
  stored bytes were.
- ``PLUGIN_CASES``: plugins that fail to import, fail validation, claim a Type twice or
  raise inside a hook.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from publisher_core import TreeEntry, dump_document, publish, result_to_document, scan_tree
from tests.conftest import CLIResult
from tests.trees import build

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
        "endpoint-trailing-newline",
        {
            "s.json": '{"Type": "s3", "Bucket": "bkt", "Key": "x", "Endpoint": "http://127.0.0.1:9611\\n"}'
        },
        ["validate", "s.json"],
        {},
        "contains a whitespace or control character \\(U\\+000A\\) @ \\$\\.Params\\.Endpoint$",
    ),
    (
        "endpoint-space-in-host",
        {"s.yaml": "type: s3\nparams: {bucket: bkt, key: x, endpoint: 'https://exa mple.com'}\n"},
        ["validate", "s.yaml"],
        {},
        "Endpoint 'https://exa mple\\.com' contains a whitespace or control character "
        "\\(U\\+0020\\)",
    ),
    (
        "endpoint-percent-host",
        {"s.yaml": "type: s3\nparams: {bucket: bkt, key: x, endpoint: 'http://%41'}\n"},
        ["validate", "s.yaml"],
        {},
        "Endpoint host '%41' must not use percent-encoding",
    ),
    (
        "endpoint-host-300-characters",
        {"s.yaml": f"type: s3\nparams: {{bucket: bkt, key: x, endpoint: 'http://{'a' * 300}'}}\n"},
        ["validate", "s.yaml"],
        {},
        "Endpoint host is longer than 253 characters \\(300\\)",
    ),
    (
        "endpoint-port-0",
        {"s.yaml": "type: s3\nparams: {bucket: bkt, key: x, endpoint: 'http://127.0.0.1:0'}\n"},
        ["validate", "s.yaml"],
        {},
        "Endpoint is not a valid URL \\(Port out of range 1-65535: 0\\)",
    ),
    (
        "endpoint-idna-invalid",
        {},
        ["validate", "s3://bkt/x,opt=endpoint=http://xn--a.com"],
        {},
        "Endpoint host 'xn--a\\.com' has 'xn--a', which is not a valid IDNA \\(punycode\\) label",
    ),
    (
        "endpoint-non-ascii-host",
        {"s.yaml": "type: s3\nparams: {bucket: bkt, key: x, endpoint: 'https://münchen.de'}\n"},
        ["validate", "s.yaml"],
        {},
        "Endpoint host 'münchen\\.de' is not ASCII: .*punycode \\(xn--\\) form "
        "\\('xn--mnchen-3ya\\.de'\\)",
    ),
    (
        "endpoint-environment-credentials",
        {},
        ["validate", "s3://bkt/x"],
        {"AWS_ENDPOINT_URL_S3": "http://USER:PASSWORD@127.0.0.1:9000"},
        "^(?!.*(USER|PASSWORD))error: invalid spec: Endpoint must not contain credentials;"
        " .* @ environment variable AWS_ENDPOINT_URL_S3$",
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
    (
        "yaml-alias-bomb-in-key",
        {
            "s.yaml": "a: &a [x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n"
                for p, n in zip("abcdefghi", "bcdefghij", strict=True)
            )
            + "Type: local\nParams: {Key: *j}\n"
        },
        ["validate", "s.yaml"],
        {},
        "^error: invalid spec: YAML aliases expand this document to more than 10000 values; "
        "write the values out$",
    ),
    (
        "yaml-alias-bomb-in-params",
        {
            "s.yaml": "Type: local\nParams:\n  Key: k\n  Extra:\n"
            + "    a: &a [x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"    {n}: &{n} [{', '.join(['*' + p] * 9)}]\n"
                for p, n in zip("abcdefghi", "bcdefghij", strict=True)
            )
        },
        ["validate", "s.yaml"],
        {},
        "^error: invalid spec: YAML aliases expand this document to more than 10000 values",
    ),
    (
        "yaml-alias-bomb-flat",
        {
            "s.yaml": "Type: local\na: &a [x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n"
                for p, n in zip("abcdefghi", "bcdefghij", strict=True)
            )
            + "Key: *j\n"
        },
        ["validate", "s.yaml"],
        {},
        "^error: invalid spec: YAML aliases expand this document to more than 10000 values",
    ),
    (
        "key-megabyte",
        {"s.json": '{"Type": "local", "Params": {"Key": "\\u0007' + "k" * 1_000_000 + '"}}'},
        ["validate", "s.json"],
        {},
        "^(?=.{0,600}$)error: invalid spec \\(2 problems\\): key '\\\\x07kkk.*must not contain "
        "control characters",
    ),
    (
        "key-lone-surrogate",
        {"s.json": '{"Type": "local", "Params": {"Key": "\\ud800"}}'},
        ["validate", "s.json"],
        {},
        "text '\\\\ud800' is not valid Unicode \\(its lone surrogate '\\\\ud800' at position 0 "
        "cannot be encoded as UTF-8\\) @ \\$\\.Params\\.Key$",
    ),
    (
        "yaml-syntax-error-said-once",
        {"s.yaml": "type: [local\n"},
        ["validate", "s.yaml"],
        {},
        "^error: invalid spec: YAML syntax error at line 2, column 1: did not find expected "
        "',' or '\\]'$",
    ),
    (
        "json-value-labelled-json",
        {"s.json": '{"Type": "local", "Key": ' + "1" * 5000 + "}"},
        ["validate", "s.json"],
        {},
        "^error: invalid spec: JSON value cannot be read: Exceeds the limit \\(4300 digits\\)",
    ),
    (
        "s3-sse-typo",
        {},
        ["validate", "s3://bkt/x,opt=serversideencryption=aws-kms"],
        {},
        re.escape("is not one of AES256, aws:kms, aws:kms:dsse (did you mean 'aws:kms'?)"),
    ),
    (
        "s3-kms-key-without-kms",
        {},
        ["validate", "s3://bkt/x,opt=ssekmskeyid=alias/k"],
        {},
        re.escape("SSEKMSKeyId needs ServerSideEncryption 'aws:kms' or 'aws:kms:dsse', got none"),
    ),
    (
        "s3-sse-c-refused",
        {},
        ["validate", "s3://bkt/x,opt=ssecustomerkey=c2VjcmV0LWtleQ=="],
        {},
        re.escape("SSE-C (customer-provided keys) is not supported"),
    ),
    (
        "s3-encryption-required",
        {},
        ["validate", "s3://bkt/x"],
        {"PUBLISHER_S3_REQUIRE_ENCRYPTION": "true"},
        re.escape("ServerSideEncryption is required (PUBLISHER_S3_REQUIRE_ENCRYPTION is true)"),
    ),
    (
        "s3-encryption-setting-typo",
        {},
        ["validate", "s3://bkt/x"],
        {"PUBLISHER_S3_SERVER_SIDE_ENCRYPTION": "aes"},
        "PUBLISHER_S3_SERVER_SIDE_ENCRYPTION 'aes' is not one of",
    ),
    (
        "s3-storage-class-typo",
        {},
        ["validate", "s3://bkt/x,opt=storageclass=STANDARD-IA"],
        {},
        re.escape("(did you mean 'STANDARD_IA'?) @ $.Params.StorageClass"),
    ),
    (
        "s3-storage-class-glacier",
        {},
        ["validate", "s3://bkt/x,opt=storageclass=GLACIER"],
        {},
        "objects cannot be read until restored",
    ),
    (
        "s3-too-many-tags",
        {},
        ["validate", "s3://bkt/x,opt=tags=" + "&".join(f"k{i}=v" for i in range(11))],
        {},
        "Tags has 11 tags; S3 allows at most 10",
    ),
    ("s3-tag-no-equals", {}, ["validate", "s3://bkt/x,opt=tags=team"], {}, "tag 'team' has no '='"),
    (
        "s3-tag-bad-char",
        {},
        ["validate", "s3://bkt/x,opt=tags=k=a;b"],
        {},
        "tag value 'a;b' has ';'",
    ),
    (
        "s3-tag-long-key",
        {},
        ["validate", "s3://bkt/x,opt=tags=" + "k" * 129 + "=v"],
        {},
        "must be 1-128 characters, has 129",
    ),
    (
        "s3-metadata-bad-name",
        {},
        ["validate", "s3://bkt/x,opt=metadata=a%20b=v"],
        {},
        "metadata name 'a b' is not an HTTP header token",
    ),
    (
        "s3-metadata-too-big",
        {},
        ["validate", "s3://bkt/x,opt=metadata=k=" + "v" * 2100],
        {},
        re.escape("Metadata is 2101 bytes"),
    ),
    (
        "s3-acl-typo",
        {},
        ["validate", "s3://bkt/x,opt=acl=public"],
        {},
        re.escape("(did you mean 'public-read'?) @ $.Params.ACL"),
    ),
    (
        "s3-owner-not-account",
        {},
        ["validate", "s3://bkt/x,opt=expectedbucketowner=me"],
        {},
        "ExpectedBucketOwner 'me' is not an AWS account id",
    ),
    (
        "s3-content-type-directory",
        {},
        ["validate", "s3://bkt/x/,opt=contenttype=text/plain"],
        {},
        re.escape("ContentType applies to archive mode (Compress: true) only"),
    ),
    (
        "s3-bucket-key-without-kms",
        {},
        ["validate", "s3://bkt/x,opt=bucketkeyenabled=true"],
        {},
        re.escape("BucketKeyEnabled: true needs ServerSideEncryption 'aws:kms'"),
    ),
]
# -- Result trees that cannot be published: exit 1 -------------------------------------------

GOOD_TREE: dict[str, Any] = {"ok.txt": b"fine\n", "sub": {"inner.txt": b"inner\n"}}
"""What every tree case starts from; the case then adds or changes one thing."""

CAFE_NFC = unicodedata.normalize("NFC", "café")
CAFE_NFD = unicodedata.normalize("NFD", "café")

BOTH = ("directory", "archive")
SPECS = {"directory": "local://out", "archive": "local://out,opt=compress=true"}


def link_out(result: Path) -> None:
    (result.parent / "secret.txt").write_text("not part of the result\n")
    os.symlink("../secret.txt", result / "out")


def link_loop(result: Path) -> None:
    os.symlink("loop2", result / "loop1")
    os.symlink("loop1", result / "loop2")


def unix_socket(result: Path) -> None:
    """Bind ``s.sock`` by a relative name: a socket's path may not be long."""
    cwd = os.getcwd()
    os.chdir(result)
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind("s.sock")  # the socket file stays after the socket is closed
    finally:
        os.chdir(cwd)


def nfc_nfd_twins(result: Path) -> None:
    (result / CAFE_NFC).write_text("composed")
    (result / CAFE_NFD).write_text("decomposed")


def invalid_utf8_name(result: Path) -> None:
    with open(os.path.join(os.fsencode(result), b"bad\xffname"), "wb") as handle:
        handle.write(b"x")


def key_over_1024_bytes(result: Path) -> None:
    """'out/' + 4 directories of 250 + '/' + a 17-byte name: a 1025-byte key."""
    deep = result.joinpath(*["d" * 250] * 4)
    deep.mkdir(parents=True)
    (deep / ("x" * 17)).write_text("x")


def too_deep(result: Path) -> None:
    """A file 257 levels down: one level over the path rule's depth limit."""
    deep = result.joinpath(*["d"] * 256)
    deep.mkdir(parents=True)
    (deep / "f").write_text("x")


TREE_CASES: list[tuple[str, Callable[[Path], object], tuple[str, ...], str]] = [
    (
        "tree-link-out",
        link_out,
        BOTH,
        "1 entry of result cannot be published: "
        "out: symlink leads out of the result \\(-> \\.\\./secret\\.txt\\)$",
    ),
    (
        "tree-link-dangling",
        lambda r: os.symlink("nowhere", r / "dangling"),
        BOTH,
        "dangling: is a dangling symlink \\(-> nowhere\\)$",
    ),
    (
        "tree-link-loop",
        link_loop,
        BOTH,
        "2 entries of result cannot be published: loop1: is a symlink loop \\(-> loop2\\); "
        "loop2: is a symlink loop \\(-> loop1\\)$",
    ),
    (
        "tree-link-to-ancestor",  # kept as a link inside the tree in archive mode, which is fine
        lambda r: os.symlink("..", r / "sub" / "parent"),
        ("directory",),
        "sub/parent: symlink to a directory containing it \\(a cycle\\)$",
    ),
    (
        "tree-fifo",
        lambda r: os.mkfifo(r / "fifo"),
        BOTH,
        "fifo: is a FIFO, which cannot be published$",
    ),
    (
        "tree-socket",
        unix_socket,
        BOTH,
        "s\\.sock: is a socket, which cannot be published$",
    ),
    (
        "tree-nfc-nfd-twins",
        nfc_nfd_twins,
        BOTH,
        f"{CAFE_NFD} \\(NFD\\) and {CAFE_NFC} \\(NFC\\): names differ only in Unicode "
        "normalisation \\(NFC/NFD\\) and would collide on macOS/Windows-style filesystems$",
    ),
    (
        "tree-newline-in-file-name",
        lambda r: (r / "bad\nname.txt").write_text("x"),
        BOTH,
        "'bad\\\\nname\\.txt': name contains a control character",
    ),
    (
        "tree-newline-in-directory-name",  # empty, so no file key would have caught it
        lambda r: (r / "bad\ndir").mkdir(),
        BOTH,
        "'bad\\\\ndir': name contains a control character",
    ),
    (
        "tree-invalid-utf8-name",
        invalid_utf8_name,
        BOTH,
        "b'bad\\\\xffname': name is not valid UTF-8$",
    ),
    (
        "tree-key-over-1024-bytes",  # an archive's members have no such limit
        key_over_1024_bytes,
        ("directory",),
        "1 files cannot be stored under 'out/': (d{250}/){4}x{17}: "
        "key is 1025 UTF-8 bytes; the limit is 1024$",
    ),
    (
        "tree-backslash-in-file-name",  # get could never fetch it
        lambda r: (r / "sub" / "x\\y").write_text("1\n"),
        BOTH,
        "1 entry of result cannot be published: 'sub/x\\\\\\\\y': name contains a backslash, "
        "a path separator on Windows, which a key or a restored file name cannot hold safely$",
    ),
    (
        "tree-too-deep",
        too_deep,
        BOTH,
        "1 entry of result cannot be published: 'd/d/d.*: path is 257 levels deep; "
        "the limit is 256$",
    ),
]


def per_mode(
    cases: list[tuple[str, Callable[[Path], object], tuple[str, ...], str]],
) -> list[Any]:
    """One parameter set per case and mode, with ids like ``tree-fifo-archive``."""
    return [
        pytest.param(make, SPECS[mode], pattern, id=f"{name}-{mode}")
        for name, make, modes, pattern in cases
        for mode in modes
    ]


# Changes made between the scan of the tree and the reading of its files: exit 1.


def swap_for_link_out(result: Path) -> None:
    (result / "sub" / "inner.txt").unlink()
    os.symlink("../../secret.txt", result / "sub" / "inner.txt")
    (result.parent / "secret.txt").write_text("secret")


def replace_by_another_file(result: Path) -> None:
    (result / "sub" / "new").write_bytes(b"other\n")
    os.replace(result / "sub" / "new", result / "sub" / "inner.txt")


CHANGING_CASES: list[tuple[str, Callable[[Path], object], tuple[str, ...], str]] = [
    (
        "tree-file-vanishes",
        lambda r: (r / "sub" / "inner.txt").unlink(),
        BOTH,
        "sub/inner\\.txt: cannot open \\(No such file or directory\\)$",
    ),
    (
        "tree-file-grows",
        lambda r: (r / "sub" / "inner.txt").write_bytes(b"inner and more\n"),
        BOTH,
        "sub/inner\\.txt: changed size while publishing \\(6 bytes when scanned, 15 when "
        "read\\); nothing was published$",
    ),
    (
        "tree-file-shrinks",
        lambda r: os.truncate(r / "sub" / "inner.txt", 2),
        BOTH,
        "sub/inner\\.txt: changed size while publishing \\(6 bytes when scanned, 2 when "
        "read\\); nothing was published$",
    ),
    (
        "tree-file-swapped-for-link-out",
        swap_for_link_out,
        BOTH,
        "sub/inner\\.txt: was replaced by a symlink while publishing; nothing was published$",
    ),
    (
        "tree-file-replaced",
        replace_by_another_file,
        BOTH,
        "sub/inner\\.txt: was replaced while publishing; nothing was published$",
    ),
]


def change_after_scan(monkeypatch: pytest.MonkeyPatch, change: Callable[[Path], object]) -> None:
    """Make the local publisher's scan apply ``change`` to the tree once it has scanned it."""
    import publisher_core._prepare as plugin  # where every publisher scans its tree

    def scan_then_change(source: Path, *, follow_links: bool) -> list[TreeEntry]:
        entries = scan_tree(source, follow_links=follow_links)
        change(source)
        return entries

    monkeypatch.setattr(plugin, "scan_tree", scan_then_change)


# Entries the publishing user cannot read (run as an unprivileged user when tests run as
# root, who reads everything): exit 1.

UNREADABLE_CASES: list[tuple[str, str, str]] = [
    (
        "tree-unreadable-file",
        "sub/inner.txt",
        "sub/inner\\.txt: cannot open \\(Permission denied\\)$",
    ),
    (
        "tree-unreadable-directory",
        "sub",
        "1 entry of result cannot be published: sub/: cannot list directory "
        "\\(Permission denied\\)$",
    ),
]


# -- Published records: truncated, tampered with, or their stored bytes changed ----------------

ZERO_SHA256 = "A" * 43 + "="


def record(doc: dict[str, Any], **changes: Any) -> str:
    """The record ``doc`` as YAML, with ``changes`` made to its Params."""
    return dump_document({**doc, "Params": {**doc["Params"], **changes}}, "yaml")


def cut_json(doc: dict[str, Any], stored: Path) -> str:
    text = json.dumps(doc)
    return text[: text.index('"Size"') + 3]


def cut_yaml_mid_line(doc: dict[str, Any], stored: Path) -> str:
    text = record(doc)
    return text[: text.index("Size") + 2]


def cut_yaml_at_a_line(doc: dict[str, Any], stored: Path) -> str:
    text = record(doc)
    return text[: text.index("Size")]


def truncate_stored(doc: dict[str, Any], stored: Path) -> str:
    stored.write_bytes(stored.read_bytes()[:-10])
    return record(doc)


def flip_a_stored_bit(doc: dict[str, Any], stored: Path) -> str:
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 1
    stored.write_bytes(bytes(data))
    return record(doc)


def edit_a_stored_file(doc: dict[str, Any], stored: Path) -> str:
    (stored / "ok.txt").write_text("FINE\n")  # the same size, other bytes
    return record(doc)


def delete_the_manifest(doc: dict[str, Any], stored: Path) -> str:
    Path(doc["Params"]["Manifest"]).unlink()
    return record(doc)


def description_of(item: dict[str, Any]) -> str:
    """A description (what describe --json prints) with the one item ``item``."""
    return json.dumps({"Type": "local", "Name": "r", "Items": [item]})


def path_2000_levels_deep(doc: dict[str, Any], stored: Path) -> str:
    return description_of({"Path": "/".join(["a"] * 2000), "URL": (stored / "ok.txt").as_uri()})


def size_beyond_any_disk(doc: dict[str, Any], stored: Path) -> str:
    return description_of({"Path": "ok.txt", "URL": (stored / "ok.txt").as_uri(), "Size": 2**62})


RECORD_CASES: list[tuple[str, bool, Callable[[dict[str, Any], Path], str], str, int, str]] = [
    (
        "result-truncated-json",
        True,
        cut_json,
        "describe",
        2,
        "invalid result: YAML syntax error at line 1, column \\d+: ",
    ),
    (
        "result-truncated-yaml-mid-line",
        True,
        cut_yaml_mid_line,
        "describe",
        2,
        "invalid result: YAML syntax error at line 6, column 1: could not find expected ':'$",
    ),
    (
        "result-truncated-yaml-at-a-line",
        True,
        cut_yaml_at_a_line,
        "describe",
        2,
        "invalid result: missing required parameter 'Size' @ \\$\\.Params$",
    ),
    (
        "result-tampered-checksum",
        True,
        lambda doc, stored: record(doc, ChecksumSHA256=ZERO_SHA256),
        "get",
        1,
        f"r\\.tar\\.gz: SHA-256 is \\S+, the result recorded {ZERO_SHA256}; "
        "the stored bytes were changed or corrupted$",
    ),
    (
        "result-malformed-checksum",
        True,
        lambda doc, stored: record(doc, ChecksumSHA256="nope"),
        "describe",
        2,
        "invalid result: ChecksumSHA256 must be a base64 SHA-256 \\(44 characters ending in "
        "'='\\), got 'nope' @ \\$\\.Params\\.ChecksumSHA256$",
    ),
    (
        "result-malformed-manifest-checksum",
        False,
        lambda doc, stored: record(doc, ManifestChecksumSHA256="abc="),
        "describe",
        2,
        "invalid result: ManifestChecksumSHA256 must be a base64 SHA-256 \\(44 characters "
        "ending in '='\\), got 'abc=' @ \\$\\.Params\\.ManifestChecksumSHA256$",
    ),
    (
        "result-tampered-size",
        True,
        lambda doc, stored: record(doc, Size=doc["Params"]["Size"] + 1),
        "get",
        1,
        "r\\.tar\\.gz: got \\d+ bytes, the result recorded \\d+$",
    ),
    (
        "result-tampered-manifest-checksum",
        False,
        lambda doc, stored: record(doc, ManifestChecksumSHA256=ZERO_SHA256),
        "describe",
        1,
        f"manifest \\S+/published/r\\.manifest\\.json has SHA-256 \\S+, "
        f"the result recorded {ZERO_SHA256}$",
    ),
    (
        "result-manifest-deleted",
        False,
        delete_the_manifest,
        "describe",
        1,
        "manifest \\S+/r\\.manifest\\.json is missing: the result is incomplete or was deleted$",
    ),
    (
        "result-stored-archive-truncated",
        True,
        truncate_stored,
        "get",
        1,
        "r\\.tar\\.gz: got \\d+ bytes, the result recorded \\d+$",
    ),
    (
        "result-stored-archive-corrupted",
        True,
        flip_a_stored_bit,
        "get",
        1,
        "r\\.tar\\.gz: SHA-256 is \\S+, the result recorded \\S+; "
        "the stored bytes were changed or corrupted$",
    ),
    (
        "result-stored-file-changed",
        False,
        edit_a_stored_file,
        "get",
        1,
        "ok\\.txt: SHA-256 is \\S+, the result recorded \\S+; "
        "the stored bytes were changed or corrupted$",
    ),
    (
        "description-path-2000-levels-deep",  # was an unexpected RecursionError
        False,
        path_2000_levels_deep,
        "get",
        1,
        "item path 'a/a/a.*: path is 2000 levels deep; the limit is 256; refusing it$",
    ),
    (
        "description-size-beyond-any-disk",  # refused before a byte is downloaded
        False,
        size_beyond_any_disk,
        "get",
        1,
        "the items record 4194304\\.0 TiB in all \\(up to 'ok\\.txt'\\), over the limit of "
        ".* \\(the free space beside \\S+/out; see publisher get --max-size\\); "
        "refusing the result$",
    ),
]


# -- Plugins: installed distributions that cannot be used, or fail while used ----------------

PLUGIN_CASES: list[tuple[str, str, dict[str, str], list[str], int, str]] = [
    (
        "plugin-fails-on-import",
        "broken",
        {},
        ["validate", "broken://x"],
        2,
        "publisher type 'broken' cannot be used: import failed: ModuleNotFoundError: "
        "No module named 'publisher_core_missing_dependency'$",
    ),
    (
        "plugin-fails-validation",
        "broken",
        {},
        ["validate", "badhooks://x"],
        2,
        "publisher type 'badhooks' cannot be used: invalid plugin: PluginValidationError: "
        ".*bucket_name",
    ),
    (
        "plugin-duplicate-type",
        "duplicate",
        {},
        ["validate", "local://x"],
        2,
        "publisher type 'local' is provided by more than one distribution: "
        "(duplicate-publisher 9\\.9\\.9 and publisher-local \\S+|publisher-local \\S+ and "
        "duplicate-publisher 9\\.9\\.9); uninstall one of them$",
    ),
    (
        "plugin-raises-in-validate-spec",
        "raising",
        {"s.yaml": "type: raising\nparams: {key: x, fail: validate_spec}\n"},
        ["validate", "s.yaml"],
        2,
        "publisher 'raising' failed in validate_spec: RuntimeError: validator crashed "
        "while reading the key$",
    ),
    (
        "plugin-raises-in-publish",
        "raising",
        {},
        ["publish", "raising://x", "."],
        1,
        "publisher 'raising' failed in publish: RuntimeError: the shelf for \\. is full "
        "and a second line$",
    ),
    (
        "plugin-publish-returns-nothing",
        "raising",
        {"s.yaml": "type: raising\nparams: {key: x, fail: nothing}\n"},
        ["publish", "s.yaml", "."],
        2,
        "publisher 'raising' returned NoneType from publish, expected a PublishedResult$",
    ),
    (
        "plugin-raises-in-describe",
        "raising",
        {"r.yaml": "type: raising\nparams: {key: x}\n"},
        ["describe", "r.yaml"],
        1,
        "publisher 'raising' failed in describe_result: KeyError: 'no shelf holds x'$",
    ),
]

ALL_IDS = [
    *(c[0] for c in CASES),
    *(c[0] for c in TREE_CASES),
    *(c[0] for c in CHANGING_CASES),
    *(c[0] for c in UNREADABLE_CASES),
    *(c[0] for c in RECORD_CASES),
    *(c[0] for c in PLUGIN_CASES),
]


def invoke(
    cli_in_process: Callable[..., CLIResult],
    argv: list[str],
    where: Path,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str] | None = None,
) -> CLIResult:
    """Run the CLI in process in ``where``, local root ``where/root``."""
    monkeypatch.chdir(where)
    monkeypatch.setenv("PUBLISHER_LOCAL_ROOT", str(where / "root"))
    return cli_in_process(*argv, env=env)


@pytest.fixture
def refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli_in_process: Callable[..., CLIResult]
) -> Callable[..., None]:
    """Run a command in ``tmp_path`` and check the corpus's promise (see assert_refused)."""

    def check(
        argv: list[str], exit_code: int, pattern: str, env: dict[str, str] | None = None
    ) -> None:
        ran = invoke(cli_in_process, argv, tmp_path, monkeypatch, env)
        assert_refused(ran.code, ran.out, ran.err, exit_code, pattern, tmp_path / "root")

    return check


def stored(root: Path) -> list[Path]:
    """Everything under the local root (a publish that failed may have made it, empty)."""
    return sorted(root.rglob("*")) if root.exists() else []


def assert_refused(code: int, out: str, err: str, exit_code: int, pattern: str, root: Path) -> None:
    """The corpus's promise: the exit code, one ``error:`` line matching, nothing stored."""
    assert code == exit_code, err
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert re.search(pattern, lines[0]), lines[0]
    assert stored(root) == []


def test_the_corpus_is_big_enough() -> None:
    assert len(CASES) >= 60
    assert len(set(ALL_IDS)) == len(ALL_IDS)


@pytest.mark.parametrize(
    ("files", "argv", "env", "pattern"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_gets_exit_2_and_one_line_naming_it(
    files: dict[str, str],
    argv: list[str],
    env: dict[str, str],
    pattern: str,
    tmp_path: Path,
    refuses: Callable[..., None],
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    refuses(argv, 2, pattern, env)
    assert not (tmp_path / "root").exists()  # not even made


@pytest.mark.parametrize(("make", "spec", "pattern"), per_mode(TREE_CASES))
def test_an_unpublishable_tree_gets_exit_1_and_one_line_naming_it(
    make: Callable[[Path], object],
    spec: str,
    pattern: str,
    tmp_path: Path,
    refuses: Callable[..., None],
) -> None:
    make(build(GOOD_TREE, tmp_path / "result"))
    refuses(["publish", spec, "result"], 1, pattern)


@pytest.mark.parametrize(("change", "spec", "pattern"), per_mode(CHANGING_CASES))
def test_a_tree_changing_during_publish_gets_exit_1_and_one_line_naming_it(
    change: Callable[[Path], object],
    spec: str,
    pattern: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    refuses: Callable[..., None],
) -> None:
    build(GOOD_TREE, tmp_path / "result")
    change_after_scan(monkeypatch, change)
    refuses(["publish", spec, "result"], 1, pattern)


def unprivileged_user() -> pwd.struct_passwd:
    """The user a case runs as when the tests run as root: ``nobody``, or a skip."""
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("running as root, and there is no user 'nobody' to run this case as")


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    """``tmp_path``; as root, a directory the unprivileged user owns (pytest's are private)."""
    if os.geteuid() != 0:
        yield tmp_path
        return
    user = unprivileged_user()
    base = Path(tempfile.mkdtemp(prefix="publisher-bad-input-"))
    try:
        os.chown(base, user.pw_uid, user.pw_gid)
        yield base
    finally:
        shutil.rmtree(base)


_AS_USER = """\
import os, sys, tempfile
from pathlib import Path
from publisher_core import publish
from publisher_core.cli import run

with tempfile.TemporaryDirectory() as warm:  # import what a publish needs while still root
    tree = Path(warm, "tree")
    tree.mkdir()
    (tree / "f").write_text("x")
    for compress in (False, True):
        spec = {"Type": "local", "Params": {"Key": f"k{compress}", "Compress": compress}}
        publish(spec, tree, settings={"root": os.path.join(warm, "root")})
os.setgroups([])
os.setgid(int(sys.argv[2]))
os.setuid(int(sys.argv[1]))
sys.exit(run(sys.argv[3:]))
"""
"""The CLI, run as the user whose uid and gid come first in ``argv``.

The interpreter starts as root and drops to that user only once it has imported what a
publish needs: the interpreter itself may live where the user cannot reach (under
``/root``, say), so ``subprocess.run(user=...)`` could not even start it.
"""


def run_unprivileged(argv: list[str], cwd: Path) -> tuple[int, str, str]:
    """Run the CLI as the unprivileged user in ``cwd``, local root ``cwd/root``."""
    user = unprivileged_user()
    proc = subprocess.run(
        [sys.executable, "-c", _AS_USER, str(user.pw_uid), str(user.pw_gid), *argv],
        cwd=cwd,
        env={
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(cwd),
            "PUBLISHER_LOCAL_ROOT": str(cwd / "root"),
            "PYTHONDONTWRITEBYTECODE": "1",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize(
    ("path", "spec", "pattern"),
    [
        pytest.param(path, SPECS[mode], pattern, id=f"{name}-{mode}")
        for name, path, pattern in UNREADABLE_CASES
        for mode in BOTH
    ],
)
def test_an_unreadable_entry_gets_exit_1_and_one_line_naming_it(
    path: str,
    spec: str,
    pattern: str,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    cli_in_process: Callable[..., CLIResult],
) -> None:
    result = build(GOOD_TREE, workdir / "result")
    for entry in [result, *result.rglob("*")]:  # readable by anyone, whatever the umask
        entry.chmod(0o755 if entry.is_dir() else 0o644)
    (result / path).chmod(0)
    argv = ["publish", spec, "result"]
    try:
        if os.geteuid() == 0:  # root reads files whatever their mode
            code, out, err = run_unprivileged(argv, workdir)
        else:
            ran = invoke(cli_in_process, argv, workdir, monkeypatch)
            code, out, err = ran.code, ran.out, ran.err
    finally:
        (result / path).chmod(0o755)
    assert_refused(code, out, err, 1, pattern, workdir / "root")


@pytest.mark.parametrize(
    ("compress", "tamper", "command", "exit_code", "pattern"),
    [c[1:] for c in RECORD_CASES],
    ids=[c[0] for c in RECORD_CASES],
)
def test_a_bad_record_gets_its_exit_code_and_one_line_naming_it(
    compress: bool,
    tamper: Callable[[dict[str, Any], Path], str],
    command: str,
    exit_code: int,
    pattern: str,
    tmp_path: Path,
    refuses: Callable[..., None],
) -> None:
    source = build(GOOD_TREE, tmp_path / "source")
    result = publish(
        {"Type": "local", "Params": {"Key": "r", "Compress": compress}},
        source,
        settings={"root": str(tmp_path / "published")},
    )
    doc = result_to_document(result)
    (tmp_path / "r.yaml").write_text(tamper(doc, Path(result.params["Path"])))
    argv = [command, "r.yaml", *(["-o", "out"] if command == "get" else [])]
    refuses(argv, exit_code, pattern)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("folder", "files", "argv", "exit_code", "pattern"),
    [c[1:] for c in PLUGIN_CASES],
    ids=[c[0] for c in PLUGIN_CASES],
)
def test_a_bad_plugin_gets_its_exit_code_and_one_line_naming_it(
    folder: str,
    files: dict[str, str],
    argv: list[str],
    exit_code: int,
    pattern: str,
    third_party: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    refuses: Callable[..., None],
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    monkeypatch.syspath_prepend(str(third_party[folder]))  # the registry reads sys.path
    refuses(argv, exit_code, pattern)
