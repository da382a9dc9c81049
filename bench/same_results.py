#!/usr/bin/env python3
"""Checks that two `rlhf bench` results.json files agree apart from timings and the build.

Usage: bench/same_results.py [--new-option NAME]... A/results.json B/results.json

For comparing two builds on the same profile and seed (a refactoring must not change a result):
drops what differs by design between runs (wall time, the machine's speed, the stage list with its
timings and completion order, the command's --out) and between builds (the version string and each
run manifest's git description), then compares the rest exactly and names the first differences.
--new-option NAME drops a command-line option that only the newer build has (its value and its
source in every run manifest), for comparing across the commit that added it.
"""
import argparse
import json
import sys


def strip(path, new_options):
    r = json.load(open(path))
    for key in ["wall_seconds", "machine", "stages", "command", "version"]:
        r.pop(key, None)
    for run in r.get("runs", []):
        manifest = run.get("manifest", {})
        manifest.pop("git", None)
        for name in new_options:
            manifest.get("options", {}).pop(name, None)
            manifest.get("option_sources", {}).pop(name, None)
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
    ap = argparse.ArgumentParser(usage=__doc__.splitlines()[2].removeprefix("Usage: "))
    ap.add_argument("--new-option", action="append", default=[])
    ap.add_argument("a")
    ap.add_argument("b")
    args = ap.parse_args()
    found = list(differences(strip(args.a, args.new_option), strip(args.b, args.new_option)))
    for path, x, y in found[:20]:
        print(f"differs: {path}: {json.dumps(x)[:100]} vs {json.dumps(y)[:100]}")
    if found:
        sys.exit(f"{len(found)} differences")
    print("same results apart from timings and the build")


main()
