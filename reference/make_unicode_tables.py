#!/usr/bin/env python3
"""Generates src/text/unicode_tables.cpp from Python's unicodedata.

    /work/refvenv/bin/python reference/make_unicode_tables.py   (or any Python 3.11)

The Unicode version is whatever `unicodedata.unidata_version` says (3.11: 14.0.0); it is written
into the generated file. The tables are range-compressed; unicode.cpp expands the category table
into a two-level lookup on first use. Layout of the data (see src/text/unicode_tables.h):

  category_ranges   (first code point, Category) for every run of equal general category
  ccc_ranges        (first, last, canonical combining class) for every run of non-zero class
  decomp_runs       single-code-point decompositions in runs with a constant offset:
                    (first, last, first's mapping, compat?) — raw (one-level) mappings
  decomp_seqs       multi-code-point decompositions: (cp, compat?, length, offset into pool)
  comp_pairs        primary composites: (first, second, composite), sorted by (first, second);
                    composition exclusions and non-starter decompositions are left out
  nfc_unsafe /      code-point ranges that can change under NFC / NFKC or interact with a
  nfkc_unsafe       neighbour: combining class != 0, NFx(c) != c, second of a composition pair,
                    or a decomposition starting with such a character. A text made only of other
                    ("safe") characters is already normalised, and normalisation never reaches
                    across a safe character to the text before it.

Hangul syllables are decomposed and composed algorithmically in C++ and are not in the tables.
"""
import os
import sys
import unicodedata as ud

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "src", "text", "unicode_tables.cpp")

CATEGORIES = ["Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc", "Pd", "Ps",
              "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs",
              "Co", "Cn"]
MAX_CP = 0x110000
S_BASE, S_COUNT = 0xAC00, 11172
L_BASE, V_BASE, T_BASE = 0x1100, 0x1161, 0x11A7
L_COUNT, V_COUNT, T_COUNT = 19, 21, 28


def is_hangul_syllable(c):
    return S_BASE <= c < S_BASE + S_COUNT


def raw_decompositions():
    """cp -> (compat, [code points]) for every code point with a decomposition mapping."""
    out = {}
    for c in range(MAX_CP):
        d = ud.decomposition(chr(c))
        if not d or is_hangul_syllable(c):
            continue
        parts = d.split()
        compat = parts[0].startswith("<")
        if compat:
            parts = parts[1:]
        out[c] = (compat, [int(p, 16) for p in parts])
    return out


def full_decomposition(c, decomp, compat):
    if is_hangul_syllable(c):
        return [ord(x) for x in ud.normalize("NFD", chr(c))]
    m = decomp.get(c)
    if m is None or (m[0] and not compat):
        return [c]
    res = []
    for x in m[1]:
        res.extend(full_decomposition(x, decomp, compat))
    return res


def ranges_of(pred):
    """[(first, last)] of the maximal runs of code points where pred holds."""
    res = []
    start = None
    for c in range(MAX_CP + 1):
        ok = c < MAX_CP and pred(c)
        if ok and start is None:
            start = c
        elif not ok and start is not None:
            res.append((start, c - 1))
            start = None
    return res


def emit_rows(rows, per_line):
    lines = []
    for i in range(0, len(rows), per_line):
        lines.append("    " + ",".join(rows[i:i + per_line]) + ",")
    return "\n".join(lines)


