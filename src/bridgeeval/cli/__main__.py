"""``python -m bridgeeval.cli``."""

import sys

from bridgeeval.cli import main

sys.exit(main())
