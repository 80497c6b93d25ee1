"""The one rule for tenant and knowledge-base names, everywhere a name enters.

Letters, digits, '.', '-' and single '_', starting and ending with a letter or
digit. The same rule makes a name safe as a path segment (no '/', no '..') and
as part of a Chroma collection name: forbidding "__" makes "t_<tenant>__<kb>"
reversible, so two (tenant, kb) pairs never share a collection. Every way in
— CLI options, admin ``?tenant=``, settings, keys — checks with
:func:`validate_tenant`, so a name refused in one place is refused in all.
"""

from __future__ import annotations

import re

from .errors import InvalidNameError

__all__ = ["validate_name", "validate_tenant", "NAME_RULE", "SEPARATOR"]

_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
_LIMITS = {"tenant": 128}
_DEFAULT_LIMIT = 256
#: Joins tenant and knowledge base in a collection name, so it may appear in neither.
SEPARATOR = "__"
#: How error messages state the rule.
NAME_RULE = "use letters, digits, '.', '-' and single '_', starting and ending with a letter or digit"


def validate_name(value: object, what: str) -> str:
    """``value`` if it is a valid ``what`` name (e.g. "tenant", "knowledge base"), else InvalidNameError."""
    limit = _LIMITS.get(what, _DEFAULT_LIMIT)
    if not isinstance(value, str) or not value:
        raise InvalidNameError(f"{what} name must not be empty")
    if len(value) > limit:
        raise InvalidNameError(f"{what} name {value[:40]!r}… is longer than {limit} characters")
    if not _NAME.fullmatch(value) or SEPARATOR in value or ".." in value:
        raise InvalidNameError(f"invalid {what} name {value!r}: {NAME_RULE} (e.g. 'acme')")
    return value


def validate_tenant(value: object) -> str:
    """``value`` if it is a valid tenant name, else InvalidNameError (a ValueError)."""
    return validate_name(value, "tenant")
