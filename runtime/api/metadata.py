"""The checks of an object's type and metadata (TypeMeta, ObjectMeta).

    check_type_meta(obj, check) -> bool    kind Pod, apiVersion v1; False when
                                           the object is not a Pod at all
    check_metadata(meta, check) -> (name, namespace, labels, annotations)

Names are DNS-1123 (names.py), label and annotation keys qualified names,
annotations at most MAX_ANNOTATIONS_BYTES in all; the namespace defaults
to "default".
"""
from __future__ import annotations

from minipod.runtime.api.checker import Checker
from minipod.runtime.api.fields import DEFAULT_NAMESPACE, MAX_ANNOTATIONS_BYTES
from minipod.runtime.api.names import (check_label, check_subdomain, label_value_problems,
                                       qualified_name_problems)


def check_type_meta(obj: dict, check: Checker) -> bool:
    """Check apiVersion and kind. False if the object is not a Pod at all."""
    kind = check.get(obj, "kind", (), str)
    if "kind" not in obj or obj["kind"] is None:
        check.error(("kind",), 'required field is missing; add "kind: Pod"')
    elif kind is not None and kind != "Pod":
        if kind.lower() == "pod":
            check.error(("kind",), f'kind "{kind}" is not supported; kind is '
                        'case-sensitive: did you mean "Pod"?')
        else:
            more = ("; put each object in its own YAML document, separated by "
                    '"---"' if kind == "List" else "")
            check.error(("kind",), f'kind "{kind}" is not supported (document '
                        f"{check.document}): minipod runs Pods, ConfigMaps and Secrets only; "
                        f"nothing in this file is created{more}")
            return False
    api = check.get(obj, "apiVersion", (), str)
    if "apiVersion" not in obj or obj["apiVersion"] is None:
        check.error(("apiVersion",),
                    'required field is missing; add "apiVersion: v1"')
    elif api is not None and api != "v1":
        check.error(("apiVersion",), f'apiVersion "{api}" is not supported: '
                    'Pods are apiVersion "v1"')
    return True


def check_metadata(meta: dict, check: Checker):
    """ObjectMeta: name, namespace, labels, annotations."""
    path = ("metadata",)
    suggested = check.fields(meta, path, "metadata")
    name = check.require(meta, "name", path, str, suggested)
    if name is not None:
        check_subdomain(name, path + ("name",), check)
    namespace = check.get(meta, "namespace", path, str)
    if namespace is not None:
        check_label(namespace, path + ("namespace",), check)
    labels = check.string_map(meta, "labels", path)
    for key, value in labels.items():
        where = path + ("labels", key)
        for message in qualified_name_problems(key):
            check.error(where, f'invalid label key "{key}": {message}')
        for message in label_value_problems(value):
            check.error(where, f'invalid label value "{value}": {message}')
    annotations = check.string_map(meta, "annotations", path)
    for key in annotations:
        for message in qualified_name_problems(key):
            check.error(path + ("annotations", key),
                        f'invalid annotation key "{key}": {message}')
    size = sum(len(k.encode()) + len(v.encode())
               for k, v in annotations.items())
    if size > MAX_ANNOTATIONS_BYTES:
        check.error(path + ("annotations",), f"annotations take {size} bytes;"
                    f" the limit is {MAX_ANNOTATIONS_BYTES}")
    return name, namespace or DEFAULT_NAMESPACE, labels, annotations
