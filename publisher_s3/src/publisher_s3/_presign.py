"""Pre-signed GET URLs for every file of a result, at thousands a second.

botocore's ``generate_presigned_url`` resolves the endpoint, validates, serializes and
emits events for every call: about 0.3 ms of CPU, six seconds for a directory of 20,000
files before ``get`` fetches anything. Only the signature differs from one key to the
next, so :class:`Presigner` lets botocore pre-sign one URL for the bucket (the URL's
scheme, host, path style, region and credential scope are botocore's), checks that it is
the plain SigV4 query form it knows, and signs each key with the AWS Common Runtime's
SigV4 signer, the one botocore itself signs with when ``awscrt`` is installed, at about
15 microseconds a URL. The two are the same signature over the same canonical request:
``tests/test_s3_presign.py`` checks them against each other and against stores that
verify them.

Anything else (no ``awscrt``, no credentials, SigV2, S3 Express, a URL shape it does not
know) is signed by botocore, one call per key, as before.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlsplit

if TYPE_CHECKING:
    from botocore.session import Session
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import GetObjectRequestTypeDef

__all__ = ["Presigner"]

_log = logging.getLogger(__name__)

_PROBE_KEY = "publisher-probe"
_KNOWN_PARAMS = frozenset(
    {
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Security-Token",
        "X-Amz-Signature",
    }
)


def quote_key(key: str) -> str:
    """A key as botocore puts it in a URL's path: percent-encoded, ``/`` and ``~`` kept."""
    return quote(key, safe="/~")


class Presigner:
    """Pre-signed GetObject URLs for keys of one ``bucket``, valid for ``lifetime`` seconds.

    ``session`` is the one ``client`` was made from (its credentials sign). Call
    :meth:`url` once per key; it never contacts the store.
    """

    def __init__(
        self, client: S3Client, bucket: str, lifetime: int, session: Session | None
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.lifetime = lifetime
        self._fast: _RuntimeSigner | None = None
        if session is not None:
            try:
                self._fast = _RuntimeSigner.for_bucket(client, bucket, lifetime, session)
            except ImportError:
                _log.debug("awscrt is not installed: botocore signs each URL")
            except _Unsupported as exc:
                _log.debug("botocore signs each URL: %s", exc)

    def __repr__(self) -> str:
        fast = "runtime" if self._fast is not None else "botocore"
        return f"Presigner(bucket={self.bucket!r}, lifetime={self.lifetime}, signer={fast})"

    def url(self, key: str, version: str | None = None) -> str:
        """The pre-signed GET URL of ``key`` (of its ``version``, when given)."""
        if self._fast is not None:
            return self._fast.sign(key, version)
        return botocore_url(self.client, self.bucket, key, self.lifetime, version)


def botocore_url(
    client: S3Client, bucket: str, key: str, lifetime: int, version: str | None
) -> str:
    """The URL botocore pre-signs for GetObject: one full ``generate_presigned_url`` call."""
    request: GetObjectRequestTypeDef = {"Bucket": bucket, "Key": key}
    if version:
        request["VersionId"] = version
    url: str = client.generate_presigned_url("get_object", Params=request, ExpiresIn=lifetime)
    return url


class _Unsupported(Exception):
    """botocore signs these URLs in a way the runtime signer is not used for."""


class _RuntimeSigner:
    """SigV4 query signing by ``awscrt.auth`` over botocore's URL for the bucket."""

    def __init__(self, scheme: str, host: str, prefix: str, config: Any) -> None:
        from awscrt import auth, http

        self._auth, self._http = auth, http
        self.origin = f"{scheme}://{host}"
        self.host = host
        self.prefix = prefix  # the path up to where the quoted key goes
        self.config = config

    @classmethod
    def for_bucket(
        cls, client: S3Client, bucket: str, lifetime: int, session: Session
    ) -> _RuntimeSigner:
        """The signer for ``bucket``, or :class:`_Unsupported` if botocore signs otherwise."""
        from awscrt import auth

        if bucket.endswith("--x-s3"):
            raise _Unsupported("an S3 Express directory bucket has its own session auth")
        credentials = session.get_credentials()
        if credentials is None:
            raise _Unsupported("no credentials: botocore reports that itself")
        probe = urlsplit(botocore_url(client, bucket, _PROBE_KEY, lifetime, None))
        params = dict(parse_qsl(probe.query, keep_blank_values=True))
        if set(params) - _KNOWN_PARAMS or params.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
            raise _Unsupported(f"a pre-signed URL with {sorted(params)}")
        if params.get("X-Amz-SignedHeaders") != "host" or probe.fragment:
            raise _Unsupported("a pre-signed URL that signs more than its host")
        if not probe.path.endswith("/" + _PROBE_KEY):
            raise _Unsupported("a URL that does not end in the key")
        scope = params["X-Amz-Credential"].split("/")
        if len(scope) != 5 or scope[3:] != ["s3", "aws4_request"]:
            raise _Unsupported("a credential scope other than s3's")
        frozen = credentials.get_frozen_credentials()
        config = auth.AwsSigningConfig(
            algorithm=auth.AwsSigningAlgorithm.V4,
            signature_type=auth.AwsSignatureType.HTTP_REQUEST_QUERY_PARAMS,
            credentials_provider=auth.AwsCredentialsProvider.new_static(
                frozen.access_key, frozen.secret_key, frozen.token
            ),
            region=scope[2],
            service="s3",
            signed_body_value=auth.AwsSignedBodyValue.UNSIGNED_PAYLOAD,
            expiration_in_seconds=lifetime,
            use_double_uri_encode=False,  # S3's rules, as botocore signs for S3
            should_normalize_uri_path=False,
        )
        signer = cls(probe.scheme, probe.netloc, probe.path[: -len(_PROBE_KEY)], config)
        # The same URL both ways, apart from the time and the signature: else botocore.
        mine = urlsplit(signer.sign(_PROBE_KEY, None))
        theirs = {k: v for k, v in params.items() if k not in ("X-Amz-Date", "X-Amz-Signature")}
        ours = dict(parse_qsl(mine.query, keep_blank_values=True))
        if (
            mine.path != probe.path
            or {k: v for k, v in ours.items() if k not in ("X-Amz-Date", "X-Amz-Signature")}
            != theirs
        ):
            raise _Unsupported("the runtime's URL differs from botocore's")
        return signer

    def sign(self, key: str, version: str | None) -> str:
        """The pre-signed URL of ``key``."""
        path = self.prefix + quote_key(key)
        if version:
            path += "?versionId=" + quote(version, safe="-_.~")
        request = self._http.HttpRequest("GET", path, self._http.HttpHeaders([("Host", self.host)]))
        self._auth.aws_sign_request(request, self.config).result()
        signed: str = request.path
        return self.origin + signed
