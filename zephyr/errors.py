"""User-facing errors: the CLI prints their message (file, line, field, problem) without a traceback."""


class ZephyrError(ValueError):
    """Base of every error caused by the user's input rather than by a bug."""


class ConfigError(ZephyrError):
    """A recipe or command line names an unknown field or gives a value of the wrong type."""


class DataError(ZephyrError):
    """A data file or row that cannot be read: the message names the file, line (or row) and field."""

    def __init__(self, problem: str, path: str | None = None, line: int | None = None, field: str | None = None):
        self.path, self.line, self.field, self.problem = path, line, field, problem
        where = ":".join(str(p) for p in (path, line) if p is not None)
        what = f"field '{field}': " if field else ""
        super().__init__(f"{where}: {what}{problem}" if where else f"{what}{problem}")


class DiskFull(ZephyrError):
    """The disk filled up while writing `path`; what was written before stays, and the command can be rerun."""

    def __init__(self, path: str, kept: str):
        self.path = path
        super().__init__(f"no space left on {path} (the disk is full, errno 28): {kept}; free some space (or "
                         "write to another disk) and run the command again")
