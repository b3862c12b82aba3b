"""publisher_s3: the ``s3`` publisher for AWS S3 and S3-compatible stores.

Registered in the entry-point group ``publisher_core.publishers`` as ``s3``; this module
is the pluggy plugin. boto3 is imported only inside the hooks that talk to S3, so
``publisher list`` and ``publisher validate`` never import it.
"""

from ._plugin import describe_result, plan_publish, publish, publisher_info, validate_spec
from ._spec import S3Params, S3Result, S3Settings

__all__ = [
    "S3Params",
    "S3Result",
    "S3Settings",
    "describe_result",
    "plan_publish",
    "publish",
    "publisher_info",
    "validate_spec",
]
