from aerecon.data.datamodule import AudioDataModule, DemoDataModule
from aerecon.data.segments import assign_split

# The data configs' targets by what they read: a stored config's `data._target_` is compared with these.
FOLDER = "aerecon.data.AudioDataModule"
DEMO = "aerecon.data.DemoDataModule"
STREAM = "aerecon.data.stream.StreamDataModule"

__all__ = ["DEMO", "FOLDER", "STREAM", "AudioDataModule", "DemoDataModule", "assign_split"]
