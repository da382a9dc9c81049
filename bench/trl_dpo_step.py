#!/usr/bin/env python3
"""TRL baseline for the DPO-step benchmark (bench/dpo_step.cpp is the rlhf.cpp side).

TRL's DPOTrainer, sigmoid loss (beta 0.1), on CPU in float32, on a randomly initialised model
of the same shape as the C++ side and the same batch: 8 pairs, each a prompt of 128 random ids
and a chosen and a rejected completion of 127 random ids + EOS (50256), so every sequence is
256 tokens and nothing is padded.

  --model llama-small: LlamaForCausalLM, 4 layers, hidden 256, 4 heads (no GQA), intermediate
                       768, vocab 50257, untied, rms eps 1e-6, rope theta 10000
  --model gpt2-small : GPT2LMHeadModel, 12 layers, hidden 768, 12 heads, vocab 50257

attn_implementation sdpa (the default users get). TRL builds its reference model from the
policy's model id; a model built from a config has none, so the script passes
ref_model=copy.deepcopy(model) -- the copy TRL would otherwise load -- and TRL computes the
reference log-probs in every step (its default, precompute_ref_log_probs=False).
--precompute-ref sets precompute_ref_log_probs=True instead (no reference model held; the
reference pass runs once in the trainer's constructor), which is rlhf.cpp's own scheme.

Tokenizer-free in effect: the processing class is a word-level tokenizer whose vocabulary is
"w0".."w50256" -> 0..50256 with whitespace pre-tokenization and no special tokens added, and the
dataset holds the ids written as words, so TRL's own tokenization (done in the constructor,
not timed) reproduces the ids exactly; the script checks the tokenized lengths.

DPOConfig: per_device_train_batch_size 8, max_length 512, bf16 False, use_cpu True,
gradient_checkpointing False, learning_rate 1e-6, max_steps warmup + steps, logging_steps 1,
report_to [], dataloader_num_workers 0 (otherwise TRL/HF defaults: AdamW torch, weight decay
0, linear schedule, clip 1.0, dropout disabled). Step time: a TrainerCallback between
on_step_begin and on_step_end (forward of policy and reference, loss, backward, clip, optimizer
and scheduler step); the warm-up steps are excluded. Run with 2 threads and
OMP_WAIT_POLICY=PASSIVE (bench/run_dpo_step.sh does).

Prints one JSON line {"impl": "trl", "model", "pairs_per_s", "step_ms", "peak_rss_mb",
"threads", versions, ...}; peak_rss_mb is resource.getrusage(RUSAGE_SELF).ru_maxrss of this
process (libraries, tokenizer and dataset included; rss_after_import_mb shows the part that is
there before any model exists, rss_before_train_mb the resident size once the trainer is built).
"""

import argparse
import contextlib
import copy
import json
import os
import resource
import sys
import tempfile
import time

VOCAB = 50257
EOS = 50256


