"""The bad-input corpus: each case is one wrong input, the exact exit code and a one-line
error that names the problem. Every case prints nothing on stdout and exactly one line on
stderr, starting ``error: ``, and stores nothing under ``PUBLISHER_LOCAL_ROOT``.

Each corpus is a list of frozen, keyword-only records, whose ``id`` is the test id:

- ``CASES`` (:class:`BadInput`): bad usage, specs, result records and settings; all exit 2.
- ``TREE_CASES``, ``CHANGING_CASES`` (:class:`BadTree`) and ``UNREADABLE_CASES``
  (:class:`UnreadableEntry`): result trees that cannot be published, in directory and
  archive mode (or only the modes a :class:`BadTree` names); all exit 1 (a publish that
  failed).
- ``RECORD_CASES`` (:class:`BadRecord`): published records that were truncated or tampered
  with, or whose stored bytes were.
- ``PLUGIN_CASES`` (:class:`BadPlugin`): plugins that fail to import, fail validation,
  claim a Type twice or raise inside a hook.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from publisher_core import TreeEntry, dump_document, publish, result_to_document, scan_tree
from tests.conftest import CLIResult
from tests.trees import build


@dataclass(frozen=True, kw_only=True)
class BadInput:
    """One wrong spec, key, setting, result record or command line: exit 2.

    ``id`` names the case (its test id); ``files`` are written into the working directory
    first (file name to text); ``argv`` is the command line, without ``publisher``; ``env``
    holds extra environment variables for the run; ``error`` is the regular expression
    searched for in the one ``error:`` line.
    """

    id: str
    files: dict[str, str] = field(default_factory=dict)
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    error: str


LONG = "k" * 1100  # a key over the 1024-byte limit

CASES: list[BadInput] = [
    BadInput(
        id="yaml-malformed",
        files={"s.yaml": "type: [local\n"},
        argv=["validate", "s.yaml"],
        error="YAML syntax error at line 2, column 1",
    ),
    BadInput(
        id="yaml-tab-indent",
        files={"s.yaml": "type: local\nparams:\n\tkey: x\n"},
        argv=["validate", "s.yaml"],
        error="YAML syntax error at line 3",
    ),
    BadInput(
        id="json-malformed",
        files={"s.json": '{"Type": "local",'},
        argv=["validate", "s.json"],
        error="syntax error at line 2",
    ),
    BadInput(
        id="json-duplicate-key",
        files={"s.json": '{"Type": "local", "Type": "s3"}'},
        argv=["validate", "s.json"],
        error="duplicate key 'Type'",
    ),
    BadInput(
        id="yaml-duplicate-key",
        files={"s.yaml": "type: local\ntype: s3\n"},
        argv=["validate", "s.yaml"],
        error="duplicate key 'type'",
    ),
    BadInput(
        id="spec-is-list",
        files={"s.yaml": "- local\n"},
        argv=["validate", "s.yaml"],
        error="expected a mapping with a Type .*got list",
    ),
    BadInput(
        id="spec-is-scalar",
        files={"s.yaml": "local\n"},
        argv=["validate", "s.yaml"],
        error="expected a mapping with a Type .*got str",
    ),
    BadInput(
        id="spec-empty",
        files={"s.yaml": ""},
        argv=["validate", "s.yaml"],
        error="got an empty document",
    ),
    BadInput(
        id="spec-missing-type",
        files={"s.yaml": "params: {key: x}\n"},
        argv=["validate", "s.yaml"],
        error="missing required field 'Type'",
    ),
    BadInput(
        id="spec-type-not-string",
        files={"s.yaml": "type: 3\n"},
        argv=["validate", "s.yaml"],
        error="unknown publisher type '3'",
    ),
    BadInput(
        id="spec-params-list",
        files={"s.yaml": "type: local\nparams: [1]\n"},
        argv=["validate", "s.yaml"],
        error="Params must be a mapping",
    ),
    BadInput(
        id="spec-unknown-top-field",
        files={"s.yaml": "type: local\nparamz: {}\n"},
        argv=["validate", "s.yaml"],
        error="unknown parameter 'paramz'",
    ),
    BadInput(
        id="unknown-type",
        files={"s.yaml": "type: ftp\n"},
        argv=["validate", "s.yaml"],
        error="unknown publisher type 'ftp'; installed: local, s3",
    ),
    BadInput(
        id="unknown-type-typo",
        files={"s.yaml": "type: s4\nparams: {bucket: b}\n"},
        argv=["validate", "s.yaml"],
        error="unknown publisher type 's4'",
    ),
    BadInput(
        id="disabled-type",
        files={"s.yaml": "type: local\nparams: {key: x}\n"},
        argv=["validate", "s.yaml"],
        env={"PUBLISHER_DISABLED": "local"},
        error="'local' cannot be used: disabled by PUBLISHER_DISABLED",
    ),
    BadInput(
        id="unknown-param",
        files={"s.yaml": "type: local\nparams: {kee: x}\n"},
        argv=["validate", "s.yaml"],
        error="unknown parameter 'kee' @ \\$\\.Params\\.kee \\(did you mean 'Key'\\?\\)",
    ),
    BadInput(
        id="s3-missing-bucket",
        files={"s.yaml": "type: s3\nparams: {key: x}\n"},
        argv=["validate", "s.yaml"],
        error="missing required parameter 'Bucket' @ \\$\\.Params",
    ),
    BadInput(
        id="bool-as-string",
        files={"s.yaml": "type: local\nparams: {key: x, compress: yes}\n"},
        argv=["validate", "s.yaml"],
        error="expected true or false, got 'yes' @ \\$\\.Params\\.Compress",
    ),
    BadInput(
        id="bool-as-int",
        files={"s.json": '{"Type": "local", "Params": {"Key": "x", "Compress": 1}}'},
        argv=["validate", "s.json"],
        error="expected true or false, got 1 @ \\$\\.Params\\.Compress",
    ),
    BadInput(
        id="key-as-list",
        files={"s.yaml": "type: local\nparams: {key: [a]}\n"},
        argv=["validate", "s.yaml"],
        error="expected a string, got list \\['a'\\] @ \\$\\.Params\\.Key",
    ),
    BadInput(
        id="bucket-uppercase",
        files={"s.yaml": "type: s3\nparams: {bucket: MyBucket, key: x}\n"},
        argv=["validate", "s.yaml"],
        error="bucket name 'MyBucket' is invalid",
    ),
    BadInput(
        id="bucket-too-short",
        files={"s.yaml": "type: s3\nparams: {bucket: ab, key: x}\n"},
        argv=["validate", "s.yaml"],
        error="bucket name 'ab' is invalid",
    ),
    BadInput(
        id="bucket-underscore",
        files={"s.yaml": "type: s3\nparams: {bucket: my_bucket, key: x}\n"},
        argv=["validate", "s.yaml"],
        error="bucket name 'my_bucket' is invalid",
    ),
    BadInput(
        id="bucket-ip",
        files={"s.yaml": "type: s3\nparams: {bucket: 192.168.1.1, key: x}\n"},
        argv=["validate", "s.yaml"],
        error="must not look like an IP address",
    ),
    BadInput(
        id="bucket-adjacent-dots",
        files={"s.yaml": "type: s3\nparams: {bucket: a..b, key: x}\n"},
        argv=["validate", "s.yaml"],
        error="has adjacent '\\.'/'-' characters",
    ),
    BadInput(
        id="bucket-reserved-prefix",
        files={"s.yaml": "type: s3\nparams: {bucket: xn--abc, key: x}\n"},
        argv=["validate", "s.yaml"],
        error="uses a prefix or suffix S3 reserves",
    ),
    BadInput(
        id="key-too-long",
        files={"s.yaml": "type: s3\nparams: {bucket: bkt, key: " + LONG + "}\n"},
        argv=["validate", "s.yaml"],
        error="key is 1101 UTF-8 bytes; the limit is 1024",
    ),
    BadInput(
        id="key-dot-segment",
        files={"s.yaml": "type: s3\nparams: {bucket: bkt, key: a/./b}\n"},
        argv=["validate", "s.yaml"],
        error="has '\\.' path segments",
    ),
    BadInput(
        id="key-dotdot-segment",
        files={"s.yaml": "type: s3\nparams: {bucket: bkt, key: a/../b}\n"},
        argv=["validate", "s.yaml"],
        error="has '\\.\\.' path segments",
    ),
    BadInput(
        id="key-empty-segment",
        files={"s.yaml": "type: s3\nparams: {bucket: bkt, key: a//b}\n"},
        argv=["validate", "s.yaml"],
        error="has '' path segments",
    ),
    BadInput(
        id="key-unknown-placeholder",
        files={"s.yaml": "type: s3\nparams: {bucket: bkt, key: 'r/{jobid}'}\n"},
        argv=["validate", "s.yaml"],
        error="unknown placeholder \\{jobid\\} \\(did you mean \\{jobID\\}\\?\\)",
    ),
    BadInput(
        id="key-unbalanced-open",
        files={"s.yaml": "type: s3\nparams: {bucket: bkt, key: 'r/{jobID'}\n"},
        argv=["validate", "s.yaml"],
        error="unbalanced '\\{' at position 2",
    ),
    BadInput(
        id="key-unbalanced-close",
        files={"s.yaml": "type: s3\nparams: {bucket: bkt, key: 'r/jobID}'}\n"},
        argv=["validate", "s.yaml"],
        error="unbalanced '\\}' at position 7",
    ),
    BadInput(
        id="placeholder-value-slash",
        files={"s.yaml": "type: s3\nparams: {bucket: bkt, key: 'r/{jobID}'}\n"},
        argv=["validate", "s.yaml", "--job-id", "a/b"],
        error="value 'a/b' for \\{jobID\\} is not allowed",
    ),
    BadInput(
        id="placeholder-value-dotdot",
        files={"s.yaml": "type: s3\nparams: {bucket: bkt, key: 'r/{jobID}'}\n"},
        argv=["validate", "s.yaml", "--job-id", ".."],
        error="value '\\.\\.' for \\{jobID\\} is not allowed",
    ),
    BadInput(
        id="key-control-char",
        files={"s.json": '{"Type": "s3", "Params": {"Bucket": "bkt", "Key": "a\\u0007b"}}'},
        argv=["validate", "s.json"],
        error="must not contain control characters",
    ),
    BadInput(
        id="endpoint-no-scheme",
        files={"s.yaml": "type: s3\nparams: {bucket: bkt, key: x, endpoint: 'minio.local:9000'}\n"},
        argv=["validate", "s.yaml"],
        error="Endpoint 'minio\\.local:9000' needs a scheme: use 'https://minio\\.local:9000'",
    ),
    BadInput(
        id="endpoint-credentials",
        files={
            "s.yaml": "type: s3\nparams: {bucket: bkt, key: x, endpoint: 'https://user:pw@minio.local'}\n"
        },
        argv=["validate", "s.yaml"],
        error="Endpoint must not contain credentials",
    ),
    BadInput(
        id="endpoint-ftp",
        files={
            "s.yaml": "type: s3\nparams: {bucket: bkt, key: x, endpoint: 'ftp://minio.local'}\n"
        },
        argv=["validate", "s.yaml"],
        error="Endpoint scheme 'ftp' is not supported",
    ),
    BadInput(
        id="endpoint-bad-port",
        files={
            "s.yaml": "type: s3\nparams: {bucket: bkt, key: x, endpoint: 'https://minio.local:99999'}\n"
        },
        argv=["validate", "s.yaml"],
        error="Endpoint is not a valid URL \\(Port out of range",
    ),
    BadInput(
        id="endpoint-trailing-newline",
        files={
            "s.json": '{"Type": "s3", "Bucket": "bkt", "Key": "x", "Endpoint": "http://127.0.0.1:9611\\n"}'
        },
        argv=["validate", "s.json"],
        error="contains a whitespace or control character \\(U\\+000A\\) "
        "@ \\$\\.Params\\.Endpoint$",
    ),
    BadInput(
        id="endpoint-space-in-host",
        files={
            "s.yaml": "type: s3\nparams: {bucket: bkt, key: x, endpoint: 'https://exa mple.com'}\n"
        },
        argv=["validate", "s.yaml"],
        error="Endpoint 'https://exa mple\\.com' contains a whitespace or control character "
        "\\(U\\+0020\\)",
    ),
    BadInput(
        id="endpoint-percent-host",
        files={"s.yaml": "type: s3\nparams: {bucket: bkt, key: x, endpoint: 'http://%41'}\n"},
        argv=["validate", "s.yaml"],
        error="Endpoint host '%41' must not use percent-encoding",
    ),
    BadInput(
        id="endpoint-host-300-characters",
        files={
            "s.yaml": f"type: s3\nparams: {{bucket: bkt, key: x, endpoint: 'http://{'a' * 300}'}}\n"
        },
        argv=["validate", "s.yaml"],
        error="Endpoint host is longer than 253 characters \\(300\\)",
    ),
    BadInput(
        id="endpoint-port-0",
        files={
            "s.yaml": "type: s3\nparams: {bucket: bkt, key: x, endpoint: 'http://127.0.0.1:0'}\n"
        },
        argv=["validate", "s.yaml"],
        error="Endpoint is not a valid URL \\(Port out of range 1-65535: 0\\)",
    ),
    BadInput(
        id="endpoint-idna-invalid",
        argv=["validate", "s3://bkt/x,opt=endpoint=http://xn--a.com"],
        error="Endpoint host 'xn--a\\.com' has 'xn--a', "
        "which is not a valid IDNA \\(punycode\\) label",
    ),
    BadInput(
        id="endpoint-non-ascii-host",
        files={
            "s.yaml": "type: s3\nparams: {bucket: bkt, key: x, endpoint: 'https://münchen.de'}\n"
        },
        argv=["validate", "s.yaml"],
        error="Endpoint host 'münchen\\.de' is not ASCII: .*punycode \\(xn--\\) form "
        "\\('xn--mnchen-3ya\\.de'\\)",
    ),
    BadInput(
        id="endpoint-environment-credentials",
        argv=["validate", "s3://bkt/x"],
        env={"AWS_ENDPOINT_URL_S3": "http://USER:PASSWORD@127.0.0.1:9000"},
        error="^(?!.*(USER|PASSWORD))error: invalid spec: Endpoint must not contain credentials;"
        " .* @ environment variable AWS_ENDPOINT_URL_S3$",
    ),
    BadInput(
        id="s3-bad-encoding",
        files={"s.yaml": "type: s3\nparams: {bucket: bkt, key: x, encoding: zstd}\n"},
        argv=["validate", "s.yaml"],
        error="Encoding must be 'gzip' or 'plain', got 'zstd'",
    ),
    BadInput(
        id="imperative-unknown-type",
        argv=["validate", "ftp://bkt/x"],
        error="unknown publisher type 'ftp'",
    ),
    BadInput(
        id="imperative-bad-opt",
        argv=["validate", "s3://bkt/x,opt=colour=red"],
        error="unknown parameter 'colour'",
    ),
    BadInput(
        id="imperative-bad-encoding",
        argv=["validate", "s3://bkt/x,opt=encoding=zip"],
        error="encoding must be 'gzip' or 'plain', got 'zip'",
    ),
    BadInput(
        id="spec-file-missing", argv=["validate", "nope.yaml"], error="nope\\.yaml: no such file"
    ),
    BadInput(
        id="setting-unknown",
        files={"s.yaml": "type: local\nparams: {key: x}\n"},
        argv=["validate", "s.yaml"],
        env={"PUBLISHER_LOCAL_ROTO": "/x"},
        error="unknown setting PUBLISHER_LOCAL_ROTO \\(did you mean 'PUBLISHER_LOCAL_ROOT'\\?\\)",
    ),
    BadInput(
        id="setting-not-int",
        files={"s.yaml": "type: s3\nparams: {bucket: bkt, key: x}\n"},
        argv=["validate", "s.yaml"],
        env={"PUBLISHER_S3_CONCURRENCY": "many"},
        error="expected an integer, got 'many' @ PUBLISHER_S3_CONCURRENCY",
    ),
    BadInput(
        id="setting-out-of-range",
        files={"s.yaml": "type: s3\nparams: {bucket: bkt, key: x}\n"},
        argv=["validate", "s.yaml"],
        env={"PUBLISHER_S3_PART_SIZE": "1024"},
        error="'part_size' must be >= 5242880",
    ),
    BadInput(
        id="result-malformed",
        files={"r.yaml": "type: [\n"},
        argv=["describe", "r.yaml"],
        error="invalid result: YAML syntax error",
    ),
    BadInput(
        id="result-unknown-type",
        files={"r.yaml": "type: ftp\nparams: {path: /x}\n"},
        argv=["describe", "r.yaml"],
        error="unknown publisher type 'ftp'",
    ),
    BadInput(
        id="result-missing-field",
        files={"r.yaml": "type: local\nparams: {}\n"},
        argv=["describe", "r.yaml"],
        error="invalid result \\(3 problems\\): missing required parameter 'Path'",
    ),
    BadInput(
        id="result-bad-checksum-type",
        files={"r.json": '{"Type": "local", "Params": {"Path": "/x", "Key": "x", "Size": "big"}}'},
        argv=["describe", "r.json"],
        error="expected an integer, got 'big' @ \\$\\.Params\\.Size",
    ),
    BadInput(
        id="publish-source-missing",
        files={"s.yaml": "type: local\nparams: {key: x}\n"},
        argv=["publish", "s.yaml", "no-such-dir"],
        error="no-such-dir: no such file or directory",
    ),
    BadInput(id="cli-unknown-command", argv=["frobnicate"], error="No such command 'frobnicate'"),
    BadInput(
        id="cli-unknown-option", argv=["validate", "--frob", "x"], error="No such option '--frob'"
    ),
    BadInput(id="cli-missing-argument", argv=["publish"], error="Missing argument 'SPEC'"),
    BadInput(
        id="cli-bad-output-format",
        files={"s.yaml": "type: local\nparams: {key: x}\n"},
        argv=["publish", "s.yaml", ".", "--output", "xml"],
        error="'xml' is not one of 'yaml', 'json'",
    ),
    BadInput(
        id="spec-params-null",
        files={"s.yaml": "type: local\nparams: null\n"},
        argv=["validate", "s.yaml"],
        error="missing required parameter 'Key' @ \\$\\.Params",
    ),
    BadInput(
        id="s3-region-invalid",
        files={"s.yaml": "type: s3\nparams: {bucket: bkt, key: x, region: 'us east 1'}\n"},
        argv=["validate", "s.yaml"],
        error="Region 'us east 1' is invalid",
    ),
    BadInput(
        id="imperative-no-bucket",
        argv=["validate", "s3://"],
        error="missing required parameter 'Bucket'",
    ),
    BadInput(
        id="key-nul",
        files={"s.json": '{"Type": "s3", "Params": {"Bucket": "bkt", "Key": "a\\u0000b"}}'},
        argv=["validate", "s.json"],
        error="must not contain control characters",
    ),
    BadInput(
        id="key-line-separator",
        files={"s.json": '{"Type": "s3", "Params": {"Bucket": "bkt", "Key": "a\\u2028b"}}'},
        argv=["validate", "s.json"],
        error="must not contain control characters",
    ),
    BadInput(
        id="json-trailing-garbage",
        files={"s.json": '{"Type": "local"} x'},
        argv=["validate", "s.json"],
        error="syntax error at line 1, column 19",
    ),
    BadInput(
        id="yaml-alias-bomb-in-key",
        files={
            "s.yaml": "a: &a [x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n"
                for p, n in zip("abcdefghi", "bcdefghij", strict=True)
            )
            + "Type: local\nParams: {Key: *j}\n"
        },
        argv=["validate", "s.yaml"],
        error="^error: invalid spec: YAML aliases expand this document to more than 10000 values; "
        "write the values out$",
    ),
    BadInput(
        id="yaml-alias-bomb-in-params",
        files={
            "s.yaml": "Type: local\nParams:\n  Key: k\n  Extra:\n"
            + "    a: &a [x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"    {n}: &{n} [{', '.join(['*' + p] * 9)}]\n"
                for p, n in zip("abcdefghi", "bcdefghij", strict=True)
            )
        },
        argv=["validate", "s.yaml"],
        error="^error: invalid spec: YAML aliases expand this document to more than 10000 values",
    ),
    BadInput(
        id="yaml-alias-bomb-flat",
        files={
            "s.yaml": "Type: local\na: &a [x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n"
                for p, n in zip("abcdefghi", "bcdefghij", strict=True)
            )
            + "Key: *j\n"
        },
        argv=["validate", "s.yaml"],
        error="^error: invalid spec: YAML aliases expand this document to more than 10000 values",
    ),
    BadInput(
        id="key-megabyte",
        files={"s.json": '{"Type": "local", "Params": {"Key": "\\u0007' + "k" * 1_000_000 + '"}}'},
        argv=["validate", "s.json"],
        error="^(?=.{0,600}$)error: invalid spec \\(2 problems\\): key '\\\\x07kkk.*"
        "must not contain control characters",
    ),
    BadInput(
        id="key-lone-surrogate",
        files={"s.json": '{"Type": "local", "Params": {"Key": "\\ud800"}}'},
        argv=["validate", "s.json"],
        error="text '\\\\ud800' is not valid Unicode \\(its lone surrogate '\\\\ud800' "
        "at position 0 cannot be encoded as UTF-8\\) @ \\$\\.Params\\.Key$",
    ),
    BadInput(
        id="yaml-syntax-error-said-once",
        files={"s.yaml": "type: [local\n"},
        argv=["validate", "s.yaml"],
        error="^error: invalid spec: YAML syntax error at line 2, column 1: did not find expected "
        "',' or '\\]'$",
    ),
    BadInput(
        id="json-value-labelled-json",
        files={"s.json": '{"Type": "local", "Key": ' + "1" * 5000 + "}"},
        argv=["validate", "s.json"],
        error="^error: invalid spec: JSON value cannot be read: "
        "Exceeds the limit \\(4300 digits\\)",
    ),
    BadInput(
        id="s3-sse-typo",
        argv=["validate", "s3://bkt/x,opt=serversideencryption=aws-kms"],
        error=re.escape("is not one of AES256, aws:kms, aws:kms:dsse (did you mean 'aws:kms'?)"),
    ),
    BadInput(
        id="s3-kms-key-without-kms",
        argv=["validate", "s3://bkt/x,opt=ssekmskeyid=alias/k"],
        error=re.escape(
            "SSEKMSKeyId needs ServerSideEncryption 'aws:kms' or 'aws:kms:dsse', got none"
        ),
    ),
    BadInput(
        id="s3-sse-c-refused",
        argv=["validate", "s3://bkt/x,opt=ssecustomerkey=c2VjcmV0LWtleQ=="],
        error=re.escape("SSE-C (customer-provided keys) is not supported"),
    ),
    BadInput(
        id="s3-encryption-required",
        argv=["validate", "s3://bkt/x"],
        env={"PUBLISHER_S3_REQUIRE_ENCRYPTION": "true"},
        error=re.escape(
            "ServerSideEncryption is required (PUBLISHER_S3_REQUIRE_ENCRYPTION is true)"
        ),
    ),
    BadInput(
        id="s3-encryption-setting-typo",
        argv=["validate", "s3://bkt/x"],
        env={"PUBLISHER_S3_SERVER_SIDE_ENCRYPTION": "aes"},
        error="PUBLISHER_S3_SERVER_SIDE_ENCRYPTION 'aes' is not one of",
    ),
    BadInput(
        id="s3-kms-key-setting-malformed",  # named its variable twice
        argv=["validate", "s3://bkt/x"],
        env={"PUBLISHER_S3_SSE_KMS_KEY_ID": "a b"},
        error=re.escape(
            "invalid setting: PUBLISHER_S3_SSE_KMS_KEY_ID 'a b' is not a KMS key id, key ARN "
            "or alias: 1-2048 printable ASCII characters without spaces "
            "@ PUBLISHER_S3_SSE_KMS_KEY_ID"
        )
        + "$",
    ),
    BadInput(
        id="s3-storage-class-typo",
        argv=["validate", "s3://bkt/x,opt=storageclass=STANDARD-IA"],
        error=re.escape("(did you mean 'STANDARD_IA'?) @ $.Params.StorageClass"),
    ),
    BadInput(
        id="s3-storage-class-glacier",
        argv=["validate", "s3://bkt/x,opt=storageclass=GLACIER"],
        error="objects cannot be read until restored",
    ),
    BadInput(
        id="s3-too-many-tags",
        argv=["validate", "s3://bkt/x,opt=tags=" + "&".join(f"k{i}=v" for i in range(11))],
        error="Tags has 11 tags; S3 allows at most 10",
    ),
    BadInput(
        id="s3-tag-no-equals",
        argv=["validate", "s3://bkt/x,opt=tags=team"],
        error="tag 'team' has no '='",
    ),
    BadInput(
        id="s3-tag-bad-char",
        argv=["validate", "s3://bkt/x,opt=tags=k=a;b"],
        error="tag value 'a;b' has ';'",
    ),
    BadInput(
        id="s3-tag-long-key",
        argv=["validate", "s3://bkt/x,opt=tags=" + "k" * 129 + "=v"],
        error="must be 1-128 characters, has 129",
    ),
    BadInput(
        id="s3-metadata-bad-name",
        argv=["validate", "s3://bkt/x,opt=metadata=a%20b=v"],
        error="metadata name 'a b' is not an HTTP header token",
    ),
    BadInput(
        id="s3-metadata-too-big",
        argv=["validate", "s3://bkt/x,opt=metadata=k=" + "v" * 2100],
        error=re.escape("Metadata is 2101 bytes"),
    ),
    BadInput(
        id="s3-acl-typo",
        argv=["validate", "s3://bkt/x,opt=acl=public"],
        error=re.escape("(did you mean 'public-read'?) @ $.Params.ACL"),
    ),
    BadInput(
        id="s3-owner-not-account",
        argv=["validate", "s3://bkt/x,opt=expectedbucketowner=me"],
        error="ExpectedBucketOwner 'me' is not an AWS account id",
    ),
    BadInput(
        id="s3-content-type-directory",
        argv=["validate", "s3://bkt/x/,opt=contenttype=text/plain"],
        error=re.escape("ContentType applies to archive mode (Compress: true) only"),
    ),
    BadInput(
        id="s3-bucket-key-without-kms",
        argv=["validate", "s3://bkt/x,opt=bucketkeyenabled=true"],
        error=re.escape("BucketKeyEnabled: true needs ServerSideEncryption 'aws:kms'"),
    ),
]
# -- Result trees that cannot be published: exit 1 -------------------------------------------

GOOD_TREE: dict[str, Any] = {"ok.txt": b"fine\n", "sub": {"inner.txt": b"inner\n"}}
"""What every tree case starts from; the case then adds or changes one thing."""

CAFE_NFC = unicodedata.normalize("NFC", "café")
CAFE_NFD = unicodedata.normalize("NFD", "café")

BOTH = ("directory", "archive")
SPECS = {"directory": "local://out", "archive": "local://out,opt=compress=true"}


@dataclass(frozen=True, kw_only=True)
class BadTree:
    """A result tree that cannot be published, or that changes while it is: exit 1.

    ``id`` names the case; its tests are ``<id>-<mode>``, one for each of its ``modes``.
    ``change`` is done to the result directory, built from ``GOOD_TREE``: before the
    publish (``TREE_CASES``), or after the publisher scanned it (``CHANGING_CASES``).
    ``modes`` are the modes it is published in (keys of ``SPECS``); ``error`` is the
    regular expression searched for in the one ``error:`` line.
    """

    id: str
    change: Callable[[Path], object]
    modes: tuple[str, ...] = BOTH
    error: str


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


TREE_CASES: list[BadTree] = [
    BadTree(
        id="tree-link-out",
        change=link_out,
        error="1 entry of result cannot be published: "
        "out: symlink leads out of the result \\(-> \\.\\./secret\\.txt\\)$",
    ),
    BadTree(
        id="tree-link-dangling",
        change=lambda r: os.symlink("nowhere", r / "dangling"),
        error="dangling: is a dangling symlink \\(-> nowhere\\)$",
    ),
    BadTree(
        id="tree-link-loop",
        change=link_loop,
        error="2 entries of result cannot be published: loop1: is a symlink loop \\(-> loop2\\); "
        "loop2: is a symlink loop \\(-> loop1\\)$",
    ),
    BadTree(
        id="tree-link-to-ancestor",  # kept as a link inside the tree in archive mode, which is fine
        change=lambda r: os.symlink("..", r / "sub" / "parent"),
        modes=("directory",),
        error="sub/parent: symlink to a directory containing it \\(a cycle\\)$",
    ),
    BadTree(
        id="tree-fifo",
        change=lambda r: os.mkfifo(r / "fifo"),
        error="fifo: is a FIFO, which cannot be published$",
    ),
    BadTree(
        id="tree-socket",
        change=unix_socket,
        error="s\\.sock: is a socket, which cannot be published$",
    ),
    BadTree(
        id="tree-nfc-nfd-twins",
        change=nfc_nfd_twins,
        error=f"{CAFE_NFD} \\(NFD\\) and {CAFE_NFC} \\(NFC\\): names differ only in Unicode "
        "normalisation \\(NFC/NFD\\) and would collide on macOS/Windows-style filesystems$",
    ),
    BadTree(
        id="tree-newline-in-file-name",
        change=lambda r: (r / "bad\nname.txt").write_text("x"),
        error="'bad\\\\nname\\.txt': name contains a control character",
    ),
    BadTree(
        id="tree-newline-in-directory-name",  # empty, so no file key would have caught it
        change=lambda r: (r / "bad\ndir").mkdir(),
        error="'bad\\\\ndir': name contains a control character",
    ),
    BadTree(
        id="tree-invalid-utf8-name",
        change=invalid_utf8_name,
        error="b'bad\\\\xffname': name is not valid UTF-8$",
    ),
    BadTree(
        id="tree-key-over-1024-bytes",  # an archive's members have no such limit
        change=key_over_1024_bytes,
        modes=("directory",),
        error="1 files cannot be stored under 'out/': (d{250}/){4}x{17}: "
        "key is 1025 UTF-8 bytes; the limit is 1024$",
    ),
    BadTree(
        id="tree-backslash-in-file-name",  # get could never fetch it
        change=lambda r: (r / "sub" / "x\\y").write_text("1\n"),
        error="1 entry of result cannot be published: 'sub/x\\\\\\\\y': name contains a backslash, "
        "a path separator on Windows, which a key or a restored file name cannot hold safely$",
    ),
    BadTree(
        id="tree-too-deep",
        change=too_deep,
        error="1 entry of result cannot be published: 'd/d/d.*: path is 257 levels deep; "
        "the limit is 256$",
    ),
]


def per_mode(cases: list[BadTree]) -> list[Any]:
    """One parameter set (case, spec) per case and mode, with ids like ``tree-fifo-archive``."""
    return [
        pytest.param(case, SPECS[mode], id=f"{case.id}-{mode}")
        for case in cases
        for mode in case.modes
    ]


# Changes made between the scan of the tree and the reading of its files: exit 1.


def swap_for_link_out(result: Path) -> None:
    (result / "sub" / "inner.txt").unlink()
    os.symlink("../../secret.txt", result / "sub" / "inner.txt")
    (result.parent / "secret.txt").write_text("secret")


def replace_by_another_file(result: Path) -> None:
    (result / "sub" / "new").write_bytes(b"other\n")
    os.replace(result / "sub" / "new", result / "sub" / "inner.txt")


CHANGING_CASES: list[BadTree] = [
    BadTree(
        id="tree-file-vanishes",
        change=lambda r: (r / "sub" / "inner.txt").unlink(),
        error="sub/inner\\.txt: cannot open \\(No such file or directory\\)$",
    ),
    BadTree(
        id="tree-file-grows",
        change=lambda r: (r / "sub" / "inner.txt").write_bytes(b"inner and more\n"),
        error="sub/inner\\.txt: changed size while publishing \\(6 bytes when scanned, 15 when "
        "read\\); nothing was published$",
    ),
    BadTree(
        id="tree-file-shrinks",
        change=lambda r: os.truncate(r / "sub" / "inner.txt", 2),
        error="sub/inner\\.txt: changed size while publishing \\(6 bytes when scanned, 2 when "
        "read\\); nothing was published$",
    ),
    BadTree(
        id="tree-file-swapped-for-link-out",
        change=swap_for_link_out,
        error="sub/inner\\.txt: was replaced by a symlink while publishing; nothing was published$",
    ),
    BadTree(
        id="tree-file-replaced",
        change=replace_by_another_file,
        error="sub/inner\\.txt: was replaced while publishing; nothing was published$",
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


@dataclass(frozen=True, kw_only=True)
class UnreadableEntry:
    """An entry of ``GOOD_TREE`` the publishing user cannot read: exit 1, in both modes.

    ``id`` names the case; its tests are ``<id>-directory`` and ``<id>-archive``.
    ``path`` is the entry made unreadable (mode 0), relative to the result directory;
    ``error`` is the regular expression searched for in the one ``error:`` line.
    """

    id: str
    path: str
    error: str


UNREADABLE_CASES: list[UnreadableEntry] = [
    UnreadableEntry(
        id="tree-unreadable-file",
        path="sub/inner.txt",
        error="sub/inner\\.txt: cannot open \\(Permission denied\\)$",
    ),
    UnreadableEntry(
        id="tree-unreadable-directory",
        path="sub",
        error="1 entry of result cannot be published: sub/: cannot list directory "
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


@dataclass(frozen=True, kw_only=True)
class BadRecord:
    """A published record truncated or tampered with, or whose stored bytes were.

    ``id`` names the case; ``compress`` publishes ``GOOD_TREE`` in archive mode (true) or
    directory mode (false); ``tamper`` gets the record's document and the stored result's
    path, may change what is stored, and returns the text written to ``r.yaml``;
    ``command`` (``describe`` or ``get``) is then run on ``r.yaml``; ``exit_code`` is the
    exit code it must give and ``error`` the regular expression searched for in the one
    ``error:`` line.
    """

    id: str
    compress: bool
    tamper: Callable[[dict[str, Any], Path], str]
    command: str
    exit_code: int
    error: str


RECORD_CASES: list[BadRecord] = [
    BadRecord(
        id="result-truncated-json",
        compress=True,
        tamper=cut_json,
        command="describe",
        exit_code=2,
        error="invalid result: YAML syntax error at line 1, column \\d+: ",
    ),
    BadRecord(
        id="result-truncated-yaml-mid-line",
        compress=True,
        tamper=cut_yaml_mid_line,
        command="describe",
        exit_code=2,
        error="invalid result: YAML syntax error at line 6, column 1: could not find expected ':'$",
    ),
    BadRecord(
        id="result-truncated-yaml-at-a-line",
        compress=True,
        tamper=cut_yaml_at_a_line,
        command="describe",
        exit_code=2,
        error="invalid result: missing required parameter 'Size' @ \\$\\.Params$",
    ),
    BadRecord(
        id="result-tampered-checksum",
        compress=True,
        tamper=lambda doc, stored: record(doc, ChecksumSHA256=ZERO_SHA256),
        command="get",
        exit_code=1,
        error=f"r\\.tar\\.gz: SHA-256 is \\S+, the result recorded {ZERO_SHA256}; "
        "the stored bytes were changed or corrupted$",
    ),
    BadRecord(
        id="result-malformed-checksum",
        compress=True,
        tamper=lambda doc, stored: record(doc, ChecksumSHA256="nope"),
        command="describe",
        exit_code=2,
        error="invalid result: ChecksumSHA256 must be a base64 SHA-256 \\(44 characters ending in "
        "'='\\), got 'nope' @ \\$\\.Params\\.ChecksumSHA256$",
    ),
    BadRecord(
        id="result-malformed-manifest-checksum",
        compress=False,
        tamper=lambda doc, stored: record(doc, ManifestChecksumSHA256="abc="),
        command="describe",
        exit_code=2,
        error="invalid result: ManifestChecksumSHA256 must be a base64 SHA-256 \\(44 characters "
        "ending in '='\\), got 'abc=' @ \\$\\.Params\\.ManifestChecksumSHA256$",
    ),
    BadRecord(
        id="result-tampered-size",
        compress=True,
        tamper=lambda doc, stored: record(doc, Size=doc["Params"]["Size"] + 1),
        command="get",
        exit_code=1,
        error="r\\.tar\\.gz: got \\d+ bytes, the result recorded \\d+$",
    ),
    BadRecord(
        id="result-tampered-manifest-checksum",
        compress=False,
        tamper=lambda doc, stored: record(doc, ManifestChecksumSHA256=ZERO_SHA256),
        command="describe",
        exit_code=1,
        error=f"manifest \\S+/published/r\\.manifest\\.json has SHA-256 \\S+, "
        f"the result recorded {ZERO_SHA256}$",
    ),
    BadRecord(
        id="result-manifest-deleted",
        compress=False,
        tamper=delete_the_manifest,
        command="describe",
        exit_code=1,
        error="manifest \\S+/r\\.manifest\\.json is missing: "
        "the result is incomplete or was deleted$",
    ),
    BadRecord(
        id="result-stored-archive-truncated",
        compress=True,
        tamper=truncate_stored,
        command="get",
        exit_code=1,
        error="r\\.tar\\.gz: got \\d+ bytes, the result recorded \\d+$",
    ),
    BadRecord(
        id="result-stored-archive-corrupted",
        compress=True,
        tamper=flip_a_stored_bit,
        command="get",
        exit_code=1,
        error="r\\.tar\\.gz: SHA-256 is \\S+, the result recorded \\S+; "
        "the stored bytes were changed or corrupted$",
    ),
    BadRecord(
        id="result-stored-file-changed",
        compress=False,
        tamper=edit_a_stored_file,
        command="get",
        exit_code=1,
        error="ok\\.txt: SHA-256 is \\S+, the result recorded \\S+; "
        "the stored bytes were changed or corrupted$",
    ),
    BadRecord(
        id="description-path-2000-levels-deep",  # was an unexpected RecursionError
        compress=False,
        tamper=path_2000_levels_deep,
        command="get",
        exit_code=1,
        error="item path 'a/a/a.*: path is 2000 levels deep; the limit is 256; refusing it$",
    ),
    BadRecord(
        id="description-size-beyond-any-disk",  # refused before a byte is downloaded
        compress=False,
        tamper=size_beyond_any_disk,
        command="get",
        exit_code=1,
        error="the items record 4194304\\.0 TiB in all \\(up to 'ok\\.txt'\\), over the limit of "
        ".* \\(the free space beside \\S+/out; see publisher get --max-size\\); "
        "refusing the result$",
    ),
]


# -- Plugins: installed distributions that cannot be used, or fail while used ----------------


@dataclass(frozen=True, kw_only=True)
class BadPlugin:
    """A plugin that fails to import, fails validation, claims a Type twice or raises.

    ``id`` names the case; ``folder`` is the ``third_party`` folder of fake distributions
    put on ``sys.path`` (``broken``, ``duplicate`` or ``raising``); ``files`` are written
    into the working directory first (file name to text); ``argv`` is the command line,
    without ``publisher``; ``exit_code`` is the exit code it must give and ``error`` the
    regular expression searched for in the one ``error:`` line.
    """

    id: str
    folder: str
    files: dict[str, str] = field(default_factory=dict)
    argv: list[str]
    exit_code: int
    error: str


PLUGIN_CASES: list[BadPlugin] = [
    BadPlugin(
        id="plugin-fails-on-import",
        folder="broken",
        argv=["validate", "broken://x"],
        exit_code=2,
        error="publisher type 'broken' cannot be used: import failed: ModuleNotFoundError: "
        "No module named 'publisher_core_missing_dependency'$",
    ),
    BadPlugin(
        id="plugin-fails-validation",
        folder="broken",
        argv=["validate", "badhooks://x"],
        exit_code=2,
        error="publisher type 'badhooks' cannot be used: invalid plugin: PluginValidationError: "
        ".*bucket_name",
    ),
    BadPlugin(
        id="plugin-duplicate-type",
        folder="duplicate",
        argv=["validate", "local://x"],
        exit_code=2,
        error="publisher type 'local' is provided by more than one distribution: "
        "(duplicate-publisher 9\\.9\\.9 and publisher-local \\S+|publisher-local \\S+ and "
        "duplicate-publisher 9\\.9\\.9); uninstall one of them$",
    ),
    BadPlugin(
        id="plugin-raises-in-validate-spec",
        folder="raising",
        files={"s.yaml": "type: raising\nparams: {key: x, fail: validate_spec}\n"},
        argv=["validate", "s.yaml"],
        exit_code=2,
        error="publisher 'raising' failed in validate_spec: RuntimeError: validator crashed "
        "while reading the key$",
    ),
    BadPlugin(
        id="plugin-raises-in-publish",
        folder="raising",
        argv=["publish", "raising://x", "."],
        exit_code=1,
        error="publisher 'raising' failed in publish: RuntimeError: the shelf for \\. is full "
        "and a second line$",
    ),
    BadPlugin(
        id="plugin-publish-returns-nothing",
        folder="raising",
        files={"s.yaml": "type: raising\nparams: {key: x, fail: nothing}\n"},
        argv=["publish", "s.yaml", "."],
        exit_code=2,
        error="publisher 'raising' returned NoneType from publish, expected a PublishedResult$",
    ),
    BadPlugin(
        id="plugin-raises-in-describe",
        folder="raising",
        files={"r.yaml": "type: raising\nparams: {key: x}\n"},
        argv=["describe", "r.yaml"],
        exit_code=1,
        error="publisher 'raising' failed in describe_result: KeyError: 'no shelf holds x'$",
    ),
]

ALL_IDS = [
    *(case.id for case in CASES),
    *(case.id for case in TREE_CASES),
    *(case.id for case in CHANGING_CASES),
    *(case.id for case in UNREADABLE_CASES),
    *(case.id for case in RECORD_CASES),
    *(case.id for case in PLUGIN_CASES),
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


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_gets_exit_2_and_one_line_naming_it(
    case: BadInput, tmp_path: Path, refuses: Callable[..., None]
) -> None:
    for name, text in case.files.items():
        (tmp_path / name).write_text(text)
    refuses(case.argv, 2, case.error, case.env)
    assert not (tmp_path / "root").exists()  # not even made


@pytest.mark.parametrize(("case", "spec"), per_mode(TREE_CASES))
def test_an_unpublishable_tree_gets_exit_1_and_one_line_naming_it(
    case: BadTree, spec: str, tmp_path: Path, refuses: Callable[..., None]
) -> None:
    case.change(build(GOOD_TREE, tmp_path / "result"))
    refuses(["publish", spec, "result"], 1, case.error)


@pytest.mark.parametrize(("case", "spec"), per_mode(CHANGING_CASES))
def test_a_tree_changing_during_publish_gets_exit_1_and_one_line_naming_it(
    case: BadTree,
    spec: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    refuses: Callable[..., None],
) -> None:
    build(GOOD_TREE, tmp_path / "result")
    change_after_scan(monkeypatch, case.change)
    refuses(["publish", spec, "result"], 1, case.error)


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
    ("case", "spec"),
    [
        pytest.param(case, SPECS[mode], id=f"{case.id}-{mode}")
        for case in UNREADABLE_CASES
        for mode in BOTH
    ],
)
def test_an_unreadable_entry_gets_exit_1_and_one_line_naming_it(
    case: UnreadableEntry,
    spec: str,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    cli_in_process: Callable[..., CLIResult],
) -> None:
    result = build(GOOD_TREE, workdir / "result")
    for entry in [result, *result.rglob("*")]:  # readable by anyone, whatever the umask
        entry.chmod(0o755 if entry.is_dir() else 0o644)
    (result / case.path).chmod(0)
    argv = ["publish", spec, "result"]
    try:
        if os.geteuid() == 0:  # root reads files whatever their mode
            code, out, err = run_unprivileged(argv, workdir)
        else:
            ran = invoke(cli_in_process, argv, workdir, monkeypatch)
            code, out, err = ran.code, ran.out, ran.err
    finally:
        (result / case.path).chmod(0o755)
    assert_refused(code, out, err, 1, case.error, workdir / "root")


@pytest.mark.parametrize("case", RECORD_CASES, ids=[case.id for case in RECORD_CASES])
def test_a_bad_record_gets_its_exit_code_and_one_line_naming_it(
    case: BadRecord, tmp_path: Path, refuses: Callable[..., None]
) -> None:
    source = build(GOOD_TREE, tmp_path / "source")
    result = publish(
        {"Type": "local", "Params": {"Key": "r", "Compress": case.compress}},
        source,
        settings={"root": str(tmp_path / "published")},
    )
    doc = result_to_document(result)
    (tmp_path / "r.yaml").write_text(case.tamper(doc, Path(result.params["Path"])))
    argv = [case.command, "r.yaml", *(["-o", "out"] if case.command == "get" else [])]
    refuses(argv, case.exit_code, case.error)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", PLUGIN_CASES, ids=[case.id for case in PLUGIN_CASES])
def test_a_bad_plugin_gets_its_exit_code_and_one_line_naming_it(
    case: BadPlugin,
    third_party: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    refuses: Callable[..., None],
) -> None:
    for name, text in case.files.items():
        (tmp_path / name).write_text(text)
    monkeypatch.syspath_prepend(str(third_party[case.folder]))  # the registry reads sys.path
    refuses(case.argv, case.exit_code, case.error)
