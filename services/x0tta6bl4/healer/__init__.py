"""The healer service."""
