"""Bounded, storable input types: every text field has a maximum length, and text PostgreSQL
cannot store (NUL, lone surrogates) or that is unsafe to show (other control characters) is
refused at the command boundary with a field-level message."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

# C0 controls except tab, newline and carriage return; DEL; lone UTF-16 surrogates.
UNSAFE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def storable(value: str) -> str:
    """Refuse text that PostgreSQL cannot store or that hides control characters."""
    match = UNSAFE.search(value)
    if match is not None:
        raise ValueError(
            f"contains a character that cannot be stored (U+{ord(match.group()):04X} at "
            f"position {match.start()}); remove control characters"
        )
    return value


def _bounded(max_length: int, min_length: int = 1) -> StringConstraints:
    return StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length)


# Limits are documented in the README ("Input bounds").
Name = Annotated[str, _bounded(200), AfterValidator(storable)]
"""A person's or a thing's name, an email, a registration number: 1-200 characters."""
Title = Annotated[str, _bounded(300), AfterValidator(storable)]
"""A title: 1-300 characters."""
Text = Annotated[str, _bounded(10_000), AfterValidator(storable)]
"""Free text (descriptions, notes, messages, reasons): 1-10,000 characters."""
Address = Annotated[str, _bounded(2_000, min_length=0), AfterValidator(storable)]
"""A postal address or a URL: up to 2,000 characters."""
Label = Annotated[str, _bounded(200, min_length=0), AfterValidator(storable)]
"""A short optional label: up to 200 characters."""
Ref = Annotated[
    str,
    _bounded(100),
    AfterValidator(storable),
    Field(description="A record's UUID or its number (INC0000001)."),
]
"""A reference to a record by UUID or human number."""
