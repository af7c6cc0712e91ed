"""Errors a user can cause, each with a message that names the fix."""


class InvbenchError(Exception):
    """Base class; the CLI turns these into a message and exit code 2."""


class MissingDataError(InvbenchError):
    """A real-data task cannot find its files under the data root."""


class ReconstructionError(InvbenchError):
    """An attack returned reconstructions of the wrong type, shape, or with NaN/inf values."""


class QueryBudgetExceeded(InvbenchError):
    """An attack asked the released model for more outputs than the suite's query budget."""


class AccessViolation(InvbenchError):
    """An attack reached the target past what its access level releases."""
