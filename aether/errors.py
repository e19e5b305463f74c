"""The one way Aether fails: an AetherError, turned into a one-line exit."""


class AetherError(Exception):
    """A problem the operator can fix; its message is the whole story.

    The message says what is wrong, where, and what to do next. Task
    wrappers print it as one line and exit non-zero, without a traceback.
    """


class InventoryError(AetherError):
    """hosts.yml is wrong: the message names the file and the key path."""

    def __init__(self, source, path, problem):
        self.source, self.path, self.problem = source, path, problem
        where = f"{source}: {path}" if path else str(source)
        super().__init__(f"{where}: {problem}")


class RemoteError(AetherError):
    """A remote step failed; ``detail`` holds the last lines it printed."""

    def __init__(self, message, detail=""):
        super().__init__(message)
        self.detail = detail
