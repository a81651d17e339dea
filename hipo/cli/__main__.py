"""``python -m hipo.cli``: the same as the ``hipo`` console script."""

import sys

from hipo.cli.main import main

sys.exit(main())
