"""The composition root: settings, database (embedded or external), HTTP API and CLI."""
