"""The name and path rules of the Kubernetes API (apimachinery's
pkg/util/validation/validation.go; IsConfigMapKey; validatePathNoBacksteps).

    check_label(value, path, check)      DNS-1123 labels (namespace, container,
                                         volume names), with a guess at the
    check_subdomain(value, path, check)  valid name; subdomains (Pod,
                                         ConfigMap, Secret names)
    qualified_name_problems label and annotation keys
    label_value_problems    label values
    iana_svc_name_problems  port names
    config_key_problem      keys of a ConfigMap or Secret
    check_path              mountPath, hostPath, subPath, item paths: no ".."

The ``*_problems`` functions return messages (none: valid); the ``check_*``
ones report into a checker.Checker, with the file, line and field.
"""
from __future__ import annotations

import re

from minipod.runtime.api.checker import Checker


# The name rules of apimachinery's validation.go.
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS1123_SUBDOMAIN = re.compile(
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
IANA_SVC_NAME = re.compile(r"[-a-z0-9]+")
HTTP_HEADER_NAME = re.compile(r"[-A-Za-z0-9]+")
# Kubernetes >= 1.34 accepts any printable ASCII but '=' in env var names;
# minipod keeps the older rule, which every cluster accepts.
ENV_VAR_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")


def check_name(value: str, path: tuple, pattern: re.Pattern, limit: int,
                what: str, extra: str, check: Checker) -> None:
    """Report ``value`` unless it is a DNS-1123 label/subdomain."""
    if len(value) <= limit and pattern.fullmatch(value):
        return
    shown = value if len(value) <= 80 else f"{value[:60]}…\" ({len(value)} characters)"
    message = (f'invalid name "{shown}": must be {what}: at most {limit} '
               f"characters, lowercase letters, digits and {extra}, starting "
               "and ending with a letter or digit")
    guess = _dns_guess(value, pattern, limit) if len(value) <= 2 * limit else None
    if guess:
        message += f'; did you mean "{guess}"?'
    check.error(path, message)


def check_label(value: str, path: tuple, check: Checker) -> None:
    """Report ``value`` unless it is a DNS-1123 label (namespace, container,
    volume, hostname): at most 63 characters, no dots."""
    check_name(value, path, DNS1123_LABEL, 63, "a lowercase RFC 1123 label", "'-'", check)


def check_subdomain(value: str, path: tuple, check: Checker) -> None:
    """Report ``value`` unless it is a DNS-1123 subdomain (the name of a
    Pod, ConfigMap or Secret): at most 253 characters, dots between labels."""
    check_name(value, path, DNS1123_SUBDOMAIN, 253, "a lowercase RFC 1123 subdomain",
               "'-' or '.'", check)


def _dns_guess(value: str, pattern: re.Pattern, limit: int) -> str | None:
    """A valid name close to ``value`` ("Kubia_Manual" -> "kubia-manual")."""
    allowed = "." if pattern is DNS1123_SUBDOMAIN else ""
    guess = re.sub(rf"[^a-z0-9{allowed}-]+", "-", value.lower())
    guess = guess[:limit].strip("-.")
    return guess if guess and pattern.fullmatch(guess) else None


def qualified_name_problems(key: str) -> list[str]:
    """Label and annotation keys: an optional DNS prefix, '/', a name."""
    prefix, slash, name = key.rpartition("/")
    problems = []
    if slash and (not prefix or len(prefix) > 253
                  or not DNS1123_SUBDOMAIN.fullmatch(prefix)):
        problems.append("the prefix before '/' must be a lowercase DNS "
                        "subdomain (e.g. example.com) of at most 253 "
                        "characters")
    if not name or len(name) > 63 or not QUALIFIED_NAME.fullmatch(name):
        problems.append("the name must be at most 63 characters: letters, "
                        "digits, '-', '_' or '.', starting and ending with a "
                        "letter or digit")
    return problems


def label_value_problems(value: str) -> list[str]:
    """Label values: empty, or like the name part of a key."""
    if value == "" or (len(value) <= 63 and QUALIFIED_NAME.fullmatch(value)):
        return []
    return ["must be empty or at most 63 characters: letters, digits, '-', "
            "'_' or '.', starting and ending with a letter or digit"]


def iana_svc_name_problems(name: str) -> list[str]:
    """Port names (IANA service names, RFC 6335), as Kubernetes checks them."""
    problems = []
    if len(name) > 15:
        problems.append("must be no more than 15 characters")
    if not IANA_SVC_NAME.fullmatch(name):
        problems.append("must contain only lowercase letters, digits and '-'")
    if "--" in name:
        problems.append("must not contain consecutive hyphens")
    if not re.search("[a-z]", name):
        problems.append("must contain at least one letter")
    if name.startswith("-") or name.endswith("-"):
        problems.append("must not begin or end with a hyphen")
    return problems


def check_path(value: str, path: tuple, check: Checker,
                absolute: bool) -> bool:
    """An absolute (mountPath, hostPath) or relative (subPath) path.

    No ".." element either way: validatePathNoBacksteps and
    validateLocalDescendingPath. False if reported.
    """
    if absolute and not value.startswith("/"):
        check.error(path, f'must be an absolute path, got "{value}"')
        return False
    if not absolute and value.startswith("/"):
        check.error(path, f'must be a path relative to the volume, got '
                    f'"{value}"')
        return False
    if ".." in value.split("/"):
        check.error(path, f'must not contain "..", got "{value}"')
        return False
    return True


CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")   # IsConfigMapKey


def config_key_problem(key: str) -> str | None:
    """Why `key` cannot name a ConfigMap or Secret entry (IsConfigMapKey)."""
    if len(key) > 253:
        return "must be no more than 253 characters"
    if not CONFIG_KEY.fullmatch(key):
        return "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
    if key in (".", "..") or key.startswith(".."):
        return "must not be '.' or '..', nor start with '..'"
    return None
