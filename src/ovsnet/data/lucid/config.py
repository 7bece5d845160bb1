"""Every number of the Lucid Data Dreaming recipe as a config value; the defaults are the recipe's
(``shared/notes/lucid-data-dreaming.md``), and Hydra hands the ranges in as lists."""

from __future__ import annotations

from dataclasses import dataclass

BLEND_MODES = ("feather", "seamless", "none")
_RANGE_FIELDS = ("bg_scale_range", "scale_range", "illum_a", "illum_b", "illum_c")
_PROB_FIELDS = (
    "bg_flip_p",
    "bg_affine_p",
    "bg_illumination_p",
    "keep_unselected_p",
    "independent_p",
    "deform_p",
    "rotation_p",
    "flip_p",
    "illumination_p",
)


@dataclass
class LucidConfig:
    """Every parameter of the recipe; ranges are ``(low, high)``, fractions are of the box or image size."""

    # background: objects removed (mask dilated by a disk of ``inpaint_radius`` px), inpainted, cached
    inpaint_radius: int = 7
    inpaint_method: str = "telea"  # cv2.inpaint: "telea" or "ns"
    inpaint_cv_radius: int = 3  # cv2.inpaint's neighbourhood radius
    cache_size: int = 32  # inpainted source frames kept (LRU), per process / DataLoader worker
    bg_flip_p: float = 0.5
    bg_affine_p: float = 0.5  # small affine of the background (not in the notes; 0 = the original recipe)
    bg_rotation_deg: float = 3.0
    bg_scale_range: tuple[float, float] = (0.95, 1.05)
    bg_translation: float = 0.05
    bg_illumination_p: float = 0.5
    # objects: k of N (k uniform in 1..N) move together; the others are kept in place or removed
    keep_unselected_p: float = 0.5
    independent_p: float = 0.0  # probability that the selected objects move separately instead of as a group
    deform_p: float = 0.5
    tps_points: int = 5
    tps_magnitude: float = 0.05  # control points move by up to this fraction of the box width/height
    tps_regularization: float = 1e-3
    erode_px: int = 1  # erosion of a deformed mask
    scale_range: tuple[float, float] = (0.85, 1.15)  # uniform scale of the moved box
    max_translation: float | None = None  # None: anywhere inside the image; else at most this image fraction
    blend: str = "feather"  # "feather" (alpha ramp inside the mask), "seamless" (cv2.seamlessClone), "none"
    blend_width: int = 2
    # global
    rotation_p: float = 0.5
    rotation_deg: float = 30.0  # then cropped to the inscribed rectangle and resized back
    flip_p: float = 0.5
    illumination_p: float = 0.5
    illum_a: tuple[float, float] = (0.97, 1.03)  # x' = a * x**b + c on HSV saturation and value, x in [0, 1]
    illum_b: tuple[float, float] = (0.8, 1.2)
    illum_c: tuple[float, float] = (-0.05, 0.05)
    # safety
    min_object_pixels: int = 16  # a sample is kept when some object has this many pixels (or its full area)
    max_tries: int = 10

    def __post_init__(self) -> None:
        for name in _RANGE_FIELDS:
            value = tuple(float(v) for v in getattr(self, name))
            if len(value) != 2 or value[0] > value[1]:
                raise ValueError(f"LucidConfig.{name} must be (low, high) with low <= high, got {value}")
            setattr(self, name, value)
        for name in _PROB_FIELDS:
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise ValueError(f"LucidConfig.{name} must be a probability, got {getattr(self, name)}")
        if self.blend not in BLEND_MODES:
            raise ValueError(f"LucidConfig.blend must be one of {BLEND_MODES}, got {self.blend!r}")
        if self.inpaint_method not in ("telea", "ns"):
            raise ValueError(
                f"LucidConfig.inpaint_method must be 'telea' or 'ns', got {self.inpaint_method!r}"
            )
        if self.scale_range[0] <= 0 or self.bg_scale_range[0] <= 0:
            raise ValueError("LucidConfig scale ranges must be positive")
        if self.max_tries < 1 or self.cache_size < 0:
            raise ValueError("LucidConfig.max_tries must be >= 1 and cache_size >= 0")
