"""User-facing errors: one clear line that names the problem, never a traceback."""


class BridgeEvalError(ValueError):
    """Bad input or configuration; the CLI and Hydra entry points print it as one line."""
