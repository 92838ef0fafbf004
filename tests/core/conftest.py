"""The core and the store: settings, both databases, migrations."""
