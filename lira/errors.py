"""Exceptions a user sees. Light module: the CLI imports it at start-up."""


class StageFailed(RuntimeError):
    """A stage refused to continue (e.g. a data gate failed); the message is the report."""


def did_you_mean(word: str, choices) -> str:  # any iterable of names
    """``"; did you mean 'lr'?"`` for the closest of ``choices`` to a mistyped ``word`` (difflib), or ``""``."""
    import difflib

    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