def main():
    decomp = raw_decompositions()
    ccc = [ud.combining(chr(c)) for c in range(MAX_CP)]

    # Categories, as runs.
    cat_rows = []
    prev = None
    for c in range(MAX_CP):
        k = CATEGORIES.index(ud.category(chr(c)))
        if k != prev:
            cat_rows.append("{0x%X,%d}" % (c, k))
            prev = k

    # Combining classes.
    ccc_rows = []
    c = 0
    while c < MAX_CP:
        if ccc[c]:
            s = c
            while c + 1 < MAX_CP and ccc[c + 1] == ccc[s]:
                c += 1
            ccc_rows.append("{0x%X,0x%X,%d}" % (s, c, ccc[s]))
        c += 1

    # Decompositions: single-code-point runs with a constant offset, and sequences.
    run_rows, seq_rows, pool = [], [], []
    run = None  # [first, last, target_first, compat]

    def flush():
        if run:
            run_rows.append("{0x%X,0x%X,0x%X,%d}" % (run[0], run[1], run[2], run[3]))

    for cp in sorted(decomp):
        compat, seq = decomp[cp]
        if len(seq) == 1:
            if run and run[1] == cp - 1 and run[3] == compat and seq[0] - cp == run[2] - run[0]:
                run[1] = cp
                continue
            flush()
            run = [cp, cp, seq[0], int(compat)]
        else:
            seq_rows.append("{0x%X,%d,%d,%d}" % (cp, int(compat), len(seq), len(pool)))
            pool.extend(seq)
    flush()
    assert len(pool) < 65536 and max(len(decomp[c][1]) for c in decomp) < 256

    # Primary composites: two-code-point canonical mappings that NFC keeps.
    pairs = []
    for cp, (compat, seq) in decomp.items():
        if compat or len(seq) != 2:
            continue
        if ud.normalize("NFC", chr(cp)) != chr(cp):
            continue  # composition exclusion, singleton or non-starter decomposition
        pairs.append((seq[0], seq[1], cp))
    pairs.sort()
    seconds = {p[1] for p in pairs}
    seconds.update(range(V_BASE, V_BASE + V_COUNT))
    seconds.update(range(T_BASE + 1, T_BASE + T_COUNT))
    # Sanity: every pair composes in Python.
    for a, b, cp in pairs:
        assert ud.normalize("NFC", chr(a) + chr(b)) == chr(cp), (hex(a), hex(b))

    def unsafe(form, compat):
        def pred(c):
            if 0xD800 <= c < 0xE000:
                return False
            if ccc[c] or c in seconds:
                return True
            ch = chr(c)
            if ud.normalize(form, ch) != ch:
                return True
            first = full_decomposition(c, decomp, compat)[0]
            return ccc[first] != 0 or first in seconds
        return ranges_of(pred)

    nfc_unsafe = unsafe("NFC", False)
    nfkc_unsafe = unsafe("NFKC", True)

    version = ud.unidata_version
    parts = [
        "// generated by reference/make_unicode_tables.py from Python %s unicodedata, "
        "Unicode %s -- do not edit." % (sys.version.split()[0], version),
        "// Regenerate: /work/refvenv/bin/python reference/make_unicode_tables.py",
        "// Layout: see src/text/unicode_tables.h and the generator's docstring.",
        '#include "text/unicode_tables.h"',
        "",
        "namespace rlhf::unicode::tables {",
        "",
        'const char kUnicodeVersion[] = "%s";' % version,
        "",
        "const CategoryRange kCategoryRanges[] = {",
        emit_rows(cat_rows, 10),
        "};",
        "const size_t kCategoryRangesCount = %d;" % len(cat_rows),
        "",
        "const CccRange kCccRanges[] = {",
        emit_rows(ccc_rows, 8),
        "};",
        "const size_t kCccRangesCount = %d;" % len(ccc_rows),
        "",
        "const DecompRun kDecompRuns[] = {",
        emit_rows(run_rows, 6),
        "};",
        "const size_t kDecompRunsCount = %d;" % len(run_rows),
        "",
        "const DecompSeq kDecompSeqs[] = {",
        emit_rows(seq_rows, 7),
        "};",
        "const size_t kDecompSeqsCount = %d;" % len(seq_rows),
        "",
        "const char32_t kDecompPool[] = {",
        emit_rows(["0x%X" % x for x in pool], 14),
        "};",
        "const size_t kDecompPoolCount = %d;" % len(pool),
        "",
        "const CompPair kCompPairs[] = {",
        emit_rows(["{0x%X,0x%X,0x%X}" % p for p in pairs], 6),
        "};",
        "const size_t kCompPairsCount = %d;" % len(pairs),
        "",
        "const CodeRange kNfcUnsafe[] = {",
        emit_rows(["{0x%X,0x%X}" % r for r in nfc_unsafe], 8),
        "};",
        "const size_t kNfcUnsafeCount = %d;" % len(nfc_unsafe),
        "",
        "const CodeRange kNfkcUnsafe[] = {",
        emit_rows(["{0x%X,0x%X}" % r for r in nfkc_unsafe], 8),
        "};",
        "const size_t kNfkcUnsafeCount = %d;" % len(nfkc_unsafe),
        "",
        "}  // namespace rlhf::unicode::tables",
        "",
    ]
    text = "\n".join(parts)
    with open(OUT, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    print("wrote %s (%d bytes): Unicode %s, %d category runs, %d ccc runs, %d decomposition runs, "
          "%d sequences (%d pool), %d composition pairs, %d/%d NFC/NFKC unsafe ranges"
          % (os.path.relpath(OUT, ROOT), len(text), version, len(cat_rows), len(ccc_rows),
             len(run_rows), len(seq_rows), len(pool), len(pairs), len(nfc_unsafe), len(nfkc_unsafe)))


if __name__ == "__main__":
    main()
