#!/usr/bin/env python3
"""transformers baseline for the generation benchmark (bench/generate.cpp is the rlhf.cpp side).

Loads the same HF checkpoint directory in float32 (sdpa attention, the default), builds the same
prompts (`batch` prompts of `prompt` ids, id (i * 7919 + j * 104729 + 13) % vocab; equal lengths,
so no padding), and times model.generate(max_new_tokens=new, min_new_tokens=new, use_cache=True,
eos_token_id=None) -- do_sample=True with temperature 1, top_k 0, top_p 1 (the full softmax), or
greedy with --temperature 0. Time per run covers prefill and all decode steps; tokens_per_s =
batch * new / mean run time, warm-up runs excluded. Run with OMP_WAIT_POLICY=PASSIVE and
--threads 2 (bench/run_generate.sh does). Prints one JSON line.
"""

import argparse
import json
import time

import torch
import transformers
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--prompt", type=int, default=32)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--temperature", type=float, default=1.0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
    model.eval()
    vocab = model.config.vocab_size
    ids = torch.tensor([[(i * 7919 + j * 104729 + 13) % vocab for j in range(a.prompt)] for i in range(a.batch)])
    kw = dict(
        attention_mask=torch.ones_like(ids),
        max_new_tokens=a.new,
        min_new_tokens=a.new,
        use_cache=True,
        eos_token_id=None,
        pad_token_id=0,
    )
    if a.temperature > 0:
        kw.update(do_sample=True, temperature=a.temperature, top_k=0, top_p=1.0)
    else:
        kw.update(do_sample=False)
    times = []
    generated = 0
    with torch.inference_mode():
        for r in range(a.warmup + a.runs):
            torch.manual_seed(r)
            t = time.perf_counter()
            out = model.generate(ids, **kw)
            dt = time.perf_counter() - t
            generated = (out.shape[1] - a.prompt) * a.batch
            if r >= a.warmup:
                times.append(dt)
    mean = sum(times) / len(times)
    print(
        json.dumps(
            {
                "impl": "transformers",
                "model": a.model,
                "params": sum(p.numel() for p in model.parameters()),
                "batch": a.batch,
                "prompt_len": a.prompt,
                "new_tokens": a.new,
                "generated": generated,
                "temperature": a.temperature,
                "run_ms": round(mean * 1e3, 1),
                "tokens_per_s": round(generated / mean, 1),
                "threads": a.threads,
                "torch": torch.__version__,
                "transformers": transformers.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
