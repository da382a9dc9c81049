#!/usr/bin/env python3
"""Hugging Face `tokenizers` encode throughput, the baseline of bench/tokenizer_encode.cpp.

  tokenizers_encode.py --make-corpus FILE [--mb 50]      write the generated benchmark corpus
  tokenizers_encode.py --corpus FILE [--tokenizer DIR] [--mode batch|lines]

One thread: run with RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false (run_tokenizer_bench.sh
does). Modes:
  batch  encode_batch over chunks of 1000 lines (add_special_tokens=False): the library's own
         loop, so Python's per-call overhead stays out of the number (the default)
  lines  encode(line, add_special_tokens=False) once per line, like the C++ benchmark
Prints one JSON line: bytes, lines, tokens, seconds, tokens_per_s, mb_per_s and the FNV-1a
checksum of all ids in order (equal to the C++ side's when the ids are identical).

The corpus: deterministic (seeded) lines of 20-400 characters, mostly English prose with
numbers, punctuation and code, plus German/French/Russian/Greek/Chinese/Japanese/Arabic/emoji
text — the mix a chat fine-tuning set has.
"""

import argparse
import json
import os
import random
import time

EN = ("the of and to in is that it was for on are with as his they be at one have this from or had by word but "
      "what some we can out other were all there when up use your how said an each she which do their time if will "
      "way about many then them write would like so these her long make thing see him two has look more day could "
      "go come did number sound no most people my over know water than call first who may down side been now find "
      "any new work part take get place made live where after back little only round man year came show every "
      "good me give our under name very through just form sentence great think say help low line differ turn "
      "cause much mean before move right boy old too same tell does set three want air well also play small end "
      "put home read hand port large spell add even land here must big high such follow act why ask men change "
      "went light kind off need house picture try us again animal point mother world near build self earth "
      "father assistant user question answer explain because however therefore example function variable "
      "optimization gradient tokenizer preference reward policy").split()
OTHER = {
    "de": "über schön größer Straße Mädchen fünf grüßen Käse Bäume Tür natürlich während".split(),
    "fr": "été élève où français garçon déjà très forêt naïve cœur hôtel château".split(),
    "ru": "привет мир это тест языка модели обучение данные слово время человек".split(),
    "el": "γεια σου κόσμε αυτό είναι μια δοκιμή λέξη χρόνος".split(),
    "zh": list("的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会"),
    "ja": "こんにちは ありがとう すみません カタカナ ひらがな 日本語 東京".split(),
    "ar": "مرحبا بالعالم هذا اختبار اللغة العربية كلمة".split(),
    "emoji": ["😀", "🎉", "👍", "❤️", "👨‍👩‍👧", "🤖", "✨"],
}
CODE = ["def", "return", "if", "else:", "for", "in", "range(n):", "x", "=", "y", "+", "1", "self.value",
        "print(f\"{x}\")", "int", "main()", "{", "}", "std::vector<int>", "i++", "&&", "//", "#", "->"]


def make_line(rng):
    r = rng.random()
    n = rng.randint(4, 60)
    if r < 0.75:
        words = []
        for _ in range(n):
            q = rng.random()
            if q < 0.05:
                words.append(str(rng.randint(0, 100000)))
            elif q < 0.12:
                words[-1:] = [w + rng.choice(",.;:!?") for w in words[-1:]]
                words.append(rng.choice(EN))
            else:
                w = rng.choice(EN)
                words.append(w.capitalize() if rng.random() < 0.08 else w)
        return " ".join(words)
    if r < 0.87:
        return "    " * rng.randint(0, 3) + " ".join(rng.choice(CODE) for _ in range(n // 3 + 1))
    lang = rng.choice(list(OTHER))
    sep = "" if lang in ("zh", "ja") else " "
    return sep.join(rng.choice(OTHER[lang]) for _ in range(n))


def make_corpus(path, mb):
    rng = random.Random(20240601)
    target = int(mb * 1e6)
    size = 0
    with open(path, "w", encoding="utf-8") as f:
        while size < target:
            line = make_line(rng) + "\n"
            f.write(line)
            size += len(line.encode("utf-8"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--make-corpus")
    ap.add_argument("--mb", type=float, default=50)
    ap.add_argument("--corpus")
    ap.add_argument("--tokenizer", default="tests/fixtures/text/tokenizers/llama3")
    ap.add_argument("--mode", choices=["batch", "lines"], default="batch")
    args = ap.parse_args()
    if args.make_corpus:
        make_corpus(args.make_corpus, args.mb)
        return
    import tokenizers
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(args.tokenizer, "tokenizer.json"))
    with open(args.corpus, "rb") as f:
        raw = f.read()
    lines = raw.decode("utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    tokens = 0
    fnv = 0xcbf29ce484222325
    all_ids = []
    t0 = time.perf_counter()
    if args.mode == "batch":
        for i in range(0, len(lines), 1000):
            for enc in tok.encode_batch(lines[i:i + 1000], add_special_tokens=False):
                all_ids.append(enc.ids)
    else:
        for line in lines:
            all_ids.append(tok.encode(line, add_special_tokens=False).ids)
    seconds = time.perf_counter() - t0
    for ids in all_ids:  # outside the timed region
        tokens += len(ids)
        for i in ids:
            fnv = ((fnv ^ i) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    print(json.dumps({"impl": f"tokenizers {tokenizers.__version__} ({args.mode})", "tokenizer": args.tokenizer,
                      "bytes": len(raw), "lines": len(lines), "tokens": tokens, "seconds": round(seconds, 3),
                      "tokens_per_s": round(tokens / seconds), "mb_per_s": round(len(raw) / seconds / 1e6, 2),
                      "ids_fnv1a": f"{fnv:016x}",
                      "threads": os.environ.get("RAYON_NUM_THREADS", "default")}))


if __name__ == "__main__":
    main()
