"""The procedural video engine shared by both looks of the synthetic generator.

The toy look (:mod:`ovsnet.data.synthetic`, whose writer and CLI also make photo videos) and the photo look
(:mod:`ovsnet.data.photo_videos`, which imports nothing of the toy look) both build on it: ``config`` (both looks' settings and the argument checks), ``motion`` (tracks,
exits, re-entries, crossings, camera), ``outlines`` (the deforming star outline) and ``render`` (drawing a
planned video of any look, occlusion statistics).
"""
