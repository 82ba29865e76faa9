"""The ops service."""
