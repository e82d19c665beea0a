"""Exceptions raised by snnsim. All derive from ValueError so callers may catch either."""


class SnnsimError(ValueError):
    """Base class of snnsim's errors."""


class ModelError(SnnsimError):
    """A network description or model file violates the format (the message names the node
    and field)."""


class InputError(SnnsimError):
    """Input data (images, frames or events) does not fit the model (the message names the
    field or argument)."""


class LimitError(SnnsimError):
    """A run, stream step, event binning or compiled network would need more memory than the
    engine's memory limit (see :func:`snnsim.set_memory_limit`), or more threads than allowed;
    raised before anything is allocated (the message names the argument and the sizes)."""


class NumericError(SnnsimError):
    """A value left its range while a network ran: an int32 overflow in integer precision
    (naming the node and the step) or an infinite/NaN float32 value (naming the node)."""
