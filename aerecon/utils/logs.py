"""Third-party messages that a normal run should not print: advertisements, notices about
aerecon's own deliberate choices, and deprecations inside Lightning that users cannot act on."""

import logging
import threading
import warnings

DROPPED = (
    "💡 Tip:",  # Lightning's advertisements for its cloud services
    "Trainer already configured with model summary callbacks",  # aerecon configures its own, on purpose
)


def _writer_thread_failed(args: threading.ExceptHookArgs) -> None:
    # TensorBoard's event writer thread prints its error, then hands it to the main thread, whose
    # next write raises it again; the entry point reports it there, as one line (e.g. a full disk).
    if type(args.thread).__name__ != "_AsyncWriterThread":
        threading.__excepthook__(args)


class _DropMessages(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(DROPPED)


def silence_third_party() -> None:
    """Idempotent; called by every entry point before Lightning prints anything."""
    threading.excepthook = _writer_thread_failed
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessages) for f in logger.filters):
            logger.addFilter(_DropMessages())
    # LitData (data=stream) says at INFO how much disk its chunk cache may use, once per dataset;
    # and its datasets shard themselves across loader workers, which Lightning cannot know.
    logging.getLogger("litdata").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r"Your `IterableDataset` has `__len__` defined")
    # Lightning 2.6's pytree helper still builds torch's deprecated LeafSpec (fixed upstream, not ours to change).
    warnings.filterwarnings(
        "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning
    )
    # Every new run gets a folder of its own, so the only run that finds its checkpoints folder
    # full is a resumed one, continuing where it should.
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
