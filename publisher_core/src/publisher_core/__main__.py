"""``python -m publisher_core``: the same as the ``publisher`` command."""

import sys

from .cli import run

sys.exit(run())
