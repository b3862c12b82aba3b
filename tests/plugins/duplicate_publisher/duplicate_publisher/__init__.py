"""A second distribution claiming the Type ``local``."""

from publisher_local import describe_result, publish, publisher_info, validate_spec

__all__ = ["describe_result", "publish", "publisher_info", "validate_spec"]
