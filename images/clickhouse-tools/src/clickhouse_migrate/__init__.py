"""Copy a ClickHouse database between two servers (see cli.py for the interface)."""

import os

# clickhouse-driver builds two Date lookup tables of 146,000 entries each when imported (a third of the
# process start); the tool reads a handful of Date values at most, so let the driver fill them on demand
# (its own switch; a value that is not `start:end` makes the tables fully lazy, with the same results).
os.environ.setdefault("CLICKHOUSE_DRIVER_LASY_DATE_LUT", "lazy")
