"""A plugin whose import fails, as one with a missing dependency would."""

import publisher_core_missing_dependency  # noqa: F401
