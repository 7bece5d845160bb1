"""ovsnet.inference.settings: one place for the inference settings, their defaults and their precedence."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from ovsnet.data.io import DataError
from ovsnet.inference.settings import (
    FLAT_KEYS,
    SECTIONS,
    InferenceSettings,
    dotted,
    nested,
    resolve,
)
from tests.commands import modules_loaded_by

ROOT = Path(__file__).resolve().parents[1]
FIELDS = {f"{s}.{f.name}" for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)}


def test_every_old_flat_key_maps_to_one_new_key() -> None:
    """The flat names of older checkpoints and manifests cover every setting they could store, one name each
    (``detector``, ``appearance.network_share``, the memory updates, ``grow`` and ``precision`` came after the
    sections: no file stores them flat)."""
    newer = {key for key in FIELDS if key.startswith("detector.")} | {
        "appearance.network_share",
        "appearance.update_every",
        "appearance.update_cells",
        "appearance.update_frames",
        "appearance.grow",
        "appearance.precision",
    }
    assert set(FLAT_KEYS.values()) == set(FIELDS) - newer
    assert len(set(FLAT_KEYS.values())) == len(FLAT_KEYS)


def test_precedence_preset_then_stored_then_overrides() -> None:
    preset = {"name": "x", "flow": {"_target_": "any"}, "reid": {"rho": 2.0, "fraction": 0.5}}
    stored = {"rho_reid": 0.7, "cascade": {"switch_iou": 0.5}}  # an old flat name beside a new section
    overrides = {"cascade.switch_iou": 0.6}
    settings = resolve(preset, stored, overrides)
    assert (settings.reid.rho, settings.reid.fraction, settings.cascade.switch_iou) == (0.7, 0.5, 0.6)
    assert resolve() == InferenceSettings()
    assert resolve({"reid": {"rho": 1.0}}) == resolve(overrides={"reid.rho": 1.0})  # nested = dotted


def test_user_keys_are_checked_and_flat_names_point_to_the_new_key() -> None:
    with pytest.raises(DataError, match=r"inference\.rho_reid was renamed inference\.reid\.rho"):
        resolve(overrides={"rho_reid": 1.0})
    with pytest.raises(DataError, match=r"inference\.use_mga was renamed inference\.mga\.enabled.*=false"):
        resolve({"use_mga": False})
    with pytest.raises(DataError, match="rho_typo"):
        resolve(stored={"reid": {"rho_typo": 1.0}})
    with pytest.raises(ValueError, match=r"inference\.reid\.distance"):
        resolve(overrides={"reid.distance": "max"})
    # the schema's placeholders for the flat names (None) are no values
    assert resolve({"rho_reid": None, "switch_iou": None}) == InferenceSettings()


def test_dotted_and_nested_round_trip() -> None:
    values = dotted({"reid": {"rho": 1.5}, "mga.enabled": False}, "test")
    assert values == {"reid.rho": 1.5, "mga.enabled": False}
    assert nested(values) == {"reid": {"rho": 1.5}, "mga": {"enabled": False}}
    assert dotted({"appearance": None, "bank_size": 8}, "old", map_flat=True) == {
        "appearance.backbone": None,
        "reid.bank_size": 8,
    }


def test_presets_state_only_what_differs_from_the_defaults() -> None:
    """Each conf/inference preset's own values differ from InferenceSettings' defaults (no repeated default)."""
    defaults = dotted(InferenceSettings().to_dict(), "defaults")
    for path in sorted((ROOT / "conf" / "inference").glob("*.yaml")):
        node = OmegaConf.to_container(OmegaConf.load(path))
        values = dotted({k: v for k, v in node.items() if k not in ("defaults", "name", "flow")}, path.name)
        repeated = {k: v for k, v in values.items() if defaults[k] == v}
        assert not repeated, f"{path.name} repeats defaults {repeated}"


def test_settings_import_no_model() -> None:
    """Building and checking settings imports nothing from ovsnet.models (the appearance backbone's name is
    checked where the appearance memory is built)."""
    loaded = modules_loaded_by(
        "import ovsnet.inference.settings as s; s.resolve({'appearance': {'backbone': 'x'}})"
    )
    assert [m for m in loaded if m.startswith("ovsnet.models")] == []
