"""Exceptions a user sees. Light module: the CLI imports it at start-up."""


class StageFailed(RuntimeError):
    """A stage refused to continue (e.g. a data gate failed); the message is the report."""
