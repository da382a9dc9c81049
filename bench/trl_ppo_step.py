#!/usr/bin/env python3
"""TRL PPO baseline for the online-RL benchmark (bench/online_step.sh METHODS=ppo; the rlhf.cpp side is
`rlhf ppo` itself, run by that script on the same model, reward-model and prompt files).

Runs in the second reference venv (reference/setup_ppo_venv.sh -> reference/.venv-ppo): TRL 1.16 (the
main venv) has no PPOTrainer any more; TRL 1.12.0 is the newest release that ships one, as
trl.experimental.ppo.PPOTrainer (the "PPOv2" trainer: policy, ref_model, reward_model, value_model,
a train_dataset of input_ids). transformers 5.24.0 and torch 2.15.0, as in the main venv.

Inputs: --model, a directory made by `bench/trl_online_step.py prepare` (the Qwen2 model whose
completions never end early -- see that script's docstring -- with the fixture tokenizer and
prompts.jsonl), and --reward-model, a scalar-head model of the same family and size
(`rlhf init-model --family qwen2 --preset small --vocab-size 2048 --score-head --tokenizer ... --seed 1`,
loaded as Qwen2ForSequenceClassification, num_labels 1).

Models, as in TRL's own PPO example: policy = Qwen2ForCausalLM from --model; ref_model = a second load
of --model (run every step for the KL penalty); reward_model = Qwen2ForSequenceClassification from
--reward-model; value_model = a second, separately trained load of --reward-model. All float32, sdpa
attention, dropout off (TRL disables it), no gradient checkpointing, no PEFT. Every load must report no
missing or unexpected keys. rlhf: `--reward rm:RM --critic RM` (a separate critic initialised from the RM).

Prompts: all 64 lines of prompts.jsonl, tokenized with the
prepared directory's tokenizer (18 tokens each, no special tokens added -- the fixture tokenizer has
no BOS and no post-processor, the same ids rlhf.cpp gets for a plain-string prompt); the script
checks that every prompt has the same length, so DataCollatorWithPadding pads nothing. TRL draws
a shuffled batch of 32 per step; rlhf draws 32 of the same 64 prompts per step.

PPOConfig (TRL default in brackets where it differs):
  per_device_train_batch_size 32 [8], gradient_accumulation_steps 1, num_mini_batches 1,
  local_rollout_forward_batch_size 32 [64]  -> 32 episodes per step, one rollout of 32 sequences
  generated together, one mini-batch of 32 per PPO epoch (rlhf: --prompts-per-step 32
  --num-generations 1 --generate-batch-size 32 --num-mini-batches 1);
  num_ppo_epochs 4 -> 4 forward/backward passes and optimizer steps per step (rlhf default 4);
  total_episodes 32 x (warmup + steps), so num_total_batches = warmup + steps (rlhf --max-steps);
  response_length 64 [53] (rlhf --max-new-tokens 64); temperature 1.0 [0.7] (TRL samples at
  1.0 + 1e-7 and divides logits by it; rlhf --temperature 1.0), top_k 0 / top_p 1.0 (fixed by TRL);
  stop_token None, stop_token_id None (no truncation; the prepared model never samples EOS, so every
  response has exactly 64 tokens -- checked below on the generated ids); missing_eos_penalty None
  (rlhf --missing-eos-penalty 0);
  kl_coef 0.05, kl_estimator "k1" (rlhf --kl-coef 0.05 --kl-estimator k1, non-adaptive);
  vf_coef 0.1, cliprange 0.2, cliprange_value 0.2, gamma 1.0, lam 0.95 (all TRL defaults = rlhf's);
  whiten_rewards False (default; rlhf default off); advantages are always whitened by this trainer
  (rlhf: whitening on by default, no --no-whiten-advantages);
  score on the last response token (TRL's index convention; rlhf --score-placement trl_after_eos,
  which for full-length completions is the last token too);
  learning_rate 1e-6 [3e-6], lr_scheduler_type linear (decays to 0 over the run, stepped once per
  rollout; rlhf --lr-scheduler-type linear, its default), AdamW (transformers' default optim,
  adamw_torch_fused) betas 0.9/0.999, eps 1e-8, weight_decay 0, one optimizer over policy + value
  model (rlhf: --critic-learning-rate 0 = the same rate); no gradient clipping: this trainer's loop
  calls optimizer.step() without clip_grad_norm_, whatever max_grad_norm says (rlhf --max-grad-norm 0);
  use_cpu, bf16 False [True], gradient_checkpointing False [True], num_sample_generations 0 [10] (no
  extra sampling of an eval set), logging_steps 1, report_to [], save_strategy "no", disable_tqdm,
  dataloader_num_workers 0, seed 42. torch.set_num_threads(--threads) (2; rlhf --threads 2).

Step time: the wall time between consecutive on_step_end callbacks (this trainer's own loop calls
callback_handler.on_step_end once per rollout/update iteration, after logging and the scheduler
step; the first interval starts at on_train_begin) -- everything done per step: data loader,
generation with the transformers generate() loop and KV cache (TRL takes the sampling log-probs from
generate()'s scores), reference-model forward, value-model and reward-model forwards, GAE and
whitening, 4 PPO epochs of policy+value forward/backward and optimizer steps, metrics -- for the
steps after --warmup. This is the definition bench/online_step.sh uses for rlhf (time between
consecutive "ppo step i/N" lines). CPU time (process_time, all threads) per step is reported too.
Run with OMP_WAIT_POLICY=PASSIVE and 2 threads. Prints one JSON line on stdout, of the same shape as
bench/trl_online_step.py's.
"""

