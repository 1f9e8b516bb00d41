"""Embedded storage: SQLite in WAL mode under the site's `storage.path`."""
