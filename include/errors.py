"""The one error for bad input, whichever DAG received it."""

from __future__ import annotations


class InvalidRequest(ValueError):
    """Params (or a name built from them) that fail a domain check; nothing has been
    called yet, so nothing was changed. The message names the param and the rule."""
