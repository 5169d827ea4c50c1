"""The one exception type the CLI turns into a one-line message instead of a traceback."""


class UserError(ValueError):
    """Bad input from the user (file, option, dataset): the message says what and how to fix it."""
