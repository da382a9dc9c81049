#!/usr/bin/env python3
"""TRL baseline for the online-RL benchmark (bench/online_step.sh; the rlhf.cpp side is `rlhf rloo` /
`rlhf grpo` itself, run by that script on the same model directory and prompt file).

Two modes:

  prepare DIR  -- turns a model written by `rlhf init-model --family qwen2` (tied embeddings) into
                  one whose sampled completions never end early, copies the Qwen2 fixture
                  tokenizer next to it and writes DIR/prompts.jsonl. Plain Python (no packages);
                  when `tokenizers` is importable it also checks that every prompt has the same
                  number of tokens, so neither side pads prompts.
  run          -- one TRL trainer (--method rloo: RLOOTrainer, --method grpo: GRPOTrainer) on DIR,
                  timed per step; prints one JSON line.

Why the model is edited: a random model samples nearly uniformly, so the EOS id (<|im_end|>, 2002)
would come up about once per 2000 tokens and cut a completion short -- on either side, at
different places. The edit sets column 0 of the (tied) embedding to +1 for every regular token
(ids < 2000) and to -5 for the special and unused ids (2000..vocab-1). Prompts hold only regular
tokens, so hidden dimension 0 of the residual stream stays near +1 while the other dimensions are
~0.02, the final RMSNorm scales it to ~+15, and the tied LM head gives the special ids a logit
~90 below the others: EOS (and undecodable ids) are never sampled, and every completion has exactly
--max-new-tokens tokens on both sides. Both scripts check that (rlhf: completions/mean_length in
metrics.jsonl; here: TRL's completions/mean_length and min_length). Nothing else about the
sampling changes (temperature 1, no top-k/top-p/min-p, no logits processors on either side).
config.json gets eos_token_id 2002 / pad_token_id 2000 (the tokenizer's) so that
transformers' generate() uses the same stop id that rlhf.cpp takes from the tokenizer.

TRL settings (run mode): model loaded from DIR (Qwen2ForCausalLM, float32, sdpa attention, the
transformers generate() loop with its KV cache), per_device_train_batch_size = prompts x
generations (32), num_generations 4, steps_per_generation 1 (one optimizer step per rollout),
num_iterations 1, gradient_accumulation_steps 1, max_completion_length 64, temperature 1.0,
top_p 1.0, top_k 0, learning_rate 1e-6, max_grad_norm 1.0, AdamW (torch), use_cpu, bf16 False,
no gradient checkpointing, no vLLM, logging_steps 1, report_to []. The defaults that decide the
work per step are kept and match rlhf's defaults: RLOO beta 0.05 (a reference model is held and
run every step), GRPO beta 0.0 (no reference model), loss_type "dapo", scale_rewards "group",
epsilon 0.2. The reward is a Python function -|len(completion text) - 100| (rlhf:
`length(target=100):chars`), so rewards differ within a group and the update is not a no-op.

Step time: the wall time between consecutive on_step_end callbacks -- everything the trainer does
per step (data loader, generation, rewards, old/reference log-probs, forward/backward, optimizer,
logging) -- for the steps after --warmup (the first step also holds lazy initialisation).
This is the same definition the shell script uses for rlhf (time between consecutive
"step i/N" lines). CPU time (process_time, all threads) per step is reported too: it is
less sensitive to other load on the machine. Run with OMP_WAIT_POLICY=PASSIVE and 2 threads.
"""

import argparse
import json
import os
import shutil
import struct
import sys

import trl_common as common  # bench/trl_common.py: what this script and trl_ppo_step.py share
from trl_common import EOS, N_REGULAR, PAD

PROMPT = "Tell me a short story about the number {} and"  # {} = 10..73: the same token count


