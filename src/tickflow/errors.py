"""Errors worded for the person at the terminal: one sentence, what went wrong and what to do."""


class TickflowError(RuntimeError):
    """Raised at the boundary where the cause is known; the CLI prints it without a traceback."""


class StackError(TickflowError):
    """The local stack (or what it provides: a password, a tool, a server setting) is missing or wrong."""
