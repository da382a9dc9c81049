#!/usr/bin/env python3
"""Generate the WordLevel tokenizer fixture under tests/fixtures/text/wordlevel/.

Three tiny WordLevel tokenizers are built with Hugging Face `tokenizers` from one word list
(special tokens first with ids 0.., then the words), the layout the testbed's tiny models use:

  tokenizer.json             WhitespaceSplit pre-tokenizer, unk_token "<unk>" (a special token);
                             no normalizer, decoder or post-processor. Written exactly as
                             word_level_tokenizer_json(WORDS, SPECIALS) must write it (the gtest
                             compares the two).
  tokenizer-whitespace.json  the same with the Whitespace pre-tokenizer (\\w+|[^\\w\\s]+)
  tokenizer-no-unk.json      WhitespaceSplit, specials <pad> <eos> only: the model's unk_token
                             "<unk>" is not in the vocabulary, so an unknown word is an error
                             (as word_level_tokenizer_json(WORDS, ["<pad>", "<eos>"]) writes it)

expected.json holds the word lists and, per tokenizer, for every text of TEXTS:
  "ids"          encode(text, add_special_tokens=False).ids
  "ids_special"  encode(text, add_special_tokens=True).ids
  "ids_plain"    the same as "ids" with special-token text encoded as plain text
                 (encode_special_tokens = True)
  "decoded"      decode(ids, skip_special_tokens=False)
  "decoded_skip" decode(ids, skip_special_tokens=True)
or {"error": message} where `tokenizers` refuses the text (an unknown word without unk), and for
every id list of DECODE_IDS its "decoded" and "decoded_skip".

Every tokenizer is also loaded with transformers.PreTrainedTokenizerFast(tokenizer_file=...),
whose encodings and decodings (clean_up_tokenization_spaces=False) must equal those above.

  --check FILE  instead: load FILE (a tokenizer.json written by word_level_tokenizer_json with
                the word lists of expected.json) in `tokenizers` and transformers and check that
                it encodes and decodes every text as tokenizer.json does.

Usage:
  /work/refvenv/bin/python reference/make_wordlevel_fixture.py [--out tests/fixtures/text/wordlevel]
"""

import argparse
import json
import os

from tokenizers import Tokenizer, models, pre_tokenizers

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SPECIALS = ["<pad>", "<eos>", "<unk>"]
WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "hello", "world", "it", "it's", "s", "'",
         ",", ".", "!", "?", "!!!", "42", "café", "a_b", "日本"]

TEXTS = [
    "",
    " ",
    "\t\n",
    "the cat sat on the mat",
    "the  cat   sat",
    "  the cat  ",
    "the\tcat\nsat\r\non\x0bthe\x0cmat\n",
    "the\u00a0cat\u2003sat\u3000on\u0085mat\u2028a\u1680dog",
    "the\u200bcat",
    "the zebra sat",
    "The Cat",
    "zebra",
    "cat, dog. hello!",
    "hello!!! world?!",
    "it's dog's",
    "café cafe cafe\u0301",
    "42 4 2 421",
    "a_b a-b",
    "日本 日本語",
    "\u24b6\u24b7 the",
    "a\u24b6 the\u24e9 ,\u24b6",
    "\U0001F44D the \U0001F44D",
    "the cat<eos>",
    "<pad><pad>the cat",
    "<eos>",
    " <eos> ",
    "the<eos>cat",
    "<unk> zebra <unk>",
    "<eos><eos>",
    "<pad> the <eos>the",
    "<eos>zebra",
    "<eos",
]

DECODE_IDS = [[], [3, 4, 5], [0, 0, 3, 1], [2], [1, 2, 3, 2], [999, 3], [3, 13, 16, 12], [0], [1, 1]]


