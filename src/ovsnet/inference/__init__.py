"""ovsnet.inference."""
