#!/usr/bin/env python3
"""Checks that two `rlhf bench` results.json files agree apart from timings and the build.

Usage: bench/same_results.py A/results.json B/results.json

For comparing two builds on the same profile and seed (a refactoring must not change a result):
drops what differs by design between runs (wall time, the machine's speed, the stage list with its
timings and completion order, the command's --out) and between builds (the version string and each
run manifest's git description), then compares the rest exactly and names the first differences.
"""
import json
import sys


def strip(path):
    r = json.load(open(path))
    for key in ["wall_seconds", "machine", "stages", "command", "version"]:
        r.pop(key, None)
    for run in r.get("runs", []):
        run.get("manifest", {}).pop("git", None)
    return r


def differences(x, y, path=""):
    if type(x) is not type(y):
        yield path, x, y
    elif isinstance(x, dict):
        for k in sorted(set(x) | set(y)):
            if k not in x or k not in y:
                yield f"{path}/{k}", x.get(k, "<missing>"), y.get(k, "<missing>")
            else:
                yield from differences(x[k], y[k], f"{path}/{k}")
    elif isinstance(x, list) and len(x) == len(y):
        for i, (p, q) in enumerate(zip(x, y)):
            yield from differences(p, q, f"{path}[{i}]")
    elif x != y:
        yield path, x, y


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    found = list(differences(strip(sys.argv[1]), strip(sys.argv[2])))
    for path, x, y in found[:20]:
        print(f"differs: {path}: {json.dumps(x)[:100]} vs {json.dumps(y)[:100]}")
    if found:
        sys.exit(f"{len(found)} differences")
    print("same results apart from timings and the build")


main()
