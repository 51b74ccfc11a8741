"""Kubernetes quantities ("500m", "128Mi", "1e3"), read exactly.

    parse_quantity("128Mi") -> Fraction(134217728)     (ValueError if invalid)
    check_quantity(obj, key, path, check)   obj[key] as a non-negative
                                            Fraction, or None (reported)
    as_written(value)                       the quantity as the user wrote it

Fractions, no floats, as apimachinery's resource.Quantity; callers round up
to millicores and bytes with math.ceil, as the kubelet does. An invalid
quantity's message guesses the intended one ("12MB" -> "12M").
"""
from __future__ import annotations

import re

from minipod.runtime.api.checker import describe
from minipod.runtime.api.checker import Checker


# A Kubernetes quantity: a decimal number and a suffix, either SI ("m" for
# 1/1000, "k", "M", "G" ... for powers of 1000), binary ("Ki", "Mi", "Gi" ...
# for powers of 1024) or an exponent ("1e3"). apimachinery's
# pkg/api/resource/quantity.go, ParseQuantity.
# (A pattern string: re compiles and caches it on first use, not at import.)
_QUANTITY = (r"([+-]?)(\d+(?:\.\d*)?|\.\d+)"
             r"(?:([KMGTPE]i|[numkMGTPE])|[eE]([+-]?\d+))?")
_SUFFIXES = {"n": (10, -9), "u": (10, -6), "m": (10, -3), "": (10, 0),
             "k": (10, 3), "M": (10, 6), "G": (10, 9), "T": (10, 12),
             "P": (10, 15), "E": (10, 18), "Ki": (2, 10), "Mi": (2, 20),
             "Gi": (2, 30), "Ti": (2, 40), "Pi": (2, 50), "Ei": (2, 60)}
QUANTITY_HELP = ("a number with an optional suffix: m, k, M, G, T, P, E "
                 "(powers of 1000), Ki, Mi, Gi, Ti, Pi, Ei (powers of 1024) "
                 "or an exponent (1e3)")


def parse_quantity(value: str | int | float):
    """The exact value of a Kubernetes quantity, as a ``Fraction``.

    ``"500m"`` -> 1/2, ``"128Mi"`` -> 134217728, ``"1e3"`` -> 1000, ``0.5``
    -> 1/2. Raises ``ValueError`` with a message naming the quantity. Round
    up to whole millicores or bytes with ``math.ceil``, as Kubernetes does.
    """
    from fractions import Fraction
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"expected a quantity such as \"500m\" or "
                         f"\"128Mi\", got {describe(value)}")
    text = value if isinstance(value, str) else repr(value)
    match = re.fullmatch(_QUANTITY, text) if len(text) <= 64 else None
    if match is None:
        message = f'invalid quantity "{text}": must be {QUANTITY_HELP}'
        guess = _quantity_guess(text)
        if guess:
            message += f'; did you mean "{guess}"?'
        raise ValueError(message)
    sign, number, suffix, exponent = match.groups()
    base, power = _SUFFIXES[suffix or ""]
    if exponent is not None:
        power = int(exponent)
        if abs(power) > 30:     # Fraction(10)**10**9 would never finish
            raise ValueError(f'quantity "{text}" is out of range')
    quantity = Fraction(number) * Fraction(base) ** power
    return -quantity if sign == "-" else quantity


def _quantity_guess(text: str) -> str | None:
    """A valid quantity close to ``text``: "12MB" -> "12M", "1gi" -> "1Gi"."""
    match = re.fullmatch(r"([+-]?[0-9.]+) ?([A-Za-z]+)", text.strip())
    if not match:
        return None
    number, suffix = match.groups()
    fixes = {}
    for letter in "KMGTPE":
        decimal = "k" if letter == "K" else letter
        low = letter.lower()
        fixes.update({low + "b": decimal, low + "i": letter + "i",
                      low + "ib": letter + "i"})
        if letter not in "ME":  # "m" is milli and "1e" an exponent: no guess
            fixes[low] = decimal
    fixed = fixes.get(suffix.lower())
    guess = number + fixed if fixed else None
    if guess and guess != text and re.fullmatch(_QUANTITY, guess):
        return guess
    return None


def check_quantity(obj: dict, key: str, path: tuple, check: Checker):
    """``obj[key]`` as an exact non-negative Fraction, or None."""
    value = obj.get(key)
    if value is None:
        return None
    try:
        quantity = parse_quantity(value)
    except ValueError as e:
        check.error(path + (key,), str(e))
        return None
    if quantity < 0:
        check.error(path + (key,), f"must not be negative, got "
                    f"{as_written(value)}")
        return None
    return quantity


def as_written(value) -> str:
    """A quantity as the user wrote it."""
    return value if isinstance(value, str) else repr(value)
