"""Errors the engine raises. Each carries one sentence a user can act on."""

from __future__ import annotations


class EngineError(Exception):
    """Base class: the message is one clear sentence, shown as is."""


class ModelError(EngineError):
    """A model could not be found, read or used."""


class CheckpointError(EngineError):
    """Checkpoint bytes are corrupt or do not fit the run they should continue."""


class DecodeError(EngineError):
    """The VAE produced no usable image (NaN or all black)."""


class NonFiniteError(EngineError):
    """A latent or prediction became NaN or infinite during sampling."""

    def __init__(self, message: str, step_index: int) -> None:
        super().__init__(message)
        self.step_index = step_index


class OutOfMemoryError(EngineError):
    """The device ran out of memory; the message carries advice."""

    def __init__(self, message: str, step_index: int | None = None) -> None:
        super().__init__(message)
        self.step_index = step_index
