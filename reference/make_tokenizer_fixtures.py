#!/usr/bin/env python3
"""Generate the tokenizer parity fixtures under tests/fixtures/text/tokenizers/<name>/.

Small BPE tokenizers are trained with Hugging Face `tokenizers` on a generated multilingual
corpus, their components set as the real model families ship them, and saved as tokenizer.json
(+ tokenizer_config.json). For every line of tests/fixtures/text/corpus.txt and a few extra
samples, expected.jsonl records what `tokenizers` produces, one JSON object per sample:

  {"line": i}  or  {"text": s}  or  {"hex": h}    the input: corpus line i (0-based), a string,
                                                  or raw bytes (invalid UTF-8; see below)
  "ids":          encode(x, add_special_tokens=False).ids
  "ids_special":  encode(x, add_special_tokens=True).ids      (first lines and extras only)
  "ids_plain":    the same as "ids" with special tokens treated as plain text
                  (encode_special_tokens = True), only where it differs
  "decoded":      decode(ids), only where it differs from the input text (always for "hex")
  "decoded_skip": decode(ids, skip_special_tokens=True), only where it differs from decoded

variants.json: the gpt2 and llama2 fixtures with other component settings (ByteLevel prefix
space, Split string patterns with every behavior, Digits, Metaspace schemes, normalizer chains,
added-token flags, RobertaProcessing, decoder chains, unk without byte fallback, Phi-3's chat
tokens, general regexes with every behavior and invert, o200k and tiktoken's cl100k), and per
sample one 32-bit hash of all the outputs above (see write_variants).

tests/fixtures/text/split_regex.jsonl: the pieces of tokenizers' Split pre-tokenizer for real and
tricky regexes (where Oniguruma and PCRE2 differ), with every behavior for a few, and for
one-character classes (\w, \s, \p{L}, ...) the code points they match (see write_split_regex).

Invalid UTF-8 ("hex" samples): `tokenizers` cannot take it (Python str), so the reference is the
encoding of the text our documented policy makes of it — every byte that does not start a
well-formed sequence becomes U+FFFD (tokenizer.h).

Tokenizers (vocab sizes include added tokens):
  gpt2        byte-level BPE, ByteLevel(use_regex) pre-tokenizer, merges saved as "a b" strings
              like the original GPT-2 file, <|endoftext|>
  gpt2-pairs  the same tokenizer with merges as ["a", "b"] pairs (test 14)
  llama3      Split(Llama-3 regex) + ByteLevel(use_regex=False), ignore_merges (with two vocabulary
              words no merge reaches), Llama-3 special tokens, TemplateProcessing adding
              <|begin_of_text|>
  qwen2       NFC normalizer, Split(Qwen2 regex) + ByteLevel, <|endoftext|> <|im_start|>
              <|im_end|> (special) and <tool_call> </tool_call> (added, not special)
  llama2      SentencePiece-style BPE as Llama-2's tokenizer.json: Prepend("▁") + Replace(" ",
              "▁") normalizer, no pre-tokenizer, byte_fallback with <0x00>..<0xFF>, <unk> fused,
              decoder Replace/ByteFallback/Fuse/Strip, TemplateProcessing "<s> $A"
  mistral     the same model with the legacy=False layout (Mistral v0.3): Metaspace pre-tokenizer
              with prepend_scheme "first" and split false, no normalizer, [INST] [/INST]
  overlap     tiny byte-level BPE with overlapping added tokens danc / nci / ing (test 20),
              added in that order; overlap-rev holds the same tokens added in reverse order;
              expected.jsonl holds the first 60 corpus lines only
  qwen3       qwen2 with Qwen3's added tokens <think> </think> <tool_response> </tool_response>
              (transformers maps qwen3 to Qwen2Tokenizer: same pipeline); first 60 lines
  olmo2       OLMo 2 (allenai/dolma2-tokenizer): cl100k split as tiktoken-converted files carry it,
              Split(regex, Removed, invert true) + ByteLevel; first 200 lines
  phi4mini    Phi-4-mini: the same layout with the o200k regex (general PCRE2 path); first 200 lines
  smollm3     SmolLM3: the Llama-3 pipeline, ChatML and think tokens, "$A" post-processor (no BOS)
  gemma       Gemma 2/3 (transformers' GemmaTokenizer): Replace(" ", "▁") normalizer, Split(" ",
              MergedWithPrevious), byte fallback, no prefix space; first 200 lines
  Phi-3 is Llama-2's pipeline; it is the "phi3" variant (chat tokens with rstrip).
  misc        NFKD, StripAccents, NFKC, NFD, NFC, Lowercase, Strip normalizers; WhitespaceSplit,
              Digits, Metaspace(split) pre-tokenizers; continuing_subword_prefix "##", end_of_word_suffix "</w>", unk
              without byte fallback, added tokens with lstrip / rstrip / single_word / normalized;
              expected.jsonl holds the first 120 corpus lines only

Usage:
  reference/.venv/bin/python reference/make_tokenizer_fixtures.py [--out tests/fixtures/text/tokenizers]
"""

import argparse
import json
import os
import random
import shutil

import tokenizers
from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors,
                        trainers)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(REPO, "tests", "fixtures", "text", "corpus.txt")

GPT2_RE = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
             r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
            r"|\s*[\r\n]+|\s+(?!\S)|\s+")

