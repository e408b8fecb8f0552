"""Errors a user can cause. Entry points print their message instead of a traceback."""


class AereconError(Exception):
    """A problem with the user's input (config, paths, files) that they can fix."""


class AudioError(AereconError):
    """A file that cannot be used as audio; the message says why."""


class DataError(AereconError):
    """A dataset that cannot be used as configured (no files, empty split, ...)."""


class ConfigError(AereconError):
    """A config value that cannot work; the message names the key and a valid example."""
