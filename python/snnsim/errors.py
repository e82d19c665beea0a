"""Exceptions raised by snnsim. All derive from ValueError so callers may catch either."""


class SnnsimError(ValueError):
    """Base class of snnsim's errors."""


class ModelError(SnnsimError):
    """A network description or model file violates the format (the message names the node
    and field)."""


class InputError(SnnsimError):
    """Input data (images, frames or events) does not fit the model (the message names the
    field or argument)."""
