"""Exceptions raised by streamlstm.  Every user-facing error says what was wrong
(argument, position, value) and what to do about it."""


class StreamlstmError(Exception):
    """Base class of every error streamlstm raises on purpose."""


class InputError(StreamlstmError, ValueError):
    """Bad input to a public call: wrong shape, dtype, value or argument."""


class CheckpointError(StreamlstmError, ValueError):
    """A checkpoint file that is corrupt, truncated, foreign or of another version."""


class BackendUnavailableError(StreamlstmError, RuntimeError):
    """The requested backend cannot run here (for example no CUDA GPU)."""
