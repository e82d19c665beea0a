"""``python -m snnsim``: the ``snnsim`` command (see :mod:`snnsim.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
