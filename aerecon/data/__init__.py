from aerecon.data.datamodule import AudioDataModule, DemoDataModule
from aerecon.data.segments import assign_split

__all__ = ["AudioDataModule", "DemoDataModule", "assign_split"]
