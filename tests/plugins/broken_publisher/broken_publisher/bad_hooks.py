"""A plugin whose hook implementation asks for an argument the hook does not have."""

from publisher_core import hookimpl


@hookimpl
def publish(spec, source, bucket_name):  # type: ignore[no-untyped-def]
    raise AssertionError("never called")