def word_level(pre_tokenizer, specials, words):
    vocab = {t: i for i, t in enumerate(specials + words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizer
    tok.add_special_tokens(specials)  # special=True, normalized=False
    return tok


def record_text(tok, text):
    try:
        ids = tok.encode(text, add_special_tokens=False).ids
    except Exception as e:  # noqa: BLE001 - tokenizers raises a plain Exception
        return {"text": text, "error": str(e)}
    r = {"text": text, "ids": ids, "ids_special": tok.encode(text, add_special_tokens=True).ids}
    tok.encode_special_tokens = True
    try:
        r["ids_plain"] = tok.encode(text, add_special_tokens=False).ids
    except Exception as e:  # noqa: BLE001
        r["ids_plain_error"] = str(e)
    finally:
        tok.encode_special_tokens = False
    r["decoded"] = tok.decode(ids, skip_special_tokens=False)
    r["decoded_skip"] = tok.decode(ids, skip_special_tokens=True)
    return r


def record(tok):
    return {
        "texts": [record_text(tok, t) for t in TEXTS],
        "decode": [{"ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False),
                    "decoded_skip": tok.decode(ids, skip_special_tokens=True)} for ids in DECODE_IDS],
    }


def check_transformers(path, rec):
    """PreTrainedTokenizerFast must load `path` and agree with the `tokenizers` records."""
    from transformers import PreTrainedTokenizerFast
    ft = PreTrainedTokenizerFast(tokenizer_file=path)
    n = 0
    for r in rec["texts"]:
        if "error" in r:
            try:
                ft.encode(r["text"], add_special_tokens=False)
            except Exception:  # noqa: BLE001
                n += 1
                continue
            raise AssertionError(f"{path}: transformers encoded {r['text']!r}, tokenizers refused it")
        got = ft.encode(r["text"], add_special_tokens=False)
        assert got == r["ids"], (path, r["text"], got, r["ids"])
        assert ft(r["text"])["input_ids"] == r["ids_special"], (path, r["text"])
        for key, skip in (("decoded", False), ("decoded_skip", True)):
            got = ft.decode(r["ids"], skip_special_tokens=skip, clean_up_tokenization_spaces=False)
            assert got == r[key], (path, r["text"], key, got, r[key])
        n += 1
    for d in rec["decode"]:
        ids = [i for i in d["ids"] if i < len(ft)]  # transformers fails on ids past the vocabulary
        for key, skip in (("decoded", False), ("decoded_skip", True)):
            got = ft.decode(ids, skip_special_tokens=skip, clean_up_tokenization_spaces=False)
            assert got == d[key], (path, d["ids"], key, got, d[key])
        n += 1
    return n


def check_file(path, out_dir):
    """--check: a tokenizer.json written by our helper behaves as the fixture's tokenizer.json."""
    with open(os.path.join(out_dir, "expected.json"), encoding="utf-8") as f:
        expected = json.load(f)
    ours = Tokenizer.from_file(path)
    ref = Tokenizer.from_file(os.path.join(out_dir, "tokenizer.json"))
    assert json.loads(ours.to_str()) == json.loads(ref.to_str()), "the two tokenizers differ once loaded"
    rec = expected["tokenizers"]["tokenizer.json"]
    assert record(ours) == rec, "encodings differ from expected.json"
    n = check_transformers(path, rec)
    print(f"{path}: loads in tokenizers and transformers; {n} samples agree with expected.json")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures", "text", "wordlevel"))
    ap.add_argument("--check", metavar="FILE")
    args = ap.parse_args()
    if args.check:
        check_file(args.check, args.out)
        return

    os.makedirs(args.out, exist_ok=True)
    variants = {
        "tokenizer.json": word_level(pre_tokenizers.WhitespaceSplit(), SPECIALS, WORDS),
        "tokenizer-whitespace.json": word_level(pre_tokenizers.Whitespace(), SPECIALS, WORDS),
        "tokenizer-no-unk.json": word_level(pre_tokenizers.WhitespaceSplit(), ["<pad>", "<eos>"], WORDS),
    }
    expected = {"specials": SPECIALS, "words": WORDS, "no_unk_specials": ["<pad>", "<eos>"], "tokenizers": {}}
    for name, tok in variants.items():
        path = os.path.join(args.out, name)
        tok.save(path)
        rec = record(tok)
        expected["tokenizers"][name] = rec
        n = check_transformers(path, rec)
        print(f"{name}: {n} samples, transformers agrees")
    with open(os.path.join(args.out, "expected.json"), "w", encoding="utf-8") as f:
        f.write(dump_one_record_per_line(expected))


def dump_one_record_per_line(expected):
    """JSON with each sample record on a line of its own (small, and readable in a diff)."""
    one = lambda v: json.dumps(v, ensure_ascii=False)  # noqa: E731
    out = ["{"]
    for key in ("specials", "words", "no_unk_specials"):
        out.append(f" {one(key)}: {one(expected[key])},")
    out.append(' "tokenizers": {')
    names = list(expected["tokenizers"])
    for i, name in enumerate(names):
        rec = expected["tokenizers"][name]
        out.append(f"  {one(name)}: {{")
        for j, part in enumerate(("texts", "decode")):
            out.append(f"   {one(part)}: [")
            out.append(",\n".join("    " + one(r) for r in rec[part]))
            out.append("   ]" + ("," if j == 0 else ""))
        out.append("  }" + ("," if i + 1 < len(names) else ""))
    out.append(" }")
    out.append("}")
    text = "\n".join(out) + "\n"
    assert json.loads(text) == expected
    return text


if __name__ == "__main__":
    main()
