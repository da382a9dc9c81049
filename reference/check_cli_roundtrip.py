#!/usr/bin/env python3
"""Check that a model trained by an rlhf command (sft, dpo, kto, ...) loads in transformers and
gives the log-probs rlhf computed: the per-pair summed log-probs that `rlhf eval --scores-out`
wrote for a standard-layout (string) preference file are recomputed here with
AutoModelForCausalLM and the directory's tokenizer.json (tokenizers library).

  reference/.venv/bin/python reference/check_cli_roundtrip.py MODEL_DIR PREFS.jsonl SCORES.jsonl [--tol 1e-4]

Tokenization follows rlhf's (and TRL's) convention for string prompts: prompt ids =
encode(prompt); completion ids = encode(prompt + completion) minus the prompt's ids, with EOS
appended when missing. Run `rlhf eval` with a --max-length no row exceeds, so every pair is kept.
Exits 1 if a summed log-prob differs by more than --tol relative (of max(1, |value|)).
"""

import argparse
import json
import os
import sys

import torch
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("prefs")
    ap.add_argument("scores")
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()

    tok = Tokenizer.from_file(os.path.join(a.model, "tokenizer.json"))
    with open(os.path.join(a.model, "tokenizer_config.json")) as f:
        eos_token = json.load(f)["eos_token"]
    eos = tok.token_to_id(eos_token["content"] if isinstance(eos_token, dict) else eos_token)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32).eval()
    with open(a.prefs) as f:
        prefs = [json.loads(line) for line in f if line.strip()]
    with open(a.scores) as f:
        scores = [json.loads(line) for line in f if line.strip()]
    if len(prefs) != len(scores):
        sys.exit(f"error: {len(prefs)} pairs in {a.prefs} but {len(scores)} score rows (raise --max-length)")

    def summed_logp(prompt, completion):
        p = tok.encode(prompt).ids
        full = tok.encode(prompt + completion).ids
        assert full[: len(p)] == p, "prompt tokens are not a prefix"
        if full[-1] != eos:
            full.append(eos)
        with torch.no_grad():
            logits = model(torch.tensor([full])).logits[0]
        lp = torch.log_softmax(logits.double(), -1)
        return sum(float(lp[t - 1, full[t]]) for t in range(max(len(p), 1), len(full)))

    worst = 0.0
    for row, sc in zip(prefs, scores):
        for side in ("chosen", "rejected"):
            ours = sc["policy_logps"][side]
            ref = summed_logp(row["prompt"], row[side])
            worst = max(worst, abs(ours - ref) / max(1.0, abs(ref)))
    print(f"{len(prefs)} pairs, {2 * len(prefs)} sequences: max relative difference of summed log-probs {worst:.2e}")
    sys.exit(1 if worst > a.tol else 0)


if __name__ == "__main__":
    main()
