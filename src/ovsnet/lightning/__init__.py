"""ovsnet.lightning."""