def rss_now_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kilobytes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="llama-small", choices=["llama-small", "gpt2-small"])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--completion", type=int, default=128)
    ap.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    ap.add_argument("--precompute-ref", action="store_true",
                    help="precompute_ref_log_probs=True (no reference model held while training)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.steps < 1 or args.warmup < 0:
        ap.error("--steps must be >= 1 and --warmup >= 0")

    if os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
        print("warning: run with OMP_WAIT_POLICY=PASSIVE (see bench/run_dpo_step.sh)", file=sys.stderr)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import accelerate
    import datasets
    import tokenizers
    import torch
    import transformers
    import trl
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, LlamaConfig, AutoModelForCausalLM, PreTrainedTokenizerFast, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    torch.set_num_threads(args.threads)
    rss_after_import = rss_now_mb()

    # ---- model --------------------------------------------------------------------------------
    torch.manual_seed(args.seed)
    if args.model == "llama-small":
        cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=256, intermediate_size=768, num_hidden_layers=4,
                          num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
                          rms_norm_eps=1e-6, rope_theta=10000.0, hidden_act="silu", tie_word_embeddings=False,
                          bos_token_id=EOS, eos_token_id=EOS, pad_token_id=EOS)
    else:
        cfg = GPT2Config(vocab_size=VOCAB, n_embd=768, n_layer=12, n_head=12, n_positions=1024,
                         bos_token_id=EOS, eos_token_id=EOS, pad_token_id=EOS)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32, attn_implementation=args.attn)
    assert model.config._attn_implementation == args.attn
    ref_model = None if args.precompute_ref else copy.deepcopy(model)

    # ---- tokenizer and data -------------------------------------------------------------------
    vocab = {f"w{i}": i for i in range(VOCAB)}
    wl = Tokenizer(models.WordLevel(vocab=vocab, unk_token="w0"))
    wl.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=wl, eos_token=f"w{EOS}", pad_token=f"w{EOS}", unk_token="w0")

    g = torch.Generator().manual_seed(1)

    def words(n):
        return " ".join(f"w{i}" for i in torch.randint(0, EOS, (n,), generator=g).tolist())

    rows = {"prompt": [], "chosen": [], "rejected": []}
    for _ in range(args.pairs):
        rows["prompt"].append(words(args.prompt))
        for side in ("chosen", "rejected"):  # ends with EOS, so TRL appends none
            rows[side].append(" " + words(args.completion - 1) + f" w{EOS}")
    train_dataset = datasets.Dataset.from_dict(rows)

    # ---- trainer ------------------------------------------------------------------------------
    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times, self.t0 = [], None

        def on_step_begin(self, args_, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args_, state, control, **kw):
            self.times.append(time.perf_counter() - self.t0)

    timer = StepTimer()
    out_dir = tempfile.mkdtemp(prefix="trl_dpo_step_")
    dpo_args = DPOConfig(
        output_dir=out_dir,
        per_device_train_batch_size=args.pairs,
        max_length=512,
        bf16=False,
        use_cpu=True,
        gradient_checkpointing=False,
        learning_rate=1e-6,
        max_steps=args.warmup + args.steps,
        logging_steps=1,
        report_to=[],
        dataloader_num_workers=0,
        beta=0.1,
        loss_type=["sigmoid"],
        precompute_ref_log_probs=args.precompute_ref,
        save_strategy="no",
        disable_tqdm=True,
        seed=args.seed,
    )
    # stdout carries only the result line: the trainer's own log lines go to stderr
    t_init = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        trainer = DPOTrainer(model=model, ref_model=ref_model, args=dpo_args, train_dataset=train_dataset,
                             processing_class=tok, callbacks=[timer])
    init_s = time.perf_counter() - t_init
    rss_before_train = rss_now_mb()
    ds = trainer.train_dataset
    for col, n in (("prompt_ids", args.prompt), ("chosen_ids", args.completion), ("rejected_ids", args.completion)):
        lens = {len(x) for x in ds[col]}
        assert lens == {n}, f"{col}: lengths {lens}, expected {n}"
    assert ds[0]["chosen_ids"][-1] == EOS

    with contextlib.redirect_stdout(sys.stderr):
        trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    times = timer.times[args.warmup:]
    assert len(times) == args.steps, (len(timer.times), args.warmup, args.steps)
    mean_s = sum(times) / len(times)
    print(json.dumps({
        "impl": "trl",
        "model": args.model,
        "pairs_per_s": round(args.pairs / mean_s, 3),
        "step_ms": round(mean_s * 1e3, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "threads": torch.get_num_threads(),
        "step_ms_min": round(min(times) * 1e3, 1),
        "step_ms_each": [round(t * 1e3, 1) for t in times],
        "rss_after_import_mb": round(rss_after_import, 1),
        "rss_before_train_mb": round(rss_before_train, 1),
        "trainer_init_s": round(init_s, 2),
        "precompute_ref_log_probs": args.precompute_ref,
        "attn": model.config._attn_implementation,
        "params": sum(p.numel() for p in model.parameters()),
        "pairs": args.pairs, "seq_len": args.prompt + args.completion,
        "prompt_len": args.prompt, "completion_len": args.completion,
        "steps": args.steps, "warmup": args.warmup,
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
        "trl": trl.__version__, "transformers": transformers.__version__, "torch": torch.__version__,
        "accelerate": accelerate.__version__, "datasets": datasets.__version__,
        "tokenizers": tokenizers.__version__,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }))


if __name__ == "__main__":
    main()
