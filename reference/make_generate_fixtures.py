#!/usr/bin/env python3
"""Greedy continuations by transformers' generate() for the committed tiny checkpoints.

For each of tests/fixtures/{gpt2,llama,qwen2,mistral}/model (written by make_fixtures.py),
a few prompts of different lengths are continued greedily (do_sample=False, KV cache, EOS =
the config's eos_token_id), one prompt per call so no padding is involved. The token ids go to
tests/fixtures/generate/greedy.json; tests/rollout/test_generate_parity.cpp requires
rlhf's sampler at temperature 0 to produce exactly these ids. min_margin records the smallest
gap between the best and second-best logit over the run, to show no step is a near tie.

Usage:
  reference/.venv/bin/python reference/make_generate_fixtures.py [--out tests/fixtures/generate]
"""

import argparse
import json
import os

import torch
import transformers
from transformers import AutoModelForCausalLM

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAMILIES = ["gpt2", "llama", "qwen2", "mistral", "qwen3", "smollm3", "olmo2", "gemma3", "gemma2", "phi3"]
PROMPT_LENGTHS = [1, 6, 17]
MAX_NEW_TOKENS = 40


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures", "generate"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    result = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "max_new_tokens": MAX_NEW_TOKENS,
        "families": {},
    }
    gen = torch.Generator().manual_seed(2024)
    for fam in FAMILIES:
        path = os.path.join(REPO, "tests", "fixtures", fam, "model")
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
        model.eval()
        eos = model.config.eos_token_id
        vocab = model.config.vocab_size
        cases = []

        def run(prompt, eos_id):
            with torch.no_grad():
                out = model.generate(
                    prompt,
                    attention_mask=torch.ones_like(prompt),
                    do_sample=False,
                    max_new_tokens=MAX_NEW_TOKENS,
                    eos_token_id=eos_id,
                    pad_token_id=eos_id,
                    output_scores=True,
                    return_dict_in_generate=True,
                )
            top2 = torch.stack([s[0].topk(2).values for s in out.scores])
            case = {
                "prompt": prompt[0].tolist(),
                "eos_token_id": eos_id,
                "completion": out.sequences[0, prompt.shape[1] :].tolist(),
                "min_margin": float((top2[:, 0] - top2[:, 1]).min()),
            }
            print(f"{fam}: prompt {prompt.shape[1]} tokens, eos {eos_id} -> {len(case['completion'])} tokens, "
                  f"min margin {case['min_margin']:.2e}")
            return case

        for n in PROMPT_LENGTHS:
            cases.append(run(torch.randint(3, vocab, (1, n), generator=gen), eos))
        # The tiny models never pick the config's EOS; make a token they do pick the EOS, so
        # that stopping (EOS kept, nothing after it) is compared too.
        stop_at = cases[1]["completion"][10]
        cases.append(run(torch.tensor([cases[1]["prompt"]]), stop_at))
        result["families"][fam] = {"cases": cases}
    with open(os.path.join(args.out, "greedy.json"), "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
