"""ovsnet.lightning: the LightningModule, DataModules and callbacks that wire the library for training."""

from ovsnet.lightning.datamodules import COCODataModule, DAVISDataModule
from ovsnet.lightning.module import OVSNetModule, load_model_from_checkpoint

__all__ = ["COCODataModule", "DAVISDataModule", "OVSNetModule", "load_model_from_checkpoint"]
