"""Exception types raised by the runtime."""


class LgnError(ValueError):
    """Base class of every error the runtime raises for bad input or files."""


class ModelFileError(LgnError):
    """A model file is unreadable, malformed or violates an invariant.

    `field` names the part of the file that failed (a header key, a tensor
    name or a graph attribute), so callers can report it without parsing the
    message.
    """

    def __init__(self, field: str, problem: str, expected=None, actual=None):
        self.field = field
        self.expected = expected
        self.actual = actual
        message = f"invalid model file: {field}: {problem}"
        if expected is not None or actual is not None:
            message += f" (expected {expected}, got {actual})"
        super().__init__(message)


class InputError(LgnError):
    """Features passed to predict or scores have the wrong shape, type or values."""
