"""publisher_s3: the ``s3`` publisher for AWS S3 and S3-compatible stores.

Registered in the entry-point group ``publisher_core.publishers`` as ``s3``. This release
declares the spec and validates it; publishing arrives with the S3 publisher proper.
boto3 is imported only inside the hooks that talk to S3, never at import time.
"""

from ._plugin import S3Params, S3Result, publisher_info, validate_spec

__all__ = ["S3Params", "S3Result", "publisher_info", "validate_spec"]
