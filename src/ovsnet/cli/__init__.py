"""Command-line programs and entry-point helpers: the video CLI, sweep summaries, the scripted train-then-
evaluate stages and the one-line error reporting of ``train.py`` / ``evaluate.py``.

The top layer: it may import every library layer, and no library module imports it.
"""
