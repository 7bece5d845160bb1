"""The bundled photographs, their licences and the train / val split (the one place it is defined).

Photos come from scikit-image's sample images shipped inside its wheel (no download; the functions that need
``pooch`` are never called). The split lives in :data:`PHOTO_SPLITS` and nowhere else: validation videos
take their background and every object texture from the validation photos only, so a model is scored on
photographs it never saw in training. Licences, as stated by the docstrings of the ``skimage.data`` functions
in scikit-image 0.26 (the installed package's ``skimage/data/README.txt`` lists no licences):

=====================  ======  ==================================================================  =====
photo (skimage.data)   colour  licence (source)                                                    split
=====================  ======  ==================================================================  =====
astronaut              RGB     public domain, no known copyright restrictions (NASA Great Images)  train
coffee                 RGB     CC0 (photographer Rachel Michetti, Pikolo Espresso Bar)              train
hubble_deep_field      RGB     public domain (NASA / HubbleSite, "may be freely used")              train
immunohistochemistry   RGB     no known copyright restrictions (CMMI)                               train
camera                 grey    CC0 (photographer Lav Varshney)                                      train
grass                  grey    CC0 (DeviantArt "Grass 01" by linolafett)                            train
gravel                 grey    CC0 (CC0Textures "Gravel04")                                         train
coins                  grey    no known copyright restrictions (Brooklyn Museum collection)         train
chelsea                RGB     CC0 (photographer Stefan van der Walt)                               val
rocket                 RGB     public domain (SpaceX photo released into the public domain)         val
retina                 RGB     CC0 1.0 (Mikael Häggström, Wikimedia Commons)                        val
brick                  grey    CC0 (CC0Textures "Bricks25")                                         val
=====================  ======  ==================================================================  =====

Grey photos are tinted (grass green, brick red, ...); ``retina`` is cropped to the inside of the fundus disc.
Left out: ``stereo_motorcycle`` (Middlebury 2014; the docstring states no licence), ``moon``, ``page``,
``colorwheel``, ``logo`` (no licence stated or not photographs), ``clock``, ``cell``, ``text``,
``microaneurysms``, ``horse``, ``checkerboard`` (nearly blank, tiny or not photographs) and every image that
scikit-image downloads on demand.

"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from ovsnet.data.io import DataError


@dataclass(frozen=True)
class Photo:
    """One bundled photograph: its ``skimage.data`` function, licence, usable region and tint (grey photos)."""

    name: str  # the skimage.data function that returns it
    file: str  # its file inside the installed skimage/data folder (read directly: no skimage.io import)
    licence: str
    box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)  # x0, y0, x1, y1 fractions worth using
    tint: tuple[float, float, float] | None = None  # RGB gains that colour a grey photo


PHOTOS: dict[str, Photo] = {
    p.name: p
    for p in (
        Photo("astronaut", "astronaut.png", "public domain (NASA Great Images)"),
        Photo("rocket", "rocket.jpg", "public domain (SpaceX)"),
        Photo("hubble_deep_field", "hubble_deep_field.jpg", "public domain (NASA / HubbleSite)"),
        Photo("immunohistochemistry", "ihc.png", "no known copyright restrictions (CMMI)"),
        Photo("camera", "camera.png", "CC0 (Lav Varshney)", tint=(1.0, 0.97, 0.92)),
        Photo("grass", "grass.png", "CC0 (linolafett, DeviantArt)", tint=(0.62, 0.86, 0.38)),
        Photo("gravel", "gravel.png", "CC0 (CC0Textures Gravel04)", tint=(0.9, 0.82, 0.7)),
        Photo(
            "coins", "coins.png", "no known copyright restrictions (Brooklyn Museum)", tint=(0.95, 0.78, 0.5)
        ),
        Photo("chelsea", "chelsea.png", "CC0 (Stefan van der Walt)"),
        Photo("coffee", "coffee.png", "CC0 (Rachel Michetti)"),
        Photo(
            "retina", "retina.jpg", "CC0 1.0 (Mikael Häggström, Wikimedia Commons)", box=(0.2, 0.2, 0.8, 0.8)
        ),
        Photo("brick", "brick.png", "CC0 (CC0Textures Bricks25)", tint=(0.86, 0.55, 0.42)),
    )
}
#: The one place the photo split is defined: validation videos never use a training photo, and vice versa.
PHOTO_SPLITS: dict[str, tuple[str, ...]] = {
    "train": (
        "astronaut",
        "coffee",
        "hubble_deep_field",
        "immunohistochemistry",
        "camera",
        "grass",
        "gravel",
        "coins",
    ),
    "val": ("chelsea", "rocket", "retina", "brick"),
}


def photo_names(split: str) -> tuple[str, ...]:
    """The photographs a ``train`` or ``val`` video may use (backgrounds and object textures alike)."""
    if split not in PHOTO_SPLITS:
        raise DataError(f"photo split must be one of {sorted(PHOTO_SPLITS)}, got {split!r}")
    return PHOTO_SPLITS[split]


@functools.cache
def load_photo(name: str) -> np.ndarray:
    """The usable region of a bundled photo as read-only uint8 RGB (grey photos as three equal channels).

    Cached per process: a dataset reads each photo once.
    """
    if name not in PHOTOS:
        raise DataError(f"unknown photo {name!r}; bundled photos: {sorted(PHOTOS)}")
    from importlib.resources import files

    from PIL import Image

    try:
        with Image.open(files("skimage.data").joinpath(PHOTOS[name].file)) as photo:
            image = np.asarray(photo.convert("RGB"))
    except (ModuleNotFoundError, OSError) as exc:
        raise DataError(
            f"photo {name!r} not found in scikit-image's bundled data ({exc}); pip install scikit-image"
        ) from exc
    h, w = image.shape[:2]
    x0, y0, x1, y1 = PHOTOS[name].box
    image = np.ascontiguousarray(image[round(y0 * h) : round(y1 * h), round(x0 * w) : round(x1 * w)])
    image.setflags(write=False)
    return image


def shrunk(photo: np.ndarray, minification: float) -> tuple[np.ndarray, float]:
    """The photo shrunk (area filter) when it would be sampled at more than ~1.4 source pixels per pixel."""
    if minification <= 1.4:
        return photo, 1.0
    factor = minification / 1.1
    h, w = photo.shape[:2]
    size = (max(8, round(w / factor)), max(8, round(h / factor)))
    return cv2.resize(photo, size, interpolation=cv2.INTER_AREA), w / size[0]


def gains(rng: np.random.Generator, name: str, jitter: float) -> np.ndarray:
    """Per-channel colour gains of a photo: its tint (grey photos) times a random jitter."""
    tint = np.array(PHOTOS[name].tint or (1.0, 1.0, 1.0), np.float32)
    return (tint * (1.0 + jitter * rng.standard_normal(3)).astype(np.float32) * rng.uniform(0.9, 1.1)).astype(
        np.float32
    )
