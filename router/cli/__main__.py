"""``python -m router.cli``: the same as the ``residency-router`` script."""

import sys

from router.cli.main import main

sys.exit(main())
