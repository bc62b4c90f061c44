"""The rules a trigger form's params are checked by, and their refusals as one line.

Airflow checks a run's conf against each param's JSON schema in the api-server (HTTP 400
before any run exists); a refusal names the param and then prints jsonschema's whole error,
the schema and the instance over a dozen lines. The UI dialog, the CLI and the README
promise one line, so both the api-server plugin (``bp_api``) and the CLI say it with
:func:`one_line_refusal`.
"""

from __future__ import annotations

import ast
import re

#: Put before a pattern's body: no line break anywhere in the value (see form_pattern).
NEWLINE_GUARD = r"(?![\s\S]*\n)"
_REFUSAL = re.compile(r"Invalid input for param (?P<name>[^:\s]+): (?P<rule>[^\n]*)")
_SCHEMA = re.compile(r"in schema[^:]*:\n(?P<schema>.*?)\n\s*\nOn instance", re.DOTALL)


def form_pattern(pattern: str) -> str:
    """A value pattern as the trigger form and the REST API must check it: the whole value,
    and no line break anywhere. JSON-schema patterns are searched, and both Python's and
    ECMA-262's ``$`` match before a final newline, so ``^x$`` alone accepts ``"x\\n"``."""
    body = pattern.removeprefix("^").removesuffix("$")
    return rf"^{NEWLINE_GUARD}(?:{body})$"


def readable_pattern(pattern: str) -> str:
    """A :func:`form_pattern` as people wrote it (``^(?:body)$`` without the guard)."""
    prefix = f"^{NEWLINE_GUARD}(?:"
    if pattern.startswith(prefix) and pattern.endswith(")$"):
        return "^" + pattern[len(prefix) : -2] + "$"
    return pattern


def one_line_refusal(message: str) -> str:
    """Airflow's refusal of a param as ``param <name>: <rule> (<what the param is for>)``.

    A message that isn't a param refusal (or is one line already) comes back as its first
    line, so calling this twice changes nothing."""
    found = _REFUSAL.search(message)
    if not found:
        return message.strip().split("\n", 1)[0]
    rule = found["rule"].strip()
    for quoted in re.findall(r"'((?:[^'\\]|\\.)*)'", rule):
        pattern = quoted.replace("\\\\", "\\")
        if pattern.startswith(f"^{NEWLINE_GUARD}"):
            rule = rule.replace(f"'{quoted}'", f"the pattern {readable_pattern(pattern)}")
    about = _what_it_is_for(message)
    return f"param {found['name']}: {rule}" + (f" ({about})" if about else "")


def _what_it_is_for(message: str) -> str:
    """The param's description from the schema jsonschema printed (a Python dict literal)."""
    found = _SCHEMA.search(message)
    if not found:
        return ""
    try:
        schema = ast.literal_eval(found["schema"].strip())
    except (ValueError, SyntaxError):
        return ""
    if not isinstance(schema, dict):
        return ""
    about = schema.get("description_md") or schema.get("description") or schema.get("title") or ""
    return " ".join(str(about).split())
