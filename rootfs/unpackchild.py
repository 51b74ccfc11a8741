"""`unpack_layer` in a child process, fed through a pipe as the blob downloads.

    parent (UnpackProcess)                 child (python -m minipod.rootfs.unpackchild)
    Popen DEST WHAT ───────────────────▶   unpack_layer(stdin, DEST, WHAT)
    feed(chunk) … stdin ───────────────▶   reads, inflates, writes members
    finish(): close stdin, read stdout ◀──  "sha256:…" (exit 0), or a JSON
                                           LayerError {what, member, reason} (exit 1)

The parent turns the child's answer back into the diff_id or the same
LayerError an in-process unpack raises.
"""

from __future__ import annotations

from pathlib import Path

from minipod.rootfs.unpack import LayerError, unpack_layer


class UnpackProcess:
    """`unpack_layer` in a process of its own, fed through a pipe.

        child = UnpackProcess(dest, "layer sha256:ab12…")
        for chunk in download:
            child.feed(chunk)          # the compressed blob, as it arrives
        diff_id = child.finish()       # raises LayerError as unpack_layer does

    Why a process: tar parsing and file writing hold the GIL, so two
    layers unpacked in threads of one process take as long as one after
    the other. A process per layer unpacks layers side by side on every
    core, and, fed while the blob downloads, unpacks as the bytes arrive
    (what `curl … | tar -xz` does), so a pull costs about its slowest
    layer instead of every download plus every unpack. Inside the child,
    decompression runs in a thread beside the writer (HashingReader), as
    gzip does beside `tar -xzf`.

    The child is `python -I -m minipod.rootfs.unpackchild DEST WHAT` (~50 ms
    to start: worth it for big layers only). Its bytes are not trusted
    more than in-process ones: the unpack is as strict, and its result
    goes into a tmp/ directory the caller renames only after the blob's
    digest and the diff_id are checked. It prints the diff_id, or a JSON
    line with the LayerError, on stdout.
    """

    PIPE_SIZE = 1 << 20        # fewer wake-ups than the default 64 KiB pipe

    def __init__(self, dest: Path, what: str = "layer"):
        import subprocess
        import sys
        self.what = what
        self.broken = False    # the child stopped reading: finish() says why
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-m", "minipod.rootfs.unpackchild", str(dest), what],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            close_fds=True)
        try:
            import fcntl
            fcntl.fcntl(self._proc.stdin.fileno(), fcntl.F_SETPIPE_SZ, self.PIPE_SIZE)
        except OSError:
            pass               # over fs.pipe-max-size: the default size works

    def feed(self, chunk: bytes) -> None:
        """Hand the next bytes of the blob to the child (blocks while it is behind)."""
        if self.broken:
            return
        try:
            self._proc.stdin.write(chunk)
        except (BrokenPipeError, ValueError):
            self.broken = True     # it failed or ended early; finish() tells

    def finish(self) -> str:
        """End of the blob: wait for the child; return the diff_id or raise LayerError."""
        import json
        try:
            self._proc.stdin.close()
        except BrokenPipeError:
            pass
        out, err = self._proc.stdout.read(), self._proc.stderr.read()
        code = self._proc.wait()
        self._proc.stdout.close()
        self._proc.stderr.close()
        line = out.decode(errors="replace").strip()
        if code == 0 and line.startswith("sha256:"):
            return line
        try:
            doc = json.loads(line)
            error = LayerError(doc["what"], doc["member"], doc["reason"])
        except (ValueError, KeyError, TypeError):
            error = None
        if error is not None:
            raise error
        tail = " ".join(err.decode(errors="replace").split())[-300:]
        raise LayerError(self.what, None, f"the unpack process exited {code}: "
                         f"{tail or 'no message'}")

    def abort(self) -> None:
        """Stop the child (the download failed); the caller removes dest."""
        try:
            self._proc.kill()
        except ProcessLookupError:
            pass
        self._proc.wait()
        for f in (self._proc.stdin, self._proc.stdout, self._proc.stderr):
            try:
                f.close()
            except (BrokenPipeError, OSError):
                pass


def _main(argv: list[str]) -> int:
    """`python -m minipod.rootfs.unpackchild DEST [WHAT]`: unpack the layer on stdin
    into DEST; print its diff_id, or the LayerError as a JSON line (exit 1)."""
    import json
    import sys
    if len(argv) not in (1, 2):
        print("usage: python -m minipod.rootfs.unpackchild DEST [WHAT] < LAYER", file=sys.stderr)
        return 2
    what = argv[1] if len(argv) == 2 else "layer"
    try:
        diff_id = unpack_layer(sys.stdin.buffer, Path(argv[0]), what)
    except LayerError as e:
        print(json.dumps({"what": e.what, "member": e.member, "reason": e.reason}), flush=True)
        return 1
    print(diff_id, flush=True)
    return 0


if __name__ == "__main__":
    import sys
    sys.exit(_main(sys.argv[1:]))
