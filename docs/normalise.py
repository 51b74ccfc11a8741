"""What changes from one run of a command to the next, and its placeholder.

docs/generate.py shows real output; this module makes it the same on every
run. Two kinds of replacement:

* values learned from the kernel and minipod's state while the page runs
  (a Registry): a PID, a namespace inode, a pod uid, a veth name, a digest,
  each shown as a placeholder that names what it is, `<pid:web/server>`,
  `<inode:web/net>`; a session's own paths shown as minipod's defaults
* patterns (RULES): timestamps, ages, ephemeral ports, random MACs

kubectl aligns its tables to the longest cell, so a table whose cells change
is cut at the header's columns and padded again with its own gap.
"""
from __future__ import annotations

import re

NS_TYPES = ("net", "ipc", "uts", "mnt", "pid", "cgroup", "user", "time")
AGE = r"(?:\d+(?:d|h|m|s|ms))+"
MAC = re.compile(r"\b(?:[0-9a-f]{2}:){5}[0-9a-f]{2}\b")
FIXED_MACS = ("ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00")


def _port(match, prefix: str = "") -> str:
    return f"{prefix}<port>" if int(match.group(2)) >= 32768 else match.group(0)


RULES = [
    (re.compile(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z"), "<time>"),
    (re.compile(r"\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d [A-Z][a-z]{2} \d{4} "
                r"\d\d:\d\d:\d\d [+-]\d{4}"), "<time>"),
    (re.compile(r"\b\d{8}-\d{6}\.\d{9}\b"), "<time>"),             # rotated log files
    (re.compile(r"\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.\d{9}\d*"), "..<time>"),  # volume versions
    (re.compile(rf"\b{AGE} ago\b"), "<age> ago"),
    (re.compile(r"minipod-check-[0-9a-f]{8}"), "minipod-check-<random>"),
    (re.compile(r"\b(port )(\d{5})\b"), lambda m: _port(m, m.group(1))),
    (re.compile(r"(\b\d+\.\d+\.\d+\.\d+|\])\:(\d{5})\b"), lambda m: _port(m, m.group(1) + ":")),
    (MAC, lambda m: m.group(0) if m.group(0).startswith("0a:58:")
     or m.group(0) in FIXED_MACS else "<mac>"),
    (re.compile(r"\bfe80::[0-9a-f:]+"), "fe80::<eui64>"),
    (re.compile(r"(?<![\w/])/dev/(?:[svx]?d[a-z]+\d*|nvme\d+n\d+(?:p\d+)?|mmcblk\d+(?:p\d+)?|"
                r"root|mapper/[\w-]+)\b"), "/dev/<disk>"),
    (re.compile(rf"\b({'|'.join(NS_TYPES)}):\[\d+\]"), r"\1:[<inode>]"),
    (re.compile(r"\b[0-9a-f]{64}\b"), "<sha256>"),
]
# In tables, the columns that hold ages
AGE_COLUMNS = {"AGE", "Age", "RESTARTS", "CREATED", "LAST SEEN"}


class Registry:
    """Values that change from run to run, each with a placeholder that
    names what it is ("<pid:web/server>"), learned from the kernel and the
    state files while the page runs."""

    BOUNDS = {  # what may not touch a value on either side
        "pid": (r"(?<![\w.:-])", r"(?![\w]|[.:]\d)"),
        "inode": (r"(?<!\d)", r"(?!\d)"),
        "path": (r"(?<![\w/.-])", r"(?![\w.-])"),
        "uid": ("", ""),
        "name": ("", ""),
        "hex": (r"(?<![0-9a-f])", r"(?![0-9a-f])"),
    }

    def __init__(self, protected: set[str] = frozenset()):
        self.values: dict[str, str] = {}     # value -> placeholder
        self.kinds: dict[str, str] = {}      # value -> kind
        self.used: set[str] = set()
        self.protected = protected            # numbers written in the page itself
        self._regex = None

    def add(self, value, kind: str, role: str) -> None:
        value = str(value)
        if not value or value in self.values:
            return
        if kind == "pid" and (int(value) < 100 or value in self.protected):
            return
        name, n = f"<{kind}:{role}>", 1
        while name in self.used:
            n += 1
            name = f"<{kind}:{role}#{n}>"
        self.used.add(name)
        self.values[value] = name
        self.kinds[value] = kind
        self._regex = None

    def literal(self, value: str, replacement: str, kind: str = "path") -> None:
        """`value` is always shown as `replacement` (a path, say)."""
        if value and value not in self.values:
            self.values[value] = replacement
            self.kinds[value] = kind
            self._regex = None

    def alias(self, value: str, of: str) -> None:
        """`value` (a short form of `of`) gets the same placeholder."""
        if of in self.values and value not in self.values:
            self.values[value] = self.values[of]
            self.kinds[value] = "hex"
            self._regex = None

    def apply(self, text: str) -> str:
        if not self.values:
            return text
        if self._regex is None:
            parts = []
            for value in sorted(self.values, key=len, reverse=True):
                before, after = self.BOUNDS.get(self.kinds[value],
                                                (r"(?<![\w])", r"(?![\w])"))
                parts.append(before + re.escape(value) + after)
            self._regex = re.compile("|".join(parts))
        return self._regex.sub(lambda m: self.values[m.group(0)], text)


def normalise_text(text: str, registry: Registry) -> str:
    text = registry.apply(text)
    for regex, replacement in RULES:
        text = regex.sub(replacement, text)
    return text


def normalise_cell(cell: str, column: str, registry: Registry) -> str:
    cell = normalise_text(cell, registry)
    if column.strip() in AGE_COLUMNS:
        cell = re.sub(rf"(?<![\w<]){AGE}(?![\w>])", "<age>", cell)
    return cell


def _table_columns(lines: list[str], i: int) -> list[int] | None:
    """If lines[i] heads a table, where its columns start: kubectl's `get`
    tables (NAME   READY   STATUS: capitals, 2+ spaces between columns, one
    inside a name like "IMAGE ID") or describe's (Type    Reason, then a
    line of dashes)."""
    header = lines[i]
    indent = len(header) - len(header.lstrip(" "))
    body = header[indent:].rstrip()
    starts = [indent] + [indent + m.end() for m in re.finditer(r" {2,}", body)]
    names = [header[a:b].strip() for a, b in zip(starts, starts[1:] + [None])]
    if len(names) < 2 or not all(re.fullmatch(r"[A-Z][A-Za-z()/ -]*", n) for n in names):
        return None
    dashes = i + 1 < len(lines) and re.fullmatch(r" *-+( +-+)+ *", lines[i + 1])
    if all(n == n.upper() for n in names) or dashes:
        return starts
    return None


def normalise(text: str, registry: Registry) -> str:
    """Replace what changes from run to run; keep kubectl tables aligned."""
    lines = text.split("\n")
    out, i = [], 0
    while i < len(lines):
        starts = _table_columns(lines, i)
        if not starts:
            out.append(normalise_text(lines[i], registry))
            i += 1
            continue
        j = i + 1
        while j < len(lines) and _fits(lines[j], starts):
            j += 1
        out += _realign(lines[i:j], starts, registry)
        i = j
    return "\n".join(out)


def _fits(row: str, starts: list[int]) -> bool:
    """A row of the table: same indent, a space before every column start."""
    indent = len(row) - len(row.lstrip(" "))
    return bool(row.strip()) and indent == starts[0] and \
        all(len(row) <= s or row[s - 1] == " " for s in starts[1:])


def _realign(rows: list[str], starts: list[int], registry: Registry) -> list[str]:
    """Cut each row at the header's column starts, normalise each cell,
    and pad the columns again with the table's own gap."""
    cells = []
    for row in rows:
        cells.append([row[a:b].rstrip() if b else row[a:].rstrip()
                      for a, b in zip(starts, starts[1:] + [None])])
    names = cells[0]
    widths = [max(len(r[k]) for r in cells) for k in range(len(starts) - 1)]
    gap = min(starts[k + 1] - starts[k] - widths[k] for k in range(len(widths)))
    new = [[c if n == 0 else normalise_cell(c, names[k], registry) for k, c in enumerate(r)]
           for n, r in enumerate(cells)]
    if new == cells:
        return rows
    widths = [max(len(r[k]) for r in new) for k in range(len(starts))]
    indent = " " * starts[0]
    return [indent + "".join(c.ljust(widths[k] + gap) if k < len(r) - 1 else c
                             for k, c in enumerate(r)).rstrip()
            for r in new]


def tidy(text: str) -> str:
    """No trailing spaces, no trailing blank lines (editors remove them)."""
    return "\n".join(line.rstrip() for line in text.split("\n")).rstrip("\n")