def prepare(d, tokenizer_dir, n_prompts):
    path = os.path.join(d, "model.safetensors")
    with open(path, "r+b") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        t = header["model.embed_tokens.weight"]
        assert t["dtype"] == "F32", t
        vocab, hidden = t["shape"]
        assert "lm_head.weight" not in header, "expects tied embeddings"
        base = 8 + n + t["data_offsets"][0]
        for row in range(vocab):
            f.seek(base + row * hidden * 4)
            f.write(struct.pack("<f", 1.0 if row < N_REGULAR else -5.0))
    cfg_path = os.path.join(d, "config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    assert cfg.get("tie_word_embeddings", True), "expects tied embeddings"
    cfg.update(eos_token_id=EOS, pad_token_id=PAD, bos_token_id=None)
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=2)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(tokenizer_dir, name), d)
    prompts = [PROMPT.format(10 + i) for i in range(n_prompts)]
    with open(os.path.join(d, "prompts.jsonl"), "w") as f:
        for p in prompts:
            f.write(json.dumps({"prompt": p}) + "\n")
    try:
        from tokenizers import Tokenizer
    except ImportError:
        return
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    lens = {len(tok.encode(p, add_special_tokens=False).ids) for p in prompts}
    assert len(lens) == 1, f"prompt token counts differ: {lens}"
    print(f"prepared {d}: vocab {vocab}, hidden {hidden}, {n_prompts} prompts of {lens.pop()} tokens",
          file=sys.stderr)


def run(args):
    common.check_environment()

    import accelerate  # noqa: F401 (imported here as before; common.result_line reports the versions)
    import datasets
    import torch
    import transformers  # noqa: F401
    import trl

    common.quiet_libraries(args.threads)

    prompts = common.read_prompts(args.model)
    train_dataset = datasets.Dataset.from_dict({"prompt": prompts})

    def length_reward(completions, **kw):  # rlhf: length(target=100):chars
        return [-abs(len(c) - 100.0) for c in completions]

    timer = common.step_timer()
    batch = args.prompts_per_step * args.num_generations
    settings = dict(
        # + per_device_train_batch_size=batch, gradient_accumulation_steps=1, temperature=1.0,
        # learning_rate=1e-6, use_cpu, bf16 False, ... (common.training_args)
        **common.training_args(args.method, batch, args.seed),
        steps_per_generation=1,
        num_iterations=1,
        num_generations=args.num_generations,
        max_completion_length=args.max_new_tokens,
        top_p=1.0,
        top_k=0,
        max_grad_norm=1.0,
        max_steps=args.warmup + args.steps,
        model_init_kwargs={"dtype": "float32"},
    )
    if args.method == "rloo":
        cfg = trl.RLOOConfig(**settings)
        trainer_cls = trl.RLOOTrainer
    else:
        cfg = trl.GRPOConfig(**settings)
        trainer_cls = trl.GRPOTrainer
    trainer, init_s = common.to_stderr(trainer_cls, model=args.model, reward_funcs=length_reward, args=cfg,
                                       train_dataset=train_dataset, callbacks=[timer])
    model = trainer.model
    assert next(model.parameters()).dtype == torch.float32
    common.to_stderr(trainer.train)
    logs = [h for h in trainer.state.log_history if "completions/mean_length" in h]
    assert len(logs) == args.warmup + args.steps, len(logs)
    for h in logs:  # every completion ran to the limit (no EOS, see the module docstring)
        assert h["completions/min_length"] == args.max_new_tokens, h
    wall = timer.wall[args.warmup:]
    assert len(wall) == args.steps, (len(timer.wall), args.warmup, args.steps)
    print(common.result_line(args.method, timer, args.steps, args.warmup, batch, args.max_new_tokens, init_s, {
        "mean_completion_len": sum(h["completions/mean_length"] for h in logs) / len(logs),
        "beta": cfg.beta, "ref_model": trainer.ref_model is not None,
        "attn": model.config._attn_implementation,
        "params": sum(p.numel() for p in model.parameters()),
    }))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("dir")
    p.add_argument("--tokenizer", required=True, help="directory with tokenizer.json and tokenizer_config.json")
    p.add_argument("--prompts", type=int, default=64)
    r = sub.add_parser("run")
    r.add_argument("--method", choices=["rloo", "grpo"], required=True)
    r.add_argument("--model", required=True, help="a directory made by `prepare`")
    common.add_run_arguments(r, prompts_per_step=8)
    r.add_argument("--num-generations", type=int, default=4)
    args = ap.parse_args()
    if args.mode == "prepare":
        if args.prompts > 90:
            ap.error("--prompts: at most 90 (two-digit numbers keep the token count equal)")
        prepare(args.dir, args.tokenizer, args.prompts)
    else:
        common.check_run_arguments(ap, args)
        run(args)


if __name__ == "__main__":
    main()
