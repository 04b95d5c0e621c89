"""Copy a ClickHouse database between two servers (see cli.py for the interface)."""
