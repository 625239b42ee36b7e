"""The one exception type that reaches the user as a message instead of a traceback."""


class SeqgenError(Exception):
    """A problem with the user's input or environment, explained in one line.

    The CLI prints `Error: <message>` and exits with `exit_code`; library callers can catch it.
    """

    exit_code = 1

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class Terminated(BaseException):
    """SIGTERM, raised wherever the program is (see `cli.terminate_as_interrupt`), so that what
    it was writing is cleaned up as on Ctrl-C; the CLI exits 143."""
