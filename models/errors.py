"""Errors a user can fix: the CLI prints them as one line."""


class ModelError(Exception):
    """Unknown model, bad setting, or a model that cannot be built as asked."""


class CheckpointError(ModelError):
    """A weights file that is missing, unreadable, unsafe, or does not fit the architecture."""
