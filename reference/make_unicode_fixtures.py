#!/usr/bin/env python3
"""Writes the reference data that tests/text/test_unicode.cpp checks src/text/unicode.cpp against.

    /work/refvenv/bin/python reference/make_unicode_fixtures.py

Needs `tokenizers` (the ground truth for the pre-tokenizer splits: HF's own Split pre-tokenizer
with behavior="isolated") and the standard library's unicodedata (NFC/NFKC, categories).
Reads tests/fixtures/text/corpus.txt (one sample per line, lines separated by "\\n" only: other
line-break characters such as \\v, \\f, U+0085, U+2028 belong to the samples) and writes into
tests/fixtures/text/:

  pretokenize.jsonl  one JSON object per sample: {"text", "gpt2", "llama3", "qwen2", "nfc", "nfkc"}
                     where the pattern fields are the byte lengths of the pieces, in order
                     (their sum is the UTF-8 length of text); "nfc"/"nfkc" are present only
                     where unicodedata.normalize changes the text. Samples: every corpus line, then
                     multi-line samples built from runs of corpus lines joined with \\n, \\r\\n
                     and other line-break/whitespace combinations, then short hand-made ones.
  utf8_invalid.jsonl {"hex": bytes, "decoded": bytes.decode("utf-8", "replace")} for invalid
                     UTF-8 (JSON cannot hold the bytes themselves); Python's decoder substitutes
                     one U+FFFD per maximal invalid subpart, like unicode.cpp.
  unicode_check.json FNV-1a 64 hashes that let the C++ test compare every code point without
                     storing the tables twice: per 4096-code-point block, the general category
                     and combining class, and NFC/NFKC/NFD/NFKD of each single code point; and
                     NFC/NFKC of 100k pseudo-random strings (splitmix64, reproduced in C++) drawn
                     from ranges rich in combining marks, compositions and Hangul jamo.
"""
import json
import os
import random
import unicodedata as ud

from tokenizers import Regex, pre_tokenizers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIR = os.path.join(ROOT, "tests", "fixtures", "text")

PATTERNS = {
    "gpt2": r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+",
    "llama3": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "qwen2": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
}
CATEGORIES = ["Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc", "Pd", "Ps",
              "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs",
              "Co", "Cn"]
# Unassigned code points the corpus uses on purpose (unassigned in every Unicode version so far).
ALLOWED_UNASSIGNED = {0x378, 0x379, 0xFDD0, 0xFFFE, 0xFFFF, 0x10FFFE}

MASK = (1 << 64) - 1


def fnv1a(data, h=0xCBF29CE484222325):
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & MASK
    return h


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)


