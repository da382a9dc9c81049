#!/usr/bin/env python3
"""PyTorch eager baseline for the training-step benchmark.

One step = forward of a randomly initialised GPT2LMHeadModel on random token ids,
mean cross-entropy (next-token, labels = input_ids, HF shifts internally; dropout 0
unless --dropout, as in RLHF fine-tuning),
backward, torch.optim.AdamW step, zero_grad. Timed over --steps after --warmup.

Run it the way the C++ engine is benchmarked: 2 cores, and OpenMP threads that
sleep rather than spin when idle, otherwise PyTorch's spinning workers distort
the timing of anything sharing the cores:

  OMP_WAIT_POLICY=PASSIVE taskset -c 0,1 reference/.venv/bin/python bench/pytorch_step.py \
      --layers 12 --hidden 768 --heads 12 --vocab 50257 --batch 4 --seq 256 --steps 3 --warmup 1

Prints one JSON line:
  {"impl": "pytorch", "torch": ..., "tokens_per_s": ..., "step_ms": ..., "threads": ..., ...}
tokens_per_s = batch * seq / mean step time.
"""

import argparse
import json
import os
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"],
                    help="sdpa is what users get by default")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    if os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
        print("warning: run with OMP_WAIT_POLICY=PASSIVE (see header)", file=sys.stderr)

    import torch
    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel

    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    cfg = GPT2Config(
        vocab_size=args.vocab,
        n_positions=max(1024, args.seq),
        n_embd=args.hidden,
        n_layer=args.layers,
        n_head=args.heads,
        bos_token_id=0,
        eos_token_id=0,
        attn_implementation=args.attn,
        # RLHF trainers (TRL etc.) disable dropout; 0 by default, --dropout 0.1 for GPT-2 pretraining
        resid_pdrop=args.dropout,
        embd_pdrop=args.dropout,
        attn_pdrop=args.dropout,
    )
    model = GPT2LMHeadModel(cfg)
    assert model.config._attn_implementation == args.attn
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    ids = torch.randint(0, args.vocab, (args.batch, args.seq))

    def step():
        loss = model(input_ids=ids, labels=ids).loss  # mean cross-entropy
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t0)

    mean_s = sum(times) / len(times)
    print(json.dumps({
        "impl": "pytorch",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "attn": model.config._attn_implementation,
        "tokens_per_s": round(args.batch * args.seq / mean_s, 2),
        "step_ms": round(mean_s * 1e3, 1),
        "step_ms_min": round(min(times) * 1e3, 1),
        "step_ms_each": [round(t * 1e3, 1) for t in times],
        "threads": torch.get_num_threads(),
        "layers": args.layers, "hidden": args.hidden, "heads": args.heads, "vocab": args.vocab,
        "batch": args.batch, "seq": args.seq, "steps": args.steps, "warmup": args.warmup,
        "params": sum(p.numel() for p in model.parameters()),
        "dropout": args.dropout,
        "loss": round(loss, 4),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }))


if __name__ == "__main__":
    main()
