"""Exceptions raised for bad user input.

Every message is one line saying what is wrong and how to fix it; the command
line prints it and exits with code 2.
"""


class AgentgradError(ValueError):
    """Base class for errors caused by invalid user input."""


class ParameterError(AgentgradError):
    """Unknown parameter name, or a value outside the parameter's bounds."""


class GraphError(AgentgradError):
    """Malformed graph description, file or generator argument."""