def byte_level_pieces(text):
    """GPT-2 pieces through HF's ByteLevel pre-tokenizer (its built-in regex), mapped back to text."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    inv = {chr(c): b for b, c in zip(bs, cs)}
    bl = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    return [bytes(inv[ch] for ch in p).decode("utf-8") for p, _ in bl.pre_tokenize_str(text)]


def pieces(pattern, text):
    split = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
    return [p for p, _ in split.pre_tokenize_str(text)]


def read_corpus():
    with open(os.path.join(DIR, "corpus.txt"), encoding="utf-8", newline="") as f:
        data = f.read()
    assert data.endswith("\n") and "\r" not in data
    lines = data[:-1].split("\n")
    for line in lines:
        for ch in line:
            if ud.category(ch) == "Cn" and ord(ch) not in ALLOWED_UNASSIGNED:
                raise SystemExit("corpus: U+%04X is unassigned in Unicode %s" % (ord(ch), ud.unidata_version))
    return lines


def samples(lines):
    out = list(lines)
    rng = random.Random(20240611)
    seps = ["\n", "\r\n", "\n\n", " \n", "\n ", "\t\n", "\r\n\r\n", "  \n\n  ", "\r", "\n\t",
            "\u2028", "\u0085\n", "\n\n\n", " \r\n", "\n   ", "\f\n", "\u00a0\n"]
    ends = ["", "", "\n", "\n\n", "   ", "\r\n", " \n", "\t"]
    i = 0
    while i < len(lines):
        k = rng.randint(2, 5)
        group = lines[i:i + k]
        out.append(rng.choice(seps).join(group) + rng.choice(ends))
        i += k
    # Code blocks as they would appear in a file.
    start = lines.index("def tokenize(text: str) -> list[str]:")
    stop = lines.index("0xDEADBEEF 0xdeadbeef 0XCAFEBABE 1_000_000 0b_1010_1010")
    code = lines[start:stop + 1]
    out.append("\n".join(code) + "\n")
    out.append("\r\n".join(code) + "\r\n")
    out += [
        "\n", "\r\n", "\r", "\n\n\n", " \n ", "a\n\nb", "a \n b", "a\r\n\r\nb", "x\n  \n  y",
        "\n\ta", "a\n", "  \n", "\r\r\n\n", "a\n\n", "\n\na", " \n\n ", "!\n", "!\r\n\n x",
        "a!\n\nb", " !!\n", "1\n2", "12345\n678", "a\u00a0\n\u00a0b", "\t\n\t", "x \t\n \t y",
        "'s\n's", "hello\nworld\n", "hello \nworld", "hello\n world", "end   \n\n\n   start",
        "\u3000\n\u3000", "\u0085\n\u0085x", "x\u2028\ny", "tab\t\n\ttab", "a\r b\r\nc\n\rd",
    ]
    return out


def write_pretokenize(lines):
    rows = []
    mismatch_bytelevel = 0
    for text in samples(lines):
        row = {"text": text}
        for name, pat in PATTERNS.items():
            ps = pieces(pat, text)
            assert "".join(ps) == text, (name, text)
            row[name] = [len(p.encode("utf-8")) for p in ps]
            if name == "gpt2" and byte_level_pieces(text) != ps:
                mismatch_bytelevel += 1
        for form in ("nfc", "nfkc"):
            normalized = ud.normalize(form.upper(), text)
            if normalized != text:
                row[form] = normalized
        rows.append(row)
    assert mismatch_bytelevel == 0, "ByteLevel(use_regex) and Split(GPT-2 regex) disagree"
    path = os.path.join(DIR, "pretokenize.jsonl")
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
    return path, len(rows)


def write_invalid_utf8():
    cases = [
        b"\x80", b"\xbf", b"\xc0", b"\xc1\xbf", b"\xc2", b"\xc2A", b"\xc3\xa9", b"\xe2\x82", b"\xe2\x82A",
        b"\xe2\x82\xac", b"\xe0\x80\x80", b"\xe0\x9f\xbf", b"\xe0\xa0\x80", b"\xed\x9f\xbf",
        b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xee\x80\x80", b"\xef\xbf\xbd", b"\xf0\x80\x80\x80",
        b"\xf0\x8f\xbf\xbf", b"\xf0\x90\x80\x80", b"\xf0\x90\x80", b"\xf0\x90", b"\xf4\x8f\xbf\xbf",
        b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xf8\x88\x80\x80\x80", b"\xfc\x84\x80\x80\x80\x80",
        b"\xfe", b"\xff", b"\xfe\xff", b"a\xffb", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf",
        b"\xe2\x82\xe2\x82\xac", b"\xf0\x9f\x98", b"\xf0\x9f\x98\x80\xf0\x9f\x98", b"caf\xe9",
        b"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa", b"hello \x80\x81\x82 world", b"\xc2\xc2\xa0",
        b"\xe1\x80\xe1\x80\x80", b"\xf1\x80\x80\xf1\x80\x80\x80", b"\xed\x80", b"\xed\xa0",
        b"A\xc3", b"\xf4\x8f\xbf", b"\xf3\xbf\xbf\xbf", b"'\x80s", b" \xa0x",
    ]
    rng = random.Random(7)
    pool = [b"a", b" ", b"'", b"\xc3\xa9", b"\xe4\xb8\xad", b"\xf0\x9f\x98\x80", b"\n"]
    for _ in range(40):
        parts = []
        for _ in range(rng.randint(1, 8)):
            if rng.random() < 0.5:
                parts.append(rng.choice(pool))
            else:
                parts.append(bytes([rng.randrange(0x80, 0x100)]))
        cases.append(b"".join(parts))
    path = os.path.join(DIR, "utf8_invalid.jsonl")
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for c in cases:
            f.write(json.dumps({"hex": c.hex(), "decoded": c.decode("utf-8", "replace")},
                               ensure_ascii=False) + "\n")
    return path, len(cases)


RANDOM_RANGES = [
    (0x41, 0x5A), (0x61, 0x7A), (0x61, 0x7A), (0xC0, 0x17F), (0x300, 0x36F), (0x300, 0x36F),
    (0x300, 0x36F), (0x370, 0x3FF), (0x400, 0x4FF), (0x591, 0x5C7), (0x610, 0x61A), (0x64B, 0x65F),
    (0x900, 0x97F), (0x980, 0x9FF), (0xB00, 0xB7F), (0xBC0, 0xBD7), (0xD80, 0xDFF), (0xF00, 0xFBC),
    (0x1000, 0x109F), (0x1100, 0x1112), (0x1161, 0x1175), (0x11A7, 0x11C2), (0x1100, 0x11FF),
    (0x1B00, 0x1B7F), (0x1DC0, 0x1DFF), (0x1E00, 0x1EFF), (0x1F00, 0x1FFF), (0x20D0, 0x20F0),
    (0x2100, 0x218F), (0x2460, 0x24FF), (0x3040, 0x30FF), (0x3099, 0x309A), (0x3131, 0x318E),
    (0x3200, 0x33FF), (0xAC00, 0xAC40), (0xD7A0, 0xD7FF), (0xF900, 0xFAFF), (0xFB00, 0xFB4F),
    (0xFE20, 0xFE2F), (0xFF00, 0xFFEF), (0x1109A, 0x110BA), (0x11100, 0x11134), (0x11300, 0x1137F),
    (0x114B0, 0x114DF), (0x115AF, 0x115C0), (0x11930, 0x11943), (0x1D15E, 0x1D1C0),
    (0x1D400, 0x1D7FF), (0x1F100, 0x1F2FF), (0x2F800, 0x2FA1D),
]


def write_check():
    block = 4096
    n_blocks = 0x110000 // block
    cat, forms = [], {"nfc": [], "nfkc": [], "nfd": [], "nfkd": []}
    for b in range(n_blocks):
        h = 0xCBF29CE484222325
        hf = {k: 0xCBF29CE484222325 for k in forms}
        for c in range(b * block, (b + 1) * block):
            ch = chr(c)
            h = fnv1a(bytes([CATEGORIES.index(ud.category(ch)), ud.combining(ch)]), h)
            if 0xD800 <= c < 0xE000:
                continue
            for k in forms:
                hf[k] = fnv1a(ud.normalize(k.upper(), ch).encode("utf-8") + b"\xff", hf[k])
        cat.append("%016x" % h)
        for k in forms:
            forms[k].append("%016x" % hf[k])

    count, chunk, seed = 100000, 1000, 0x5EED
    rng = SplitMix64(seed)
    rand = {"nfc": [], "nfkc": []}
    hs = {k: 0xCBF29CE484222325 for k in rand}
    for i in range(count):
        n = 1 + rng.next() % 8
        s = []
        for _ in range(n):
            lo, hi = RANDOM_RANGES[rng.next() % len(RANDOM_RANGES)]
            s.append(chr(lo + rng.next() % (hi - lo + 1)))
        s = "".join(s)
        for k in rand:
            hs[k] = fnv1a(ud.normalize(k.upper(), s).encode("utf-8") + b"\xff", hs[k])
        if (i + 1) % chunk == 0:
            for k in rand:
                rand[k].append("%016x" % hs[k])
                hs[k] = 0xCBF29CE484222325
    data = {
        "unicode_version": ud.unidata_version,
        "block_size": block,
        "category_ccc": cat,
        **forms,
        "random": {"seed": seed, "count": count, "chunk": chunk,
                   "ranges": [[lo, hi] for lo, hi in RANDOM_RANGES], **rand},
    }
    path = os.path.join(DIR, "unicode_check.json")
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        json.dump(data, f, indent=0)
        f.write("\n")
    return path


def check_classes():
    """HF's regex engine may know a newer Unicode; on code points that unicodedata assigns, its
    \\p{L}, \\p{N} and \\s must agree with the categories and whitespace set of unicode.cpp."""
    cps = [c for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    everything = "".join(chr(c) for c in cps)
    whitespace = {0x9, 0xA, 0xB, 0xC, 0xD, 0x20, 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F,
                  0x3000, *range(0x2000, 0x200B)}
    newer = 0
    for cls, want in [(r"\p{L}", lambda c: ud.category(chr(c))[0] == "L"),
                      (r"\p{N}", lambda c: ud.category(chr(c))[0] == "N"),
                      (r"\s", lambda c: c in whitespace)]:
        split = pre_tokenizers.Split(Regex(cls), behavior="removed")
        kept = {ord(ch) for p, _ in split.pre_tokenize_str(everything) for ch in p}
        for c in cps:
            if (c not in kept) != want(c):
                if ud.category(chr(c)) != "Cn":
                    raise SystemExit("%s disagrees with unicodedata on U+%04X" % (cls, c))
                newer += 1
    return newer


def main():
    newer = check_classes()
    print("tokenizers' \\p{L}/\\p{N}/\\s agree with unicodedata %s on all assigned code points "
          "(%d code points unassigned there are classified by the newer Unicode of tokenizers)"
          % (ud.unidata_version, newer))
    lines = read_corpus()
    p, n = write_pretokenize(lines)
    print("wrote %s: %d samples (%d corpus lines), %d bytes" % (p, n, len(lines), os.path.getsize(p)))
    p, n = write_invalid_utf8()
    print("wrote %s: %d cases" % (p, n))
    p = write_check()
    print("wrote %s: %d bytes, Unicode %s" % (p, os.path.getsize(p), ud.unidata_version))


if __name__ == "__main__":
    main()
