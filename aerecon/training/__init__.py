"""Training: callbacks, checkpoint reading and writing, the run folder and resume."""