# o200k_base (GPT-4o), the split of Phi-4-mini's tokenizer.json.
O200K_RE = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
            r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
            r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
# cl100k_base as tiktoken spells it today (possessive quantifiers, \s++$). Oniguruma reads
# \p{N}{1,3}+ as "{1,3}, repeated", not as a possessive interval.
CL100K_TIKTOKEN_RE = (r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"
                      r"|\s++$|\s*[\r\n]|\s+(?!\S)|\s")

# ---------------------------------------------------------------------------------------------
# Training text: generated from word pools of several scripts, deterministic by seed.

POOLS = {
    "en": ("the of and to in is that it was for on are with as his they be at one have this from or had by "
           "word but what some we can out other were all there when up use your how said an each she which do "
           "their time if will way about many then them write would like so these her long make thing see him "
           "two has look more day could go come did number sound no most people my over know water than call "
           "first who may down side been now find any new work part take get place made live where after back "
           "little only round man year came show every good me give our under name very through just form "
           "sentence great think say help low line differ turn cause much mean before move right boy old too "
           "same tell does set three want air well also play small end put home read hand port large spell add "
           "even land here must big high such follow act why ask men change went light kind off need house "
           "picture try us again animal point mother world near build self earth father dancing singing "
           "tokenizer model training learning reward preference chosen rejected prompt completion").split(),
    "de": "über schön größer Straße Mädchen fünf grüßen Käse Bäume Tür Öffnung Übung natürlich während".split(),
    "fr": "été élève où français garçon déjà très forêt naïve Noël cœur œuvre hôtel château".split(),
    "ru": "привет мир это тест языка модели обучение данные слово время человек жизнь".split(),
    "el": "γεια σου κόσμε αυτό είναι μια δοκιμή λέξη χρόνος άνθρωπος".split(),
    "zh": list("的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可里后"),
    "ja": "こんにちは ありがとう すみません カタカナ ひらがな 日本語 東京 テスト".split(),
    "ko": "안녕하세요 감사합니다 한국어 서울 시험 단어 사람".split(),
    "ar": "مرحبا بالعالم هذا اختبار اللغة العربية كلمة وقت".split(),
    "he": "שלום עולם זה מבחן שפה עברית מילה זמן".split(),
    "hi": "नमस्ते दुनिया यह परीक्षण है हिन्दी भाषा शब्द".split(),
    "emoji": ["😀", "🎉", "👍", "❤️", "👨‍👩‍👧", "🏳️‍🌈", "👋🏽", "🤖", "✨", "🇫🇷"],
    "code": ["def", "return", "if", "else", "for", "while", "int", "x", "y", "self", "foo_bar", "camelCase",
             "()", "{}", "[]", "==", "!=", "->", "=>", "+=", "::", "//", "/*", "*/", "#include", "std::vector",
             "printf(\"%d\\n\", x);", "0x1F", "i++", "&&", "||"],
}


def gen_line(rng):
    kind = rng.random()
    if kind < 0.45:
        lang = "en"
    elif kind < 0.6:
        lang = "code"
    else:
        lang = rng.choice(list(POOLS))
    n = rng.randint(3, 14)
    words = []
    for _ in range(n):
        r = rng.random()
        if r < 0.08:
            words.append(str(rng.randint(0, 10 ** rng.randint(1, 7))))
        elif r < 0.14:
            words.append(rng.choice(",.;:!?'\"-()"))
        elif r < 0.2:
            words.append(rng.choice(POOLS[rng.choice(list(POOLS))]))
        else:
            w = rng.choice(POOLS[lang])
            if rng.random() < 0.1:
                w = w.capitalize()
            words.append(w)
    sep = "" if lang in ("zh", "ja") and rng.random() < 0.7 else " "
    line = sep.join(words)
    if rng.random() < 0.05:
        line = line.replace(" ", "  ", 1)
    if rng.random() < 0.05:
        line = "\t" + line
    if rng.random() < 0.03:
        line += "\n" + gen_line(rng)
    return line


def training_lines(corpus_lines):
    """Generated lines, then the corpus: byte-level tokenizers learn merges for all of it."""
    return generated_lines() + corpus_lines


def generated_lines():
    """Generated lines only: characters that occur only in the corpus stay out of the alphabet of
    the character-level (SentencePiece-style, misc) tokenizers and exercise byte fallback / unk."""
    rng = random.Random(1234)
    return [gen_line(rng) for _ in range(6000)]


# ---------------------------------------------------------------------------------------------
# Tokenizers


def special(content, **kw):
    kw.setdefault("normalized", False)
    return AddedToken(content, special=True, **kw)


def canonical_vocab(vocab, merges, specials, prefix=""):
    """Renumbers a trained vocabulary deterministically: the special tokens, then the alphabet
    sorted by text, then the tokens the merges create in merge order. The trainer's merges are
    deterministic, but with a subword prefix the alphabet's ids follow a hash map's order."""
    merged = []
    seen = set(specials)
    for a, b in merges:
        t = a + b[len(prefix):]
        if t not in seen:
            seen.add(t)
            merged.append(t)
    alphabet = sorted(t for t in vocab if t not in seen)
    order = list(specials) + alphabet + merged
    assert sorted(order) == sorted(vocab), "vocabulary and merges disagree"
    return {t: i for i, t in enumerate(order)}


