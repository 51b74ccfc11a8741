"""Image references: "busybox", "luksa/kubia:v1", "localhost:5000/a/b@sha256:…".

A reference names an image the way Docker and Kubernetes do:

    [REGISTRY/]REPOSITORY[:TAG][@DIGEST]

The grammar and the normalisation follow Docker's `distribution/reference`
package (`regexp.go`, `normalize.go`), so a name that works in a Pod's
`image:` field on a cluster means the same image here:

- The first path component is a registry only if it looks like a host:
  it contains "." or ":", is "localhost", or has an uppercase letter.
  Otherwise the registry is docker.io ("luksa/kubia" -> docker.io/luksa/kubia).
- On docker.io a one-component repository lives under "library/"
  ("busybox" -> docker.io/library/busybox); "index.docker.io" is docker.io.
- No tag and no digest means ":latest".
- Repository components are lowercase: [a-z0-9]+ joined by ".", "_", "__"
  or dashes; a tag is [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}; a digest is
  ALGORITHM:HEX with sha256 = 64 lowercase hex digits (OCI image spec,
  "descriptor.md", Digests).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_REGISTRY = "docker.io"
_LEGACY_REGISTRY = "index.docker.io"
_OFFICIAL_PREFIX = "library/"
_NAME_MAX = 255  # distribution/reference: NameTotalLengthMax

# distribution/reference regexp.go, spelled out.
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_RE = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
)
_PATH_COMPONENT_RE = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*")
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DIGEST_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
_HEX64_RE = re.compile(r"[a-f0-9]{64}")
# go-digest: the algorithms it knows and the exact length of their hex.
_DIGEST_HEX_LEN = {"sha256": 64, "sha384": 96, "sha512": 128}


@dataclass(frozen=True)
class Reference:
    """A parsed, normalised image reference (see the module docstring)."""

    registry: str          # "docker.io", "localhost:5000"
    repository: str        # "library/busybox", "luksa/kubia"
    tag: str | None        # "latest" when neither tag nor digest was given
    digest: str | None     # "sha256:…"

    @property
    def name(self) -> str:
        """REGISTRY/REPOSITORY, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += ":" + self.tag
        if self.digest is not None:
            text += "@" + self.digest
        return text

    @property
    def familiar(self) -> str:
        """The short form Docker prints: "busybox:latest", "luksa/kubia:v1"."""
        name = self.name
        if self.registry == DEFAULT_REGISTRY:
            name = self.repository
            if name.startswith(_OFFICIAL_PREFIX) and "/" not in name[len(_OFFICIAL_PREFIX):]:
                name = name[len(_OFFICIAL_PREFIX):]
        if self.tag is not None:
            name += ":" + self.tag
        if self.digest is not None:
            name += "@" + self.digest
        return name


def validate_digest(digest: str) -> str:
    """Return `digest` if it is ALGORITHM:HEX as go-digest accepts it, else ValueError."""
    if not _DIGEST_RE.fullmatch(digest):
        raise ValueError(f'invalid digest "{digest}": expected ALGORITHM:HEX, e.g. "sha256:" and 64 hex digits')
    algorithm, hexpart = digest.split(":", 1)
    want = _DIGEST_HEX_LEN.get(algorithm)
    if want is None:
        raise ValueError(f'invalid digest "{digest}": unsupported algorithm "{algorithm}" (sha256, sha384, sha512)')
    if len(hexpart) != want or hexpart != hexpart.lower():
        raise ValueError(f'invalid digest "{digest}": {algorithm} needs {want} lowercase hex digits')
    return digest


def parse(ref: str) -> Reference:
    """Parse and normalise `ref` like `docker pull` does; ValueError says what is wrong.

    >>> str(parse("busybox"))
    'docker.io/library/busybox:latest'
    >>> parse("localhost:5000/a/b:1").registry
    'localhost:5000'
    """
    def bad(why: str) -> ValueError:
        return ValueError(f'invalid image reference "{ref}": {why}')

    if not isinstance(ref, str) or not ref:
        raise bad("it is empty")
    if ref != ref.strip() or any(c.isspace() for c in ref):
        raise bad("it contains whitespace")
    if _HEX64_RE.fullmatch(ref):
        # Docker refuses these as names: they look like image ids.
        raise bad("a 64-character hex string is an image id, not a repository name")

    rest, digest = ref, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        try:
            validate_digest(digest)
        except ValueError as e:
            raise bad(str(e)) from None

    # A tag is after the last ":" that comes after the last "/"; an earlier
    # ":" belongs to a registry port ("localhost:5000/x").
    tag = None
    colon = rest.rfind(":")
    if colon > rest.rfind("/"):
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG_RE.fullmatch(tag):
            raise bad(f'invalid tag "{tag}": use letters, digits, "_", "." and "-", '
                      'not starting with "." or "-", at most 128 characters')
    if not rest:
        raise bad("the repository name is empty")

    # splitDockerDomain (normalize.go)
    first, sep, remainder = rest.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        registry, repository = first, remainder
        if not _DOMAIN_RE.fullmatch(registry):
            raise bad(f'invalid registry "{registry}"')
    else:
        registry, repository = DEFAULT_REGISTRY, rest
    if registry == _LEGACY_REGISTRY:
        registry = DEFAULT_REGISTRY
    if registry == DEFAULT_REGISTRY and "/" not in repository:
        repository = _OFFICIAL_PREFIX + repository

    if repository.lower() != repository:
        raise bad(f'repository name "{repository}" must be lowercase')
    for component in repository.split("/"):
        if not _PATH_COMPONENT_RE.fullmatch(component):
            raise bad(f'invalid repository name "{repository}": each "/"-separated part is '
                      'lowercase letters and digits, joined by ".", "_", "__" or "-"')
    if len(registry) + 1 + len(repository) > _NAME_MAX:
        raise bad(f"the name is longer than {_NAME_MAX} characters")
    if tag is None and digest is None:
        tag = "latest"
    return Reference(registry, repository, tag, digest)


def normalize(ref: str) -> str:
    """`str(parse(ref))`: the key images are stored under."""
    return str(parse(ref))
