"""Packaged bot configurations (TOML)."""
