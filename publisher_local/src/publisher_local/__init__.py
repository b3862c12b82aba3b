"""publisher_local: the ``local`` publisher, results under a root directory on this machine.

Registered in the entry-point group ``publisher_core.publishers`` as ``local``; this
module is the pluggy plugin. It is the reference publisher: small, complete, and the
example to copy when writing your own.
"""

from ._plugin import (
    LocalParams,
    LocalResult,
    LocalSettings,
    default_root,
    describe_result,
    plan_publish,
    publish,
    publisher_info,
    validate_spec,
)

__all__ = [
    "LocalParams",
    "LocalResult",
    "LocalSettings",
    "default_root",
    "describe_result",
    "plan_publish",
    "publish",
    "publisher_info",
    "validate_spec",
]
