"""Putting an SSM pointer back after a failed change, without undoing anyone else's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class PointerMoved(RuntimeError):
    """The pointer changed after this run wrote it: restoring would undo someone's change."""


def restore(
    read: Callable[[str], dict[str, Any] | None],
    write: Callable[..., int],
    *,
    name: str,
    previous: str | None,
    written: dict[str, Any] | None,
    data_type: str = "text",
) -> str:
    """Write ``previous`` back to ``name`` if the pointer still holds the version this run
    wrote (``written``: PutSsmParameterOperator's result); say what was done."""
    if not written or not written.get("changed"):
        return f"{name} was not changed by this run: nothing to restore"
    if not previous:
        return f"{name} had no value before this run: nothing to restore to"
    current = read(name)
    if current is None or current["Version"] != written["version"]:
        raise PointerMoved(
            f"{name} changed after this run wrote version {written['version']} "
            f"(now {current['Version'] if current else 'gone'}): not restoring {previous}; check the fleet by hand"
        )
    version = write(name, previous, data_type=data_type, overwrite=True)
    return f"{name} restored to {previous} (version {version})"
