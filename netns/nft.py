"""Running nft(8): one script in one transaction, its error said in one line.

minipod's nftables tables (`ip minipod` for hostPorts, `bridge minipod`
for anti-spoofing) are changed by feeding `nft -f -` a whole script: the
kernel applies it atomically or not at all. By hand: `nft -f FILE`, and
`nft list table ip minipod` to see the result.
"""
from __future__ import annotations

import subprocess


def run(script: str, step: str, error: type[Exception]) -> str:
    """Apply `script`; its stdout. On failure raise `error` naming the step
    and nft's own "Error:" lines (or that nft is not installed)."""
    return finish(start(script, step, error), step, error)


def start(script: str, step: str, error: type[Exception]) -> subprocess.Popen:
    """Start nft on `script` and return at once (finish() waits): the caller
    goes on while nft starts and applies it, about 3 ms."""
    try:
        proc = subprocess.Popen(["nft", "-f", "-"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except FileNotFoundError:
        raise error(f"{step}: the nft command is missing: install Debian's "
                    "nftables package (apt-get install nftables)") from None
    try:
        proc.stdin.write(script)    # nft reads it all before it acts
        proc.stdin.close()
    except BrokenPipeError:
        pass                        # nft ended at once: finish() says why
    proc.stdin = None               # closed: communicate() must not flush it again
    return proc


def finish(proc: subprocess.Popen, step: str, error: type[Exception]) -> str:
    """Wait for nft started by start(); its stdout, or `error` as run() says."""
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise error(f"{step}: nft did not finish within 30 s") from None
    if proc.returncode != 0:
        lines = [line for line in err.splitlines() if line.startswith("Error")]
        raise error(f"{step}: nft: {'; '.join(lines) or err.strip()}")
    return out
