"""`python -m clickhouse_migrate`."""

import sys

from .cli import main

sys.exit(main())
