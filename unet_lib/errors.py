"""The one exception type for a user's mistake (bad file, bad argument).

The CLI prints its message as a single line and exits with code 2; notebooks show it as is.
"""


class InputError(ValueError):
    """A bad input, with a message that names the file or argument and what was expected."""
