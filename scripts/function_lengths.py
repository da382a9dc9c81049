#!/usr/bin/env python3
"""Lists C++ function bodies longer than a limit (the house rule: none above 150 lines in the
training loops and the command line, so that each reads as named phases).

Usage: scripts/function_lengths.py [--limit N] DIR_OR_FILE...   (exit 1 if any is longer)

A light scanner, not a parser: it strips comments, strings and character literals, tracks brace
depth, and treats a brace that opens after a parenthesised signature outside any function body
(not a class, struct, enum, union, namespace or initializer) as a function body; lambdas are
counted inside the function that holds them. The length counted is from the signature's line to
the closing brace.
"""
import argparse
import pathlib
import re
import sys

TYPE_KEYWORDS = re.compile(r"\b(class|struct|enum|union|namespace)\b")


def strip_code(text):
    """Blanks comments, string and char literals, keeping newlines (so line numbers hold)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * text.count("\n", i, j))
            i = j
        elif text.startswith('R"', i):
            m = re.match(r'R"([^(\s]*)\(', text[i:])
            end = text.find(")" + m.group(1) + '"', i) if m else -1
            j = n if end < 0 else end + len(m.group(1)) + 2
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(c + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def long_functions(path, limit):
    code = strip_code(path.read_text())
    stack = []        # per open brace: (is_function_body, start_line)
    head = ""         # text since the last ; { or } outside function bodies
    line = 1
    head_line = 1
    for c in code:
        if c == "\n":
            line += 1
        in_body = any(f for f, _ in stack)
        if c == "{":
            is_fn = (not in_body and "(" in head and not TYPE_KEYWORDS.search(head)
                     and not head.rstrip().endswith("="))
            stack.append((is_fn, head_line))
            head = ""
        elif c == "}":
            if stack:
                is_fn, start = stack.pop()
                if is_fn and line - start + 1 > limit:
                    yield start, line - start + 1
            head = ""
        elif c == ";" and not in_body:
            head = ""
        elif not in_body:
            if not head.strip() and not c.isspace():
                head_line = line
            head += c


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=150)
    ap.add_argument("paths", nargs="+")
    args = ap.parse_args()
    files = []
    for p in map(pathlib.Path, args.paths):
        files += sorted(p.rglob("*.cpp")) + sorted(p.rglob("*.h")) if p.is_dir() else [p]
    found = 0
    for f in files:
        for start, length in long_functions(f, args.limit):
            print(f"{f}:{start}: function body of {length} lines (limit {args.limit})")
            found += 1
    if found:
        sys.exit(1)
    print(f"{len(files)} files: no function above {args.limit} lines")


main()