def byte_level_tokenizer(lines, vocab_size, pre, ignore_merges=False, normalizer=None):
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    if normalizer is not None:
        tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(lines, trainer)
    return tok


def make_gpt2(lines):
    tok = byte_level_tokenizer(lines, 2000, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True))
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.add_special_tokens([special("<|endoftext|>")])
    d = json.loads(tok.to_str())
    # The original GPT-2 tokenizer.json: empty (not null) prefix/suffix strings.
    d["model"]["continuing_subword_prefix"] = ""
    d["model"]["end_of_word_suffix"] = ""
    return d, {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
               "model_max_length": 1024}


def make_llama3(lines):
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_RE), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok = byte_level_tokenizer(lines, 2000, pre, ignore_merges=True)
    names = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
             "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>",
             "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>"]
    tok.add_special_tokens([special(n) for n in names])
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A:0",
                                      pair="<|begin_of_text|> $A:0 <|begin_of_text|>:1 $B:1",
                                      special_tokens=[("<|begin_of_text|>", bos)]),
    ])
    d = json.loads(tok.to_str())
    d["model"]["ignore_merges"] = True
    # Whole words in the vocabulary that no merge sequence reaches (real Llama-3 has many, a
    # trained vocabulary none): only ignore_merges yields them as one token. They take the ids
    # after the model vocabulary; the added tokens move up.
    extra = ["xyzzyplugh", "\u0120xyzzyplugh"]  # Ġ = byte-level space
    n = len(d["model"]["vocab"])
    for i, t in enumerate(extra):
        d["model"]["vocab"][t] = n + i
    for a in d["added_tokens"]:
        a["id"] += len(extra)
    for st in d["post_processor"]["processors"][1]["special_tokens"].values():
        st["ids"] = [i + len(extra) for i in st["ids"]]
    template = [{"name": "default", "template": "{{ bos_token }}{% for m in messages %}<|start_header_id|>"
                 "{{ m['role'] }}<|end_header_id|>\n\n{{ m['content'] | trim }}<|eot_id|>{% endfor %}"}]
    return d, {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "chat_template": template}


def make_qwen2(lines):
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_RE), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok = byte_level_tokenizer(lines, 2000, pre, normalizer=normalizers.NFC())
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.add_special_tokens([special("<|endoftext|>"), special("<|im_start|>"), special("<|im_end|>")])
    tok.add_tokens([AddedToken("<tool_call>", special=False, normalized=False),
                    AddedToken("</tool_call>", special=False, normalized=False)])
    d = json.loads(tok.to_str())
    return d, {"bos_token": None, "eos_token": {"__type": "AddedToken", "content": "<|im_end|>"},
               "pad_token": "<|endoftext|>",
               "chat_template": "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
                                "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
                                "{% endif %}"}


def make_tiktoken_style(lines, regex, specials, eos):
    """Byte-level BPE over a tiktoken split as tokenizer.json files converted from tiktoken carry
    it: Split(regex, behavior Removed, invert true) — the matches are kept, the (empty) rest is
    removed — then ByteLevel without regex. OLMo 2 (allenai/dolma2-tokenizer, cl100k) and
    Phi-4-mini (o200k) ship this layout; no normalizer, ByteLevel decoder and post-processor."""
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(regex), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok = byte_level_tokenizer(lines, 2000, pre)
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.add_special_tokens([special(n) for n in specials])
    return json.loads(tok.to_str()), {"bos_token": None, "eos_token": eos, "pad_token": specials[-1]}


def make_olmo2(lines):
    return make_tiktoken_style(lines, LLAMA3_RE, ["<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>",
                                                  "<|fim_suffix|>", "<|endofprompt|>", "<|pad|>"],
                               "<|endoftext|>")


def make_phi4mini(lines):
    d, cfg = make_tiktoken_style(lines, O200K_RE, ["<|endoftext|>", "<|endofprompt|>", "<|system|>", "<|end|>",
                                                   "<|user|>", "<|assistant|>", "<|tool|>", "<|/tool|>",
                                                   "<|tool_call|>", "<|/tool_call|>", "<|tool_response|>",
                                                   "<|tag|>"], "<|end|>")
    cfg["pad_token"] = "<|endoftext|>"
    return d, cfg


def make_qwen3(lines):
    """Qwen3 ships Qwen2's pipeline (transformers maps qwen3 to Qwen2Tokenizer: NFC, Split(Qwen2
    regex), ByteLevel) with more added tokens: <think> </think> <tool_response> ... (not special)."""
    d, cfg = make_qwen2(lines)
    n = max(a["id"] for a in d["added_tokens"]) + 1
    for i, c in enumerate(["<think>", "</think>", "<tool_response>", "</tool_response>"]):
        d["added_tokens"].append({"id": n + i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
                                  "normalized": False, "special": False})
    return d, cfg


