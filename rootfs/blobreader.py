"""A blob download that survives dropped connections (`Range: bytes=N-`).

`Registry.blob_reader` hands one out; the image store reads it like a
file and hashes what it reads, so a resume that went wrong cannot go
unnoticed.
"""

from __future__ import annotations

import http.client
import re
import urllib.parse
from typing import TYPE_CHECKING

from minipod.rootfs.transport import (BACKOFF, RETRIES, Dropped, RegistryError, Unreachable,
                                      os_error)

if TYPE_CHECKING:
    from minipod.rootfs.registry import Registry


class BlobReader:
    """A file-like `read(n)` over a blob that survives dropped connections.

    When the stream breaks (reset, timeout, or it ends short of `size`), the
    blob is asked for again with `Range: bytes=N-`; a server that ignores
    Range answers 200 with the whole blob, and the first N bytes are skipped.
    The bytes the caller gets are always the blob in order: the store hashes
    them, so a wrong resume cannot go unnoticed.
    """

    def __init__(self, client: Registry, repo: str, digest: str, size: int | None,
                 urls: list[str], on_bytes, on_retry):
        self.client, self.repo, self.digest, self.size = client, repo, digest, size
        self.urls = urls
        self.on_bytes, self.on_retry = on_bytes, on_retry
        self.got = 0
        self.attempts = 0
        self._resp: http.client.HTTPResponse | None = None
        self._url: str | None = None

    def _open(self) -> None:
        if self.urls:
            # A foreign layer: try its URLs in turn (the OCI spec's `urls`).
            last: Exception | None = None
            for url in self.urls:
                if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
                    continue
                try:
                    resp = self.client.open_blob(self.repo, self.digest, self.got, url=url)
                    break
                except RegistryError as e:
                    last = e
            else:
                raise last or RegistryError(f"layer {self.digest}: no http(s) URL in {self.urls}")
        else:
            resp = self.client.open_blob(self.repo, self.digest, self.got)
        skip = 0
        if self.got and resp.status == 200:
            skip = self.got                 # the server ignored Range: skip what we have
        elif self.got:
            start = _content_range_start(resp.headers.get("Content-Range"))
            if start != self.got:
                resp.raw.close()
                raise RegistryError(f"blob {self.digest}: asked for bytes from {self.got}, "
                                    f"the server sent {resp.headers.get('Content-Range')!r}")
        self._resp = resp.raw
        while skip:
            chunk = self._resp.read(min(skip, 1 << 20))
            if not chunk:
                raise Dropped("the stream ended while skipping")
            skip -= len(chunk)

    def read(self, n: int = -1) -> bytes:
        while True:
            try:
                if self._resp is None:
                    self._open()
                # read1: what has arrived (up to n), not wait for all n bytes,
                # so progress moves and a kill leaves a visible partial file.
                chunk = self._resp.read1(n if n and n > 0 else 1 << 20)
                if not chunk and self.size is not None and self.got < self.size:
                    raise Dropped(f"the stream ended after {self.got} of {self.size} bytes")
            except (Dropped, OSError, http.client.HTTPException) as e:
                self._reset()
                self.attempts += 1
                if self.attempts >= RETRIES:
                    raise Unreachable(f"blob {self.digest} of {self.client.registry}/{self.repo}: "
                                      f"the download broke {self.attempts} times; last: "
                                      f"{os_error(e) if isinstance(e, OSError) else e}") from None
                if self.on_retry:
                    self.on_retry(f"resuming at byte {self.got}")
                self.client._sleep(BACKOFF[min(self.attempts - 1, len(BACKOFF) - 1)])
                continue
            self.got += len(chunk)
            if self.on_bytes and chunk:
                self.on_bytes(len(chunk))
            return chunk

    def _reset(self) -> None:
        if self._resp is not None:
            self._resp.close()
            self._resp = None
        # The connection's state is unknown after a break: start a new one.
        self.client.close()

    def close(self) -> None:
        if self._resp is not None:
            if not self._resp.isclosed():
                self.client.close()        # unread bytes: the connection cannot be reused
            self._resp.close()
            self._resp = None

    def __enter__(self) -> "BlobReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _content_range_start(value: str | None) -> int | None:
    m = re.match(r"\s*bytes\s+(\d+)-", value or "")
    return int(m.group(1)) if m else None
