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
    try:
        proc = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True,
                              text=True, timeout=30)
    except FileNotFoundError:
        raise error(f"{step}: the nft command is missing: install Debian's "
                    "nftables package (apt-get install nftables)") from None
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.startswith("Error")]
        raise error(f"{step}: nft: {'; '.join(lines) or proc.stderr.strip()}")
    return proc.stdout
