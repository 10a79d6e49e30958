#!/usr/bin/env python3
"""Fails when an #include under src/ points up the layer chain.

Dependencies point one way (../shared/DESIGN.md):

    cmd -> connector | edge | cfapi -> net -> proto -> lib

A file may include headers of its own directory and of any layer below it;
the three middle rooms (connector, edge, cfapi) never include each other.
Usage: check-layers.py [SRC_DIR]   (default: src next to this script)
Exit status 0 when clean, 1 with one line per offending include."""
import os
import re
import sys

RANK = {"lib": 0, "proto": 1, "net": 2, "connector": 3, "edge": 3, "cfapi": 3, "cmd": 4}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def check(src):
    bad = []
    for room in sorted(os.listdir(src)):
        path = os.path.join(src, room)
        if not os.path.isdir(path):
            continue
        if room not in RANK:
            bad.append(f"{room}/: a directory outside the known layers {sorted(RANK)}")
            continue
        for name in sorted(os.listdir(path)):
            if not name.endswith((".c", ".h")):
                continue
            with open(os.path.join(path, name), encoding="utf-8", errors="replace") as f:
                for lineno, line in enumerate(f, 1):
                    m = INCLUDE.match(line)
                    if not m or "/" not in m.group(1):
                        continue  # "foo.h": a header of the same room
                    target = m.group(1).split("/", 1)[0]
                    where = f"src/{room}/{name}:{lineno}"
                    if target not in RANK:
                        bad.append(f'{where}: includes "{m.group(1)}" from an unknown layer')
                    elif target == room:
                        continue
                    elif RANK[target] > RANK[room]:
                        bad.append(f'{where}: {room} includes "{m.group(1)}" from {target}, '
                                   f"a layer above it")
                    elif RANK[target] == RANK[room]:
                        bad.append(f'{where}: {room} includes "{m.group(1)}" from {target}; '
                                   f"connector, edge and cfapi stay independent")
    return bad


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "src")
    bad = check(src)
    for b in bad:
        print(b)
    if bad:
        print(f"check-layers: {len(bad)} include(s) point the wrong way "
              "(cmd -> connector|edge|cfapi -> net -> proto -> lib)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
