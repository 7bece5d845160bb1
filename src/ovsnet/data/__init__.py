"""ovsnet.data."""
