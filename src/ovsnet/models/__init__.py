"""ovsnet.models."""
