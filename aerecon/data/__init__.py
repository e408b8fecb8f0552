from aerecon.data.datamodule import AudioDataModule, DemoDataModule, assign_split

__all__ = ["AudioDataModule", "DemoDataModule", "assign_split"]
