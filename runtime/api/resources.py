"""The checks of a container's resources.requests and .limits.

    check_resources(container, path, check) -> Resources

cpu in millicores and memory in bytes, both rounded up, from exact
quantities (quantity.py); a request left out equals its limit
(SetDefaults_Pod), and a request above its limit is an error.
ephemeral-storage limits are kept for eviction; hugepages-* and extended
resources ("example.com/gpu") are valid Kubernetes, warned about and
ignored.
"""
from __future__ import annotations

import math

from minipod.runtime.api.checker import Checker, suggest
from minipod.runtime.api.fields import OTHER_RESOURCES, RESOURCES
from minipod.runtime.api.podtypes import Resources
from minipod.runtime.api.quantity import as_written, check_quantity


def check_resources(container: dict, path: tuple,
                     check: Checker) -> Resources:
    """resources.requests and .limits (ValidateContainerResourceRequirements).

    cpu becomes millicores and memory bytes, both rounded up; a request
    left out equals its limit (SetDefaults_Pod), and a request above its
    limit is an error.
    """
    obj = check.get(container, "resources", path, dict)
    if obj is None:
        return Resources()
    where = path + ("resources",)
    check.fields(obj, where, "resources")
    found: dict[tuple[str, str], object] = {}    # (kind, name) -> Fraction
    for kind in ("limits", "requests"):
        amounts = check.get(obj, kind, where, dict) or {}
        for name in amounts:
            at = where + (kind, name)
            if not isinstance(name, str):       # only from load_object
                check.error(where + (kind,), f"resource names must be "
                            f"strings, got {name!r}")
                continue
            if name not in RESOURCES and not _known_resource(name):
                message = (f'unknown resource "{name}": a container has cpu, '
                           "memory, ephemeral-storage, hugepages-<size> or "
                           "an extended resource such as nvidia.com/gpu")
                guess = suggest(name, RESOURCES + OTHER_RESOURCES)
                if guess:
                    message += f'; did you mean "{guess}"?'
                check.error(at, message)
                continue
            value = check_quantity(amounts, name, where + (kind,), check)
            if name not in RESOURCES:
                check.warn(at, f'resource "{name}" is valid Kubernetes but '
                           "not implemented by minipod yet; ignored")
            elif value is not None:
                found[kind, name] = value
                if name == "memory" and value.denominator != 1:
                    check.warn(at, _fractional_bytes(amounts[name]))
    for name in RESOURCES:
        request = found.get(("requests", name))
        limit = found.get(("limits", name))
        if request is not None and limit is not None and request > limit:
            at = where + ("requests", name)
            check.error(at, f"request {as_written(obj['requests'][name])} is more "
                        f"than the {name} limit "
                        f"{as_written(obj['limits'][name])} "
                        f"({check.where(where + ('limits', name))}); a "
                        "container may not request more than its limit")
    def rounded(kind: str, name: str, unit: int) -> int | None:
        value = found.get((kind, name))
        return None if value is None else math.ceil(value * unit)

    cpu_limit = rounded("limits", "cpu", 1000)
    cpu_request = rounded("requests", "cpu", 1000)
    memory_limit = rounded("limits", "memory", 1)
    memory_request = rounded("requests", "memory", 1)
    return Resources(
        cpu_request_milli=cpu_limit if cpu_request is None else cpu_request,
        cpu_limit_milli=cpu_limit,
        memory_request=memory_limit if memory_request is None
        else memory_request,
        memory_limit=memory_limit,
        ephemeral_storage_limit=rounded("limits", "ephemeral-storage", 1))


def _known_resource(name: str) -> bool:
    """Resource names Kubernetes knows beyond cpu and memory."""
    return (name in OTHER_RESOURCES or name.startswith("hugepages-")
            or "/" in name)             # extended: "example.com/foo"


def _fractional_bytes(value) -> str:
    """The warning for a memory quantity that is not whole bytes."""
    text = as_written(value)
    message = (f'fractional byte value "{text}" is rounded up to whole '
               "bytes")
    if text.endswith("m"):
        message += (f'; "m" means milli (1/1000): did you mean '
                    f'"{text[:-1]}Mi" or "{text[:-1]}M"?')
    return message