def make_smollm3(lines):
    """SmolLM3: the Llama-3 pipeline (Split(Llama-3 regex) + ByteLevel) with ChatML and think
    tokens, no BOS added by the post-processor (bos_token null)."""
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_RE), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok = byte_level_tokenizer(lines, 2000, pre)
    tok.add_special_tokens([special(n) for n in ["<|begin_of_text|>", "<|end_of_text|>", "<|im_start|>",
                                                  "<|im_end|>"]])
    tok.add_tokens([AddedToken(c, special=False, normalized=False) for c in ["<think>", "</think>"]])
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="$A:0", pair="$A:0 $B:1", special_tokens=[]),
    ])
    return json.loads(tok.to_str()), {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|im_end|>"}


def make_gemma(lines):
    """Gemma 2 / Gemma 3 as transformers' GemmaTokenizer builds them (and their tokenizer.json
    holds): normalizer Replace(" ", "▁") — no prefix space —, pre-tokenizer Split(" ",
    MergedWithPrevious) (a no-op after the normalizer), BPE with byte fallback and fused <unk>,
    decoder Replace("▁", " ") / ByteFallback / Fuse, "<bos> $A"; <pad> <eos> <bos> <unk> <mask>
    first, <start_of_turn> <end_of_turn> in the vocabulary and special."""
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    trainer = trainers.BpeTrainer(vocab_size=1000 - 256, special_tokens=specials, show_progress=False)
    tok.train_from_iterator(lines, trainer)
    t = json.loads(tok.to_str())
    canon = canonical_vocab(t["model"]["vocab"], t["model"]["merges"], specials)
    vocab = {c: i for i, c in enumerate(specials)}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for piece, _ in sorted(canon.items(), key=lambda kv: kv[1]):
        if piece not in vocab:
            vocab[piece] = len(vocab)
    added = [{"id": vocab[c], "content": c, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for c in specials]
    bos = vocab["<bos>"]
    d = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
        "pre_tokenizer": {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious",
                          "invert": False},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<bos>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<bos>": {"id": "<bos>", "ids": [bos], "tokens": ["<bos>"]}},
        },
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": t["model"]["merges"]},
    }
    return d, {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>",
               "add_bos_token": True}


