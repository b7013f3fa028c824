"""User errors: what went wrong and what to do, shown as one line by the CLI."""


class VidganError(Exception):
    """A mistake in the user's input or setup; the CLI prints `error: <message>` and exits."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
