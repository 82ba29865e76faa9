"""Integration tests use the shared ``mesh`` fixture of tests/conftest.py."""
