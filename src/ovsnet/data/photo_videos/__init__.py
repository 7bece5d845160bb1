"""Photo-realistic synthetic videos: the ``style="photo"`` mode of :mod:`ovsnet.data.synthetic`.

Models trained only on the toy videos (flat saturated patterns on cloudy backgrounds) fail on videos of real
objects. This mode keeps the toy generator's motion planning, occlusions, leave-and-re-enter events,
distractors and DAVIS output, and changes what the frames look like:

* backgrounds are real photographs (random crops larger than the frame) seen through a camera that pans,
  drifts and zooms across them, with motion blur when the camera moves fast;
* objects are textured with crops of other photographs (each limb carries its own patch of texture, so the
  texture moves with it) and shaded (rim darkening, a directional light, a soft drop shadow, soft edges);
* shapes are articulated and thin, not only stars and blobs: bipeds and quadrupeds (a torso with 2-4 jointed
  limbs swinging in a gait, a head, a tail), branching plant-like shapes with thin swaying twigs, outlines with
  1-3 holes that pulse, crescents whose opening changes, and the toy star outline;
* lighting drifts over time (gain, colour temperature, a moving light gradient, a vignette), objects moving
  fast are motion-blurred (their annotation stays the sharp mask at that frame), and sensor noise is added.

Photos come from scikit-image's sample images shipped inside its wheel (no download); validation videos
take their background and every object texture from the validation photos only, so a model is scored on
photographs it never saw in training. The photos, their licences and the split are in
:mod:`ovsnet.data.photo_videos.photos`.

One job per module: ``photos`` (photographs, licences, split), ``shapes`` (kinematic shapes and
rasterising), ``bodies`` (the shape families), ``plan`` (camera view, textures, actors) and ``render``
(drawing frames). The look's settings (:class:`PhotoConfig`), the motion planner and the renderer it builds on
are :mod:`ovsnet.data.procedural`'s, shared with the toy look; nothing here imports :mod:`ovsnet.data.synthetic`.

Use it through the synthetic generator::

    ovsnet-synthetic --out data/synthetic_photo --style photo --sequences 10 --frames 40 --size 240x427
    python train.py data=synthetic_photo
"""

from ovsnet.data.photo_videos.photos import PHOTO_SPLITS, PHOTOS, Photo, load_photo, photo_names
from ovsnet.data.photo_videos.plan import make_photo_video
from ovsnet.data.photo_videos.render import PhotoVideo
from ovsnet.data.procedural.config import KINDS, PhotoConfig

__all__ = [
    "KINDS",
    "PHOTOS",
    "PHOTO_SPLITS",
    "Photo",
    "PhotoConfig",
    "PhotoVideo",
    "load_photo",
    "make_photo_video",
    "photo_names",
]
