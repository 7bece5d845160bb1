"""ovsnet.metrics."""
