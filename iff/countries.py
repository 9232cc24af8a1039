"""ISO 3166-1 alpha-3 country codes (from the pycountry package's copy of the ISO standard)."""

from __future__ import annotations

import functools
from typing import Annotated

import pycountry
from pydantic import AfterValidator

from iff.errors import did_you_mean


@functools.cache
def iso3_codes() -> dict[str, str]:
    """All ISO 3166-1 alpha-3 codes mapped to their short English names."""
    return {c.alpha_3: c.name for c in pycountry.countries}


def check_iso3(code: str) -> str:
    """Return ``code`` if it is an ISO 3166-1 alpha-3 code.

    Raises
    ------
    ValueError
        Naming the code, with a hint when a code is close (case errors are pointed out too).
    """
    codes = iso3_codes()
    if code in codes:
        return code
    if isinstance(code, str) and code.upper() in codes:
        raise ValueError(f"'{code}' must be upper case: '{code.upper()}' ({codes[code.upper()]})")
    hint = did_you_mean(code, codes)
    raise ValueError(f"'{code}' is not an ISO 3166-1 alpha-3 country code{hint}")


#: A pydantic field type: an ISO 3166-1 alpha-3 code, checked with hints.
ISO3 = Annotated[str, AfterValidator(check_iso3)]
