"""The root of every error bcfl reports to a user.

Each concern defines its own subclasses; the CLI turns any of them into one clean line.
"""


class BcflError(Exception):
    """An error whose message is a complete, one-line explanation for the user."""
