"""Errors that the command line reports as one clear line (no traceback)."""


class DvnError(Exception):
  """Base class: a user-facing error whose message says what and how to fix."""


class ConfigError(DvnError):
  """A config value is missing, of the wrong type or out of range."""


class DataError(DvnError):
  """A dataset file or folder is missing, unreadable or malformed."""


class CheckpointError(DvnError):
  """A checkpoint is missing, damaged or does not match the config."""