import argparse
import sys

import trl_common as common  # bench/trl_common.py: what this script and trl_online_step.py share
from trl_common import EOS, PAD  # the prepared model's / fixture tokenizer's ids


def run(args):
    common.check_environment()

    import accelerate  # noqa: F401 (imported here as before; common.result_line reports the versions)
    import datasets
    import torch
    import transformers  # noqa: F401
    import trl
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    try:
        from trl.experimental.ppo import PPOConfig, PPOTrainer
        from trl.experimental.ppo import ppo_trainer as ppo_module
    except ImportError as e:
        sys.exit(f"trl {trl.__version__} has no trl.experimental.ppo ({e}): run reference/setup_ppo_venv.sh "
                 "and use reference/.venv-ppo/bin/python")

    common.quiet_libraries(args.threads)

    tok = AutoTokenizer.from_pretrained(args.model)
    assert tok.eos_token_id == EOS and tok.pad_token_id == PAD, (tok.eos_token_id, tok.pad_token_id)
    prompts = common.read_prompts(args.model)
    ids = [tok(p)["input_ids"] for p in prompts]
    assert ids == [tok(p, add_special_tokens=False)["input_ids"] for p in prompts], "the tokenizer adds specials"
    lens = {len(x) for x in ids}
    assert len(lens) == 1, f"prompt token counts differ: {lens}"  # no padding on either side
    prompt_len = lens.pop()
    assert all(t < 2000 for x in ids for t in x), "a prompt holds a special id"
    train_dataset = datasets.Dataset.from_dict({"input_ids": ids})

    def load(cls, path):
        m, info = cls.from_pretrained(path, dtype=torch.float32, output_loading_info=True)
        bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
        assert not bad, f"{cls.__name__} from {path}: {bad}"
        return m

    policy = load(AutoModelForCausalLM, args.model)
    ref_model = load(AutoModelForCausalLM, args.model)
    reward_model = load(AutoModelForSequenceClassification, args.reward_model)
    value_model = load(AutoModelForSequenceClassification, args.reward_model)
    for m in (reward_model, value_model):
        assert type(m).__name__ == "Qwen2ForSequenceClassification" and m.config.num_labels == 1, type(m)

    # Every generated response is checked: 64 new tokens, no EOS and no pad id anywhere (TRL would
    # otherwise pad short ones and mask them). batch_generation is looked up as a module global by
    # PPOTrainer.train, so wrapping it sees every rollout; the check is two tensor compares.
    gen_checks = []
    batch_generation = ppo_module.batch_generation

    def checked_batch_generation(model, queries, *a, **kw):
        query_responses, logits = batch_generation(model, queries, *a, **kw)
        resp = query_responses[:, queries.shape[1]:]
        gen_checks.append({"shape": list(resp.shape), "eos": int((resp == EOS).sum()),
                           "pad": int((resp == PAD).sum()), "special": int((resp >= 2000).sum())})
        return query_responses, logits

    ppo_module.batch_generation = checked_batch_generation

    timer = common.step_timer()
    batch = args.prompts_per_step
    n_steps = args.warmup + args.steps
    cfg = PPOConfig(
        # + per_device_train_batch_size=batch, gradient_accumulation_steps=1, temperature=1.0,
        # learning_rate=1e-6, use_cpu, bf16 False, ... (common.training_args)
        **common.training_args("ppo", batch, args.seed),
        num_mini_batches=1,
        local_rollout_forward_batch_size=batch,
        num_ppo_epochs=4,
        total_episodes=batch * n_steps,
        response_length=args.max_new_tokens,
        stop_token=None,
        stop_token_id=None,
        missing_eos_penalty=None,
        kl_coef=0.05,
        kl_estimator="k1",
        vf_coef=0.1,
        cliprange=0.2,
        cliprange_value=0.2,
        gamma=1.0,
        lam=0.95,
        whiten_rewards=False,
        lr_scheduler_type="linear",
        weight_decay=0.0,
        num_sample_generations=0,
    )
    trainer, init_s = common.to_stderr(PPOTrainer, args=cfg, processing_class=tok, model=policy,
                                       ref_model=ref_model, reward_model=reward_model, value_model=value_model,
                                       train_dataset=train_dataset, callbacks=[timer])
    assert cfg.num_total_batches == n_steps and cfg.mini_batch_size == batch, (cfg.num_total_batches, cfg.mini_batch_size)
    assert trainer.stop_token_id is None
    assert next(policy.parameters()).dtype == torch.float32
    common.to_stderr(trainer.train)
    logs = [h for h in trainer.state.log_history if "objective/kl" in h]
    assert len(logs) == n_steps, len(logs)
    assert len(gen_checks) == n_steps, len(gen_checks)
    for g in gen_checks:  # every completion ran to the limit (no EOS, see the module docstring)
        assert g == {"shape": [batch, args.max_new_tokens], "eos": 0, "pad": 0, "special": 0}, g
    for h in logs:
        assert h["val/num_eos_tokens"] == 0, h
    wall = timer.wall[args.warmup:]
    assert len(timer.wall) == n_steps and len(wall) == args.steps, (len(timer.wall), args.warmup, args.steps)
    print(common.result_line("ppo", timer, args.steps, args.warmup, batch, args.max_new_tokens, init_s, {
        "prompt_len": prompt_len,
        "mean_completion_len": float(args.max_new_tokens),  # checked on every generated id above
        "kl_coef": cfg.kl_coef, "kl_estimator": cfg.kl_estimator, "num_ppo_epochs": cfg.num_ppo_epochs,
        "num_mini_batches": cfg.num_mini_batches, "temperature": cfg.temperature,
        "ref_model": trainer.ref_model is not None, "optim": str(cfg.optim),
        "objective_kl": [h["objective/kl"] for h in logs], "scores": [h["objective/scores"] for h in logs],
        "attn": policy.config._attn_implementation,
        "params": sum(p.numel() for p in policy.parameters()),
        "value_params": sum(p.numel() for p in value_model.parameters()),
    }))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="a directory made by `bench/trl_online_step.py prepare`")
    ap.add_argument("--reward-model", required=True, help="a scalar-head model directory (`rlhf init-model --score-head`)")
    common.add_run_arguments(ap, prompts_per_step=32)
    args = ap.parse_args()
    common.check_run_arguments(ap, args)
    run(args)


if __name__ == "__main__":
    main()