def sentencepiece_vocab(lines):
    """A Llama-2-shaped vocabulary: <unk> <s> </s>, the 256 byte tokens, then learned pieces."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(vocab_size=1000 - 256, special_tokens=["<unk>", "<s>", "</s>"],
                                  show_progress=False)
    tok.train_from_iterator(lines, trainer)
    d = json.loads(tok.to_str())
    canon = canonical_vocab(d["model"]["vocab"], d["model"]["merges"], ["<unk>", "<s>", "</s>"])
    learned = sorted(canon.items(), key=lambda kv: kv[1])
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = 3 + b
    for piece, _ in learned:
        if piece not in vocab:
            vocab[piece] = len(vocab)
    return vocab, d["model"]["merges"]


def sentencepiece_json(vocab, merges, layout):
    added = [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, c in enumerate(["<unk>", "<s>", "</s>"])]
    d = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": None, "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
        },
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }
    if layout == "llama2":
        d["normalizer"] = {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
    else:  # mistral, legacy=False
        d["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
        n = len(vocab)
        d["added_tokens"] += [{"id": n + i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
                               "normalized": False, "special": True} for i, c in enumerate(["[INST]", "[/INST]"])]
    return d


def make_overlap(lines, reverse):
    tok = byte_level_tokenizer(lines[:400], 400, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True))
    names = ["danc", "nci", "ing"]
    for n in (reversed(names) if reverse else names):
        tok.add_tokens([AddedToken(n, special=False, normalized=False)])
    tok.add_special_tokens([special("<|user|>")])
    return json.loads(tok.to_str()), {"eos_token": "<|user|>"}


def make_misc(lines):
    tok = Tokenizer(models.BPE(unk_token="[UNK]", continuing_subword_prefix="##", end_of_word_suffix="</w>",
                               fuse_unk=False))
    # Every Unicode normalizer in one chain: NFKD, StripAccents, NFKC, NFD, NFC, then Lowercase, Strip.
    tok.normalizer = normalizers.Sequence([normalizers.NFKD(), normalizers.StripAccents(), normalizers.NFKC(),
                                           normalizers.NFD(), normalizers.NFC(), normalizers.Lowercase(),
                                           normalizers.Strip()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)])
    tok.decoder = decoders.Sequence([decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)])
    trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=["[UNK]"],
                                  continuing_subword_prefix="##", end_of_word_suffix="</w>", show_progress=False)
    tok.train_from_iterator(lines, trainer)
    d = json.loads(tok.to_str())
    d["model"]["vocab"] = canonical_vocab(d["model"]["vocab"], d["model"]["merges"], ["[UNK]"], "##")
    tok = Tokenizer.from_str(json.dumps(d))
    tok.add_special_tokens([special("[CLS]"), special("[SEP]"), special("[MASK]", lstrip=True, rstrip=True)])
    tok.add_tokens([AddedToken("hello world", single_word=True, normalized=True),
                    AddedToken("<w>", single_word=True, normalized=False),
                    AddedToken("Ⅻ", normalized=True)])
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                       special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return json.loads(tok.to_str()), {"bos_token": "[CLS]", "eos_token": "[SEP]"}


# ---------------------------------------------------------------------------------------------
# Expected outputs

EXTRA_TEXTS = [
    "",
    " ",
    "   leading spaces",
    "trailing spaces   ",
    "line one\nline two\r\nline three\n\n\nend",
    "\n\n  \n\t\n",
    "I like dancing",
    "dancing in the rain, nci and danc and ing, prancing",
    "ncing dancingdancing",
    "<|endoftext|>Hello<|endoftext|>",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\n<tool_call>x</tool_call><|im_end|>",
    "<s>[INST] Tell me a joke. [/INST] Sure.</s>",
    "text <s> in the middle </s> of a line",
    "[CLS] hello world [MASK]  masked [SEP] <w> word<w> hello worlds Ⅻ ⅻ",
    "Hello World HELLO WORLD hello world!",
    "<|user|>dancing<|user|>",
    "x" * 300,
    "ab" * 200 + " " + "ünïcödé" * 40,
    "1234567890 12 345 6789",
    "中文没有空格的句子很长很长很长。日本語もそうです。",
    "👨‍👩‍👧‍👦 family, 🏳️‍🌈 flag, 👍🏿 thumbs",
    "e\u0301 vs \u00e9, A\u030a vs \u00c5, \u1e9b\u0323, \uff21\uff22\uff23 full width, \u2167 roman, \ufb01 ligature",
    "ﷺ ﷽ ㍿ ㌀",
    "mixed עברית and العربية with English",
    "    def f(x):\n        return x  # comment\n",
    "xyzzyplugh and xyzzyplugh, xyzzyplughs",
    "\u00af\x8f\u09ac",  # panicked a normalizer chain in tokenizers (#692)
    "\ufb03\u0301 \u1e9b\u0323\u0307 \u0130stanbul \u03a3\u039f\u03a3 \u1f88 \u00df\u1e9e",
    "\u0000\u0001\u007f\u0085\u00a0\u2028\u2029\u3000\ufeff\u200b end",
    "\U0001d400\U0001d7d8 \U00010400\U00010428 \u2160\u2170 \u00bd \u2460",
]


def fuzz_texts(n=150):
    """Random strings over an alphabet chosen to stress splitting and normalization: ASCII
    letters and punctuation, whitespace of every kind, digits of several scripts, combining
    marks, compatibility characters, CJK, emoji with ZWJ/modifiers, and added-token text."""
    rng = random.Random(99)
    alphabet = (list("abcXYZ'sStT dm0123456789 .,!?-_<>|/\\\"()\t\n\r") +
                ["\u00a0", "\u2003", "\u3000", "\u0085", "\u2028", "\u200b", "\u200d", "\ufe0f",
                 "\u0301", "\u0308", "\u0323", "\u064b", "\u093f", "\u0e31",
                 "\u0660", "\u0967", "\uff11", "\u2162", "\u00b2", "\u00bd",
                 "\ufb01", "\u1e9e", "\u0130", "\u03a3", "\u00e9", "\u00c5", "\u212b", "\uac00", "\u1100\u1161",
                 "\u4e2d", "\u6587", "\u3042", "\u30ab", "\u05d0", "\u0627", "\u0915",
                 "\U0001f44d", "\U0001f3fd", "\U0001f468", "\U0001f1eb",
                 "<|endoftext|>", "<|eot_id|>", "<|im_start|>", "<s>", "</s>", "[INST]", "danc", "ing", "nci",
                 "[MASK]", "<w>", "hello world", "\u216b"])
    out = []
    for _ in range(n):
        k = rng.randint(1, 24)
        out.append("".join(rng.choice(alphabet) for _ in range(k)))
    return out

INVALID_HEX = [
    "80",                  # stray continuation byte
    "48656c6c6fff776f726c64",  # Hello\xffworld
    "c0af",                # overlong '/'
    "eda080",              # encoded surrogate
    "e282",                # truncated 3-byte sequence
    "e28220616263",        # truncated sequence then " abc"
    "f4908080",            # above U+10FFFF
    "61e4b8ad62e4b8",      # a中b + truncated 中
]


def sanitize_per_byte(b):
    out, i = [], 0
    while i < len(b):
        for n in (4, 3, 2, 1):
            try:
                out.append(b[i:i + n].decode("utf-8"))
                i += n
                break
            except UnicodeDecodeError:
                continue
        else:
            out.append("\ufffd")
            i += 1
    return "".join(out)


def record(tok, text, key, want_special, always_decoded=False):
    rec = dict(key)
    enc = tok.encode(text, add_special_tokens=False)
    rec["ids"] = enc.ids
    if want_special:
        rec["ids_special"] = tok.encode(text, add_special_tokens=True).ids
    tok.encode_special_tokens = True
    plain = tok.encode(text, add_special_tokens=False).ids
    tok.encode_special_tokens = False
    if plain != enc.ids:
        rec["ids_plain"] = plain
    dec = tok.decode(enc.ids, skip_special_tokens=False)
    if dec != text or always_decoded:
        rec["decoded"] = dec
    skip = tok.decode(enc.ids, skip_special_tokens=True)
    if skip != dec:
        rec["decoded_skip"] = skip
    return rec


def write_expected(tok, corpus_lines, path, max_lines=None):
    with open(path, "w", encoding="utf-8") as f:
        for i, line in enumerate(corpus_lines[:max_lines]):
            f.write(json.dumps(record(tok, line, {"line": i}, i < 8), ensure_ascii=False) + "\n")
        for text in EXTRA_TEXTS + fuzz_texts():
            f.write(json.dumps(record(tok, text, {"text": text}, True), ensure_ascii=False) + "\n")
        for h in INVALID_HEX:
            text = sanitize_per_byte(bytes.fromhex(h))
            f.write(json.dumps(record(tok, text, {"hex": h}, False, always_decoded=True), ensure_ascii=False) + "\n")


def save(out_dir, name, tok_json, config, corpus_lines, merges_as_strings=False, expected=True, max_lines=None):
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    if merges_as_strings:
        tok_json = json.loads(json.dumps(tok_json))
        tok_json["model"]["merges"] = [a + " " + b for a, b in tok_json["model"]["merges"]]
    text = json.dumps(tok_json, ensure_ascii=False, separators=(",", ":"))
    with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(text + "\n")
    if config is not None:
        with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(config, f, ensure_ascii=False, indent=1)
            f.write("\n")
    tok = Tokenizer.from_str(text)  # reload: the reference is what the saved file does
    if expected:
        write_expected(tok, corpus_lines, os.path.join(d, "expected.jsonl"), max_lines)
    return tok


# ---------------------------------------------------------------------------------------------
# Component variants: the fixture tokenizers with other settings (ByteLevel add_prefix_space, Split
# string patterns with every behavior, Digits, Metaspace schemes, normalizer chains, added-token
# flags, other post-processors and decoders, unk without byte fallback). Only a 32-bit hash of the
# outputs per sample is stored (variants.json), to keep the fixtures small.


def variant_overrides():
    def added(content, id, special=True, **kw):
        d = {"id": id, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": special}
        d.update(kw)
        return d

    gpt2_added = [added("<|endoftext|>", 2000)]
    spm_added = [added("<unk>", 0), added("<s>", 1), added("</s>", 2)]
    v = []
    v.append(("bl_prefix", "gpt2", {"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": True,
                                                      "trim_offsets": True, "use_regex": True}}))
    v.append(("no_decoder", "gpt2", {"decoder": None}))
    v.append(("bl_lrstrip", "gpt2", {"added_tokens": [added("<|endoftext|>", 2000, lstrip=True, rstrip=True)]}))
    v.append(("bl_single_word", "gpt2", {"added_tokens": gpt2_added + [
        added("<w>", 2001, special=False, single_word=True),
        added("hello world", 2002, special=False, normalized=True)]}))
    for beh in ["Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"]:
        v.append(("split_" + beh, "gpt2", {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"String": "e"}, "behavior": beh, "invert": False},
            {"type": "Split", "pattern": {"Regex": "\\."}, "behavior": beh, "invert": False},
            {"type": "Digits", "individual_digits": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]}}))
    for scheme in ["always", "first", "never"]:
        for split in [True, False]:
            v.append((f"meta_{scheme}_{str(split).lower()}", "llama2", {
                "normalizer": None,
                "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": scheme,
                                  "split": split},
                "decoder": {"type": "Sequence", "decoders": [
                    {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": scheme, "split": split},
                    {"type": "ByteFallback"}, {"type": "Fuse"}]},
                "added_tokens": spm_added + [added("[INST]", 1000), added("[/INST]", 1001, lstrip=True)]}))
    v.append(("spm_norm", "llama2", {
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Strip", "strip_left": True, "strip_right": False},
            {"type": "Replace", "pattern": {"Regex": "\\."}, "content": "!"},
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}, {"type": "Lowercase"}]},
        "added_tokens": [added("<unk>", 0), added("<s>", 1, normalized=True), added("</s>", 2)]}))
    v.append(("spm_no_fallback", "llama2", {"model": {"fuse_unk": False, "byte_fallback": False}}))
    v.append(("spm_fuse_unk", "llama2", {"model": {"byte_fallback": False}}))
    v.append(("roberta", "gpt2", {"post_processor": {"type": "RobertaProcessing", "sep": ["<|endoftext|>", 2000],
                                                     "cls": ["<|endoftext|>", 2000], "trim_offsets": True,
                                                     "add_prefix_space": False}}))
    v.append(("decoder_chain", "gpt2", {"decoder": {"type": "Sequence", "decoders": [
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        {"type": "Strip", "content": " ", "start": 2, "stop": 0},  # stop > 0 panics on "" in tokenizers
        {"type": "Replace", "pattern": {"String": "e"}, "content": "EE"}]}}))
    # Phi-3 (microsoft/Phi-3-mini-4k-instruct): Llama-2's pipeline, chat tokens that eat the
    # whitespace after them (rstrip).
    v.append(("phi3", "llama2", {"added_tokens": spm_added + [
        added("<|endoftext|>", 1000), added("<|assistant|>", 1001, rstrip=True),
        added("<|system|>", 1002, rstrip=True), added("<|end|>", 1003, rstrip=True),
        added("<|user|>", 1004, rstrip=True)]}))
    # General (PCRE2) regexes with every behavior, inverted or not, before a ByteLevel.
    for beh in ["Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"]:
        for inv in [False, True]:
            v.append((f"regex_{beh}_{str(inv).lower()}", "gpt2", {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": " ?\\p{L}+|\\p{N}{1,2}"}, "behavior": beh, "invert": inv},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}}))
    # The hand-written Llama-3 matcher with other behaviors.
    for beh in ["MergedWithNext", "Contiguous"]:
        v.append((f"llama3re_{beh}", "gpt2", {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_RE}, "behavior": beh, "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}}))
    for name, rx in [("o200k_isolated", O200K_RE), ("cl100k_tiktoken", CL100K_TIKTOKEN_RE)]:
        v.append((name, "gpt2", {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": rx}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}}))
    v.append(("normalized_added", "gpt2", {
        "normalizer": {"type": "Replace", "pattern": {"String": "the"}, "content": "<|endoftext|>"},
        "added_tokens": [added("<|endoftext|>", 2000, normalized=True)]}))
    return v


def fnv1a32(data):
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def sample_hash(tok, text):
    """FNV-1a (32 bit) of "ids|ids_special|ids_plain|decoded|decoded_skip" (ids comma-separated)."""
    ids = tok.encode(text, add_special_tokens=False).ids
    sp = tok.encode(text, add_special_tokens=True).ids
    tok.encode_special_tokens = True
    plain = tok.encode(text, add_special_tokens=False).ids
    tok.encode_special_tokens = False
    parts = [",".join(map(str, ids)), ",".join(map(str, sp)), ",".join(map(str, plain)),
             tok.decode(ids, skip_special_tokens=False), tok.decode(ids, skip_special_tokens=True)]
    return f"{fnv1a32('|'.join(parts).encode('utf-8')):08x}"


def write_variants(out_dir, corpus_lines):
    samples = [{"line": i} for i in range(100)] + [{"text": t} for t in EXTRA_TEXTS + fuzz_texts()]
    texts = [corpus_lines[s["line"]] if "line" in s else s["text"] for s in samples]
    variants = []
    for name, base, over in variant_overrides():
        with open(os.path.join(out_dir, base, "tokenizer.json"), encoding="utf-8") as f:
            tj = json.load(f)
        for k, val in over.items():
            if k == "model":
                tj["model"].update(val)
            else:
                tj[k] = val
        tok = Tokenizer.from_str(json.dumps(tj))
        variants.append({"name": name, "base": base, "override": over,
                         "hashes": "".join(sample_hash(tok, t) for t in texts)})
    with open(os.path.join(out_dir, "variants.json"), "w", encoding="utf-8") as f:
        json.dump({"hash": "fnv1a32 of ids|ids_special|ids_plain|decoded|decoded_skip, 8 hex digits per sample",
                   "samples": samples, "variants": variants}, f, ensure_ascii=False, indent=1)
        f.write("\n")


# ---------------------------------------------------------------------------------------------
# Split regexes on their own (tests/fixtures/text/split_regex.jsonl): the pieces tokenizers'
# Split pre-tokenizer makes, for real tokenizer regexes and for the constructs where Oniguruma and
# PCRE2 differ, and the code points each character class matches.

SPLIT_PATTERNS = [
    O200K_RE, CL100K_TIKTOKEN_RE, GPT2_RE, LLAMA3_RE, QWEN2_RE,
    # Mistral NeMo (Tekken)
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?"
    r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+",
    # DeepSeek-V3's three Splits
    r"\p{N}{1,3}", "[一-龥぀-ゟ゠-ヿ]+",
    r"[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+",
    # BLOOM (a class nested in a class: a union in Oniguruma)
    " ?[^(\\s|[.,!?…。，、।۔،])]+",
    # Gemma-style punctuation split
    r" ?[^\s\p{L}\p{N}]+\r*",
    # Constructs where the engines differ, and corner cases of find_iter
    r"a*", r"", r"(?=b)", r"$", r"^.", r".", r"\h+", r"\w+", r"\s+", r"\d+", r"\b\w", r"\Bx", r"x{,2}",
    r"\u0041+", r"(?m:.)+", r"(?i)AB", r"(?i:'s|'t|'re|'ve|'m|'ll|'d)", r"\p{Han}+", r"\p{Greek}+", r"\R",
    r"[\w]+", r"[^\s]+", r"\v", r"\p{^L}+", r"\S+", r"\W+", r"[\s\d]+", r"(?x: a b )+", r"\p{N}{1,3}",
    r"(?:ab){1,2}+", r"\p{L}++\p{L}", r"\s++$", r"[[:alpha:]]+",
]
SPLIT_BEHAVIOR_PATTERNS = [O200K_RE, LLAMA3_RE, r"a*", r"", r"x", r"\s+", r" ?\p{L}+|\p{N}{1,2}"]
SPLIT_TEXTS = [
    "", "a", "baaacaab", "axxbx", "abab", "ab\ncd", "a\nb\r\nc\r", "Hello World HELLO world's I'M",
    "don't STOP'S ſ 'ſ", "1234567 89 ½ Ⅻ ١٢٣٤", "xyz0fAg 0xDEADbeef", "\u180e \u200b\u0085\u00a0\u3000\x0b\x0c",
    "a\u0301b_c\u00b2d\u2160e\u203f", "中文没有空格。日本語もカタカナ", "αβγ ΑΒΓ Ωmega", "path/to/file\n\nx",
    "   leading and trailing   ", "x = foo(bar) + 3;  // done\n", "👨‍👩‍👧 family 🏳️‍🌈", "xxxx xx x",
    "hello, world! (test) [x] {y}", "e\u0301 vs \u00e9", "\t\ttabs\tand  spaces \n ",
]


def split_pieces(pattern, text, behavior="isolated", invert=False):
    pre = pre_tokenizers.Split(Regex(pattern), behavior=behavior, invert=invert)
    return [p for p, _ in pre.pre_tokenize_str(text)]


CLASS_PATTERNS = [r"\w", r"\s", r"\d", r"\h", r"\p{L}", r"\p{N}", r"\p{M}", r"\p{P}", r"\p{S}", r"\p{Lu}",
                  r"\p{Ll}", r"\p{Lo}", r"(?i:s)", r"(?i:k)", r".", r"[\w]", r"\p{Han}"]


def class_ranges(pattern):
    """Code points (no surrogates) that the one-character regex matches, as [first, last] runs."""
    cps = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    hits = set()
    for i in range(0, len(cps), 65536):
        chunk = cps[i:i + 65536]
        text = "".join(map(chr, chunk))
        pre = pre_tokenizers.Split(Regex(pattern), behavior="removed", invert=True)
        for piece, (b, e) in pre.pre_tokenize_str(text):
            for k in range(b, e):
                hits.add(chunk[k])
    runs = []
    for c in sorted(hits):
        if runs and runs[-1][1] == c - 1:
            runs[-1][1] = c
        else:
            runs.append([c, c])
    return runs


def write_split_regex(path, corpus_lines):
    texts = SPLIT_TEXTS + corpus_lines[:10] + fuzz_texts(30)
    with open(path, "w", encoding="utf-8") as f:
        for pat in SPLIT_PATTERNS:
            try:
                split_pieces(pat, "x")
            except Exception as e:  # Oniguruma refuses it: so must we
                f.write(json.dumps({"pattern": pat, "error": str(e)}, ensure_ascii=False) + "\n")
                continue
            for t in texts:
                f.write(json.dumps({"pattern": pat, "behavior": "Isolated", "invert": False, "text": t,
                                    "pieces": split_pieces(pat, t)}, ensure_ascii=False) + "\n")
        names = {"removed": "Removed", "isolated": "Isolated", "merged_with_previous": "MergedWithPrevious",
                 "merged_with_next": "MergedWithNext", "contiguous": "Contiguous"}
        for pat in SPLIT_BEHAVIOR_PATTERNS:
            for beh, name in names.items():
                for inv in [False, True]:
                    for t in SPLIT_TEXTS:
                        f.write(json.dumps({"pattern": pat, "behavior": name, "invert": inv, "text": t,
                                            "pieces": split_pieces(pat, t, beh, inv)}, ensure_ascii=False) + "\n")
        for pat in CLASS_PATTERNS:
            f.write(json.dumps({"pattern": pat, "class": class_ranges(pat)}) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures", "text", "tokenizers"))
    args = ap.parse_args()
    with open(CORPUS, "rb") as f:
        raw = f.read()
    corpus_lines = raw.decode("utf-8").split("\n")
    if corpus_lines and corpus_lines[-1] == "":
        corpus_lines.pop()
    lines = training_lines(corpus_lines)
    if os.path.isdir(args.out):
        shutil.rmtree(args.out)
    os.makedirs(args.out)
    print("tokenizers", tokenizers.__version__)

    gpt2, cfg = make_gpt2(lines)
    save(args.out, "gpt2", gpt2, cfg, corpus_lines, merges_as_strings=True)
    save(args.out, "gpt2-pairs", gpt2, cfg, corpus_lines, expected=False)

    d, cfg = make_llama3(lines)
    save(args.out, "llama3", d, cfg, corpus_lines)
    d, cfg = make_qwen2(lines)
    save(args.out, "qwen2", d, cfg, corpus_lines)

    vocab, merges = sentencepiece_vocab(generated_lines())
    cfg = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": True}
    save(args.out, "llama2", sentencepiece_json(vocab, merges, "llama2"), cfg, corpus_lines, merges_as_strings=True)
    save(args.out, "mistral", sentencepiece_json(vocab, merges, "mistral"), cfg, corpus_lines)
    with open(os.path.join(args.out, "mistral", "chat_template.jinja"), "w", encoding="utf-8") as f:
        f.write("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }}"
                " [/INST]{% else %}{{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}")

    d, cfg = make_overlap(lines, reverse=False)
    save(args.out, "overlap", d, cfg, corpus_lines, max_lines=60)  # the added-token samples matter here
    d, cfg = make_overlap(lines, reverse=True)
    save(args.out, "overlap-rev", d, cfg, corpus_lines, expected=False)
    d, cfg = make_misc(generated_lines())
    save(args.out, "misc", d, cfg, corpus_lines, max_lines=120)

    d, cfg = make_olmo2(lines)
    save(args.out, "olmo2", d, cfg, corpus_lines, max_lines=200)
    d, cfg = make_phi4mini(lines)
    save(args.out, "phi4mini", d, cfg, corpus_lines, max_lines=200)
    d, cfg = make_qwen3(lines)
    save(args.out, "qwen3", d, cfg, corpus_lines, max_lines=60)
    d, cfg = make_smollm3(lines)
    save(args.out, "smollm3", d, cfg, corpus_lines, max_lines=60)
    d, cfg = make_gemma(generated_lines())
    save(args.out, "gemma", d, cfg, corpus_lines, max_lines=200)

    write_variants(args.out, corpus_lines)
    write_split_regex(os.path.join(REPO, "tests", "fixtures", "text", "split_regex.jsonl"), corpus_lines)

    total = 0
    for root, _, files in os.walk(args.out):
        for fn in files:
            total += os.path.getsize(os.path.join(root, fn))
    print(f"wrote {args.out}: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
