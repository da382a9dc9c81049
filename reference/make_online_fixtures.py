"""Fixtures for the online objectives and estimators (src/rollout/advantages.h, src/objective/policy_gradient.h).

Writes tests/fixtures/online/{kl,whiten,ppo,grpo,rloo}.json from fixed random tensors (float64): a few
sequences of different lengths, stored flat (one entry per response token) with their lengths.

Two independent sides compute every expectation:
  * a PyTorch re-implementation that follows docs/algorithms.md (ragged, per sequence, autograd
    for every gradient);
  * TRL's own code where it can be driven on fixed tensors:
      - TRL 1.16 GRPOTrainer._compute_loss and RLOOTrainer._compute_loss, called unbound on a stub
        trainer whose log-prob function returns our tensors (loss and autograd gradients), and
        trl.trainer.utils.nanstd;
      - TRL 0.24's trl/core.py masked_mean / masked_var / masked_whiten (TRL 1.16 no longer ships the
        PPO trainer; 0.24 is its last release with it). The wheel is fetched with pip into
        $TRL024_DIR (default /tmp/trl-0.24.0) and only core.py is imported.
    TRL's PPO reward shaping, GAE and loss, and the GRPO/RLOO advantage blocks, are inline in the
    trainers' train()/_generate_and_score_completions and cannot be called on tensors; the script
    transcribes those lines on padded (B, T) tensors (TRL's layout, including the score index quirk)
    and asserts that both sides agree before writing.

Run: reference/.venv/bin/python reference/make_online_fixtures.py
"""

import importlib.util
import json
import math
import os
import subprocess
import sys
import types
import zipfile
from collections import defaultdict
from pathlib import Path

import torch

from trl.trainer.grpo_trainer import GRPOTrainer
from trl.trainer.rloo_trainer import RLOOTrainer
from trl.trainer.utils import nanstd

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "online"
torch.set_default_dtype(torch.float64)


def trl024_core():
    root = Path(os.environ.get("TRL024_DIR", "/tmp/trl-0.24.0"))
    core = root / "trl" / "core.py"
    if not core.exists():
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "trl==0.24.0", "--no-deps", "-d", str(root)], check=True)
        with zipfile.ZipFile(root / "trl-0.24.0-py3-none-any.whl") as z:
            z.extract("trl/core.py", root)
    spec = importlib.util.spec_from_file_location("trl024_core", core)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


core024 = trl024_core()


def flat(x):
    """Tensor or list to a JSON list, NaN as null."""
    vals = x.tolist() if torch.is_tensor(x) else list(x)
    return [None if (isinstance(v, float) and math.isnan(v)) else v for v in vals]


def pad(flat_vals, lengths, T, fill=0.0):
    out = torch.full((len(lengths), T), fill)
    o = 0
    for s, n in enumerate(lengths):
        out[s, :n] = flat_vals[o : o + n]
        o += n
    return out


def unpad(padded, lengths):
    return torch.cat([padded[s, :n] for s, n in enumerate(lengths)])


def close(a, b, what, tol=1e-12):
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    assert a.shape == b.shape, (what, a.shape, b.shape)
    assert torch.allclose(a, b, rtol=tol, atol=tol, equal_nan=True), (what, a, b)


g = torch.Generator().manual_seed(20260)


def randn(*shape, scale=1.0):
    return torch.randn(*shape, generator=g) * scale


LENGTHS = [3, 6, 1, 4, 5, 2]  # sequence 1 fills T: TRL's extra score slot falls back to its last token
T = 6
N = sum(LENGTHS)
lp_old = -(randn(N).abs() * 1.2 + 0.05)
lp_ref = lp_old + randn(N, scale=0.4)
lp = lp_old + randn(N, scale=0.25)  # policy being trained: some ratios leave [0.8, 1.2]


# ---------------------------------------------------------------------------------------------------------
# KL estimators (docs/algorithms.md section 4): values and d/d lp by autograd.
def kl_fixture():
    x = lp.clone().requires_grad_(True)
    log_r = lp_ref - x
    out = {"lp": flat(lp), "lp_ref": flat(lp_ref)}
    for name, k in {"k1": -log_r, "k2": 0.5 * log_r**2, "k3": torch.expm1(log_r) - log_r}.items():
        (grad,) = torch.autograd.grad(k.sum(), x)
        out[name] = flat(k.detach())
        out["d_" + name] = flat(grad)
    return out


# ---------------------------------------------------------------------------------------------------------
# Masked whitening: ours against TRL 0.24 core.
def whiten_fixture():
    x = randn(3, 5) * 2 + 0.7
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.bool)
    v = x[mask]
    mean = v.mean()
    var_unbiased = ((v - mean) ** 2).sum() / (v.numel() - 1)
    ours_shift = (v - mean) / torch.sqrt(var_unbiased + 1e-8)
    ours_keep = ours_shift + mean
    trl_shift = core024.masked_whiten(x, mask)
    trl_keep = core024.masked_whiten(x, mask, shift_mean=False)
    close(core024.masked_mean(x, mask), mean, "masked_mean")
    close(core024.masked_var(x, mask), var_unbiased, "masked_var")
    close(trl_shift[mask], ours_shift, "whiten shift_mean")
    close(trl_keep[mask], ours_keep, "whiten keep mean")
    return {
        "x": flat(x.flatten()),
        "mask": flat(mask.flatten().long()),
        "mean": mean.item(),
        "var_unbiased": var_unbiased.item(),
        "var_biased": (((v - mean) ** 2).mean()).item(),
        "trl_masked_mean": core024.masked_mean(x, mask).item(),
        "trl_masked_var": core024.masked_var(x, mask).item(),
        "trl_whiten_shift": flat(trl_shift[mask]),
        "trl_whiten_keep_mean": flat(trl_keep[mask]),
    }


# ---------------------------------------------------------------------------------------------------------
# PPO: rewards, GAE, whitening, clipped surrogate and value loss.
def ppo_reference(case, values, values_theta, scores, has_eos):
    """docs/algorithms.md 5.1, one sequence at a time (score on the last real token)."""
    beta, est = case["kl_coef"], case["kl_estimator"]
    scores = scores - case["missing_eos_penalty"] * (~has_eos).double()
    rewards, kls, o = [], [], 0
    for s, n in enumerate(LENGTHS):
        log_r = lp_ref[o : o + n] - lp_old[o : o + n]
        kl = -log_r if est == "k1" else torch.expm1(log_r) - log_r
        r = -beta * kl
        r[-1] += scores[s]
        rewards.append(r)
        kls.append(kl)
        o += n
    if case["whiten_rewards"]:
        allr = torch.cat(rewards)
        m, v = allr.mean(), allr.var(unbiased=True)
        rewards = [(r - m) / torch.sqrt(v + 1e-8) + m for r in rewards]
    adv, ret, o = [], [], 0
    for s, n in enumerate(LENGTHS):
        V = values[o : o + n]
        A = torch.zeros(n)
        last = 0.0
        for t in reversed(range(n)):
            next_v = V[t + 1] if t + 1 < n else 0.0
            last = rewards[s][t] + case["gamma"] * next_v - V[t] + case["gamma"] * case["lam"] * last
            A[t] = last
        adv.append(A)
        ret.append(A + V)
        o += n
    A = torch.cat(adv)
    A = (A - A.mean()) / torch.sqrt(A.var(unbiased=True) + 1e-8)
    R = torch.cat(ret)
    # loss
    x = lp.clone().requires_grad_(True)
    vt = values_theta.clone().requires_grad_(True)
    rho = torch.exp(x - lp_old)
    eps, c = case["cliprange"], case["cliprange_value"]
    pg = torch.maximum(-A * rho, -A * torch.clamp(rho, 1 - eps, 1 + eps)).mean()
    vclip = torch.clamp(vt, values - c, values + c)
    vf = 0.5 * torch.maximum((vt - R) ** 2, (vclip - R) ** 2).mean()
    loss = pg + case["vf_coef"] * vf
    d_lp, d_v = torch.autograd.grad(loss, (x, vt))
    seq_kl = torch.stack([k.sum() for k in kls])
    return {
        "rewards": torch.cat(rewards),
        "advantages": A,
        "returns": R,
        "loss": loss.item(),
        "d_logp": d_lp,
        "d_value": d_v,
        "objective/kl": seq_kl.mean().item(),
        "objective/scores": scores.mean().item(),
        "loss/policy_avg": pg.item(),
        "loss/value_avg": vf.item(),
        "policy/approxkl_avg": (0.5 * (x - lp_old) ** 2).mean().item(),
        "policy/clipfrac_avg": ((-A * torch.clamp(rho, 1 - eps, 1 + eps)) > (-A * rho)).double().mean().item(),
        "val/clipfrac_avg": ((vclip - R) ** 2 > (vt - R) ** 2).double().mean().item(),
    }


def ppo_trl(case, values_pad, values_theta_pad, scores, has_eos):
    """TRL 0.24 PPOTrainer.train(), steps 3-6 and the minibatch loss, on padded (B, T) tensors."""
    B = len(LENGTHS)
    INVALID_LOGPROB = 1.0
    sequence_lengths = torch.tensor(LENGTHS) - 1  # index of the last kept token
    logprobs = pad(lp_old, LENGTHS, T)
    ref_logprobs = pad(lp_ref, LENGTHS, T)
    scores = scores.clone()
    scores[~has_eos] -= case["missing_eos_penalty"]
    response_idxs = torch.arange(T).repeat(B, 1)
    padding_mask = response_idxs > sequence_lengths.unsqueeze(1)
    logprobs = torch.masked_fill(logprobs, padding_mask, INVALID_LOGPROB)
    ref_logprobs = torch.masked_fill(ref_logprobs, padding_mask, INVALID_LOGPROB)
    sequence_lengths_p1 = sequence_lengths + 1
    padding_mask_p1 = response_idxs > (sequence_lengths_p1.unsqueeze(1))
    values = torch.masked_fill(values_pad, padding_mask_p1, 0)
    logr = ref_logprobs - logprobs
    kl = -logr if case["kl_estimator"] == "k1" else (logr.exp() - 1) - logr
    non_score_reward = -case["kl_coef"] * kl
    rewards = non_score_reward.clone()
    actual_start = torch.arange(B)
    actual_end = torch.where(sequence_lengths_p1 < T, sequence_lengths_p1, sequence_lengths)
    rewards[(actual_start, actual_end)] += scores
    if case["whiten_rewards"]:
        rewards = core024.masked_whiten(rewards, mask=~padding_mask_p1, shift_mean=False)
        rewards = torch.masked_fill(rewards, padding_mask_p1, 0)
    lastgaelam = 0
    advantages_reversed = []
    for t in reversed(range(T)):
        nextvalues = values[:, t + 1] if t < T - 1 else 0.0
        delta = rewards[:, t] + case["gamma"] * nextvalues - values[:, t]
        lastgaelam = delta + case["gamma"] * case["lam"] * lastgaelam
        advantages_reversed.append(lastgaelam)
    advantages = torch.stack(advantages_reversed[::-1], axis=1)
    returns = advantages + values
    advantages = core024.masked_whiten(advantages, ~padding_mask)
    advantages = torch.masked_fill(advantages, padding_mask, 0)
    # one minibatch = the whole batch
    new_lp = pad(lp, LENGTHS, T).requires_grad_(True)
    vpred_in = values_theta_pad.clone().requires_grad_(True)
    new_logprobs = torch.masked_fill(new_lp, padding_mask, INVALID_LOGPROB)
    vpred = torch.masked_fill(vpred_in, padding_mask_p1, 0)
    vpredclipped = torch.clamp(vpred, values - case["cliprange_value"], values + case["cliprange_value"])
    vf_losses1 = torch.square(vpred - returns)
    vf_losses2 = torch.square(vpredclipped - returns)
    vf_loss = 0.5 * core024.masked_mean(torch.max(vf_losses1, vf_losses2), ~padding_mask_p1)
    vf_clipfrac = core024.masked_mean((vf_losses2 > vf_losses1).double(), ~padding_mask_p1)
    logprobs_diff = new_logprobs - logprobs
    ratio = torch.exp(logprobs_diff)
    pg_losses = -advantages * ratio
    pg_losses2 = -advantages * torch.clamp(ratio, 1.0 - case["cliprange"], 1.0 + case["cliprange"])
    pg_loss = core024.masked_mean(torch.max(pg_losses, pg_losses2), ~padding_mask)
    loss = pg_loss + case["vf_coef"] * vf_loss
    d_lp, d_v = torch.autograd.grad(loss, (new_lp, vpred_in))
    slot = ~padding_mask_p1
    return {
        "rewards": rewards[slot],
        "advantages": advantages[~padding_mask],
        "returns": returns[slot],
        "loss": loss.item(),
        "d_logp": d_lp[~padding_mask],
        "d_value": d_v[slot],
        "objective/kl": kl.sum(1).mean().item(),
        "objective/scores": scores.mean().item(),
        "loss/policy_avg": pg_loss.item(),
        "loss/value_avg": vf_loss.item(),
        "policy/approxkl_avg_trl_padded": (0.5 * (logprobs_diff**2).mean()).item(),
        "policy/clipfrac_avg": core024.masked_mean((pg_losses2 > pg_losses).double(), ~padding_mask).item(),
        "val/clipfrac_avg": vf_clipfrac.item(),
        "slot_mask": slot,
    }


def ppo_fixture():
    scores = randn(len(LENGTHS), scale=1.5)
    has_eos = torch.tensor([True, False, True, True, False, True])
    values_pad = randn(len(LENGTHS), T, scale=0.8)
    values_theta_pad = values_pad + randn(len(LENGTHS), T, scale=0.3)
    cases = []
    base = dict(gamma=1.0, lam=0.95, cliprange=0.2, cliprange_value=0.2, vf_coef=0.1, missing_eos_penalty=1.0)
    variants = [
        dict(placement="last_token", kl_estimator="k1", kl_coef=0.05, whiten_rewards=False),
        dict(placement="last_token", kl_estimator="k3", kl_coef=0.2, whiten_rewards=True, gamma=0.99, lam=0.9),
        dict(placement="trl_after_eos", kl_estimator="k1", kl_coef=0.05, whiten_rewards=False),
        dict(placement="trl_after_eos", kl_estimator="k3", kl_coef=0.1, whiten_rewards=True),
    ]
    token_mask = pad(torch.ones(N), LENGTHS, T).bool()
    for v in variants:
        case = {**base, **v}
        if case["placement"] == "last_token":
            values, values_theta = values_pad[token_mask], values_theta_pad[token_mask]
            out = ppo_reference(case, values, values_theta, scores, has_eos)
            # the same numbers through TRL's padded code path with the score index moved to the last token
            trl_lt = ppo_trl_last_token(case, values_pad, values_theta_pad, scores, has_eos)
            for k in ("rewards", "advantages", "returns", "loss", "d_logp", "d_value"):
                close(out[k], trl_lt[k], "last_token " + k)
            out["policy/approxkl_avg_trl_padded"] = out["policy/approxkl_avg"] * N / (len(LENGTHS) * T)
        else:
            out = ppo_trl(case, values_pad, values_theta_pad, scores, has_eos)
            slot = out.pop("slot_mask")
            values, values_theta = values_pad[slot], values_theta_pad[slot]
            out["policy/approxkl_avg"] = (0.5 * (lp - lp_old) ** 2).mean().item()
        case["values"] = flat(values)
        case["values_theta"] = flat(values_theta)
        case["expected"] = {k: (flat(x) if torch.is_tensor(x) else x) for k, x in out.items()}
        cases.append(case)
    return {
        "lengths": LENGTHS,
        "max_response_length": T,
        "lp_old": flat(lp_old),
        "lp_ref": flat(lp_ref),
        "lp": flat(lp),
        "scores": flat(scores),
        "has_eos": flat(has_eos.long()),
        "cases": cases,
    }


def ppo_trl_last_token(case, values_pad, values_theta_pad, scores, has_eos):
    """TRL's padded computation with the score on the last real token and no extra value slot."""
    B = len(LENGTHS)
    sequence_lengths = torch.tensor(LENGTHS) - 1
    response_idxs = torch.arange(T).repeat(B, 1)
    padding_mask = response_idxs > sequence_lengths.unsqueeze(1)
    logprobs = torch.masked_fill(pad(lp_old, LENGTHS, T), padding_mask, 1.0)
    ref_logprobs = torch.masked_fill(pad(lp_ref, LENGTHS, T), padding_mask, 1.0)
    scores = scores.clone()
    scores[~has_eos] -= case["missing_eos_penalty"]
    values = torch.masked_fill(values_pad, padding_mask, 0)
    logr = ref_logprobs - logprobs
    kl = -logr if case["kl_estimator"] == "k1" else (logr.exp() - 1) - logr
    rewards = -case["kl_coef"] * kl
    rewards[(torch.arange(B), sequence_lengths)] += scores
    if case["whiten_rewards"]:
        rewards = torch.masked_fill(core024.masked_whiten(rewards, mask=~padding_mask, shift_mean=False), padding_mask, 0)
    lastgaelam, rev = 0, []
    for t in reversed(range(T)):
        nextvalues = values[:, t + 1] if t < T - 1 else 0.0
        lastgaelam = rewards[:, t] + case["gamma"] * nextvalues - values[:, t] + case["gamma"] * case["lam"] * lastgaelam
        rev.append(lastgaelam)
    advantages = torch.stack(rev[::-1], axis=1)
    returns = advantages + values
    advantages = torch.masked_fill(core024.masked_whiten(advantages, ~padding_mask), padding_mask, 0)
    new_lp = pad(lp, LENGTHS, T).requires_grad_(True)
    vpred_in = values_theta_pad.clone().requires_grad_(True)
    ratio = torch.exp(torch.masked_fill(new_lp, padding_mask, 1.0) - logprobs)
    pg = core024.masked_mean(
        torch.max(-advantages * ratio, -advantages * torch.clamp(ratio, 1 - case["cliprange"], 1 + case["cliprange"])),
        ~padding_mask,
    )
    vpred = torch.masked_fill(vpred_in, padding_mask, 0)
    vclip = torch.clamp(vpred, values - case["cliprange_value"], values + case["cliprange_value"])
    vf = 0.5 * core024.masked_mean(torch.max((vpred - returns) ** 2, (vclip - returns) ** 2), ~padding_mask)
    loss = pg + case["vf_coef"] * vf
    d_lp, d_v = torch.autograd.grad(loss, (new_lp, vpred_in))
    m = ~padding_mask
    return {"rewards": rewards[m], "advantages": advantages[m], "returns": returns[m], "loss": loss.item(),
            "d_logp": d_lp[m], "d_value": d_v[m]}


# ---------------------------------------------------------------------------------------------------------
# APA (docs/algorithms.md 6): mean over tokens of (lp - lp_init - A/lambda)^2 + vf_coef * 0.5 * MSE.
def apa_fixture():
    A = randn(N)
    values_old = randn(N)
    values = values_old + randn(N, scale=0.3)
    returns = randn(N)
    lam, vf_coef = 0.1, 1.0
    x = lp.clone().requires_grad_(True)
    v = values.clone().requires_grad_(True)
    pol = ((x - lp_ref - A / lam) ** 2).mean()
    vf = 0.5 * ((v - returns) ** 2).mean()
    loss = pol + vf_coef * vf
    d_lp, d_v = torch.autograd.grad(loss, (x, v))
    return {"lengths": LENGTHS, "lp": flat(lp), "lp_init": flat(lp_ref), "advantages": flat(A), "values": flat(values),
            "values_old": flat(values_old), "returns": flat(returns), "lambda": lam, "vf_coef": vf_coef,
            "loss": loss.item(), "loss/policy_avg": pol.item(), "loss/value_avg": vf.item(),
            "d_logp": flat(d_lp), "d_value": flat(d_v)}


# ---------------------------------------------------------------------------------------------------------
# GRPO and RLOO: 8 samples, groups of 2 or 4; rewards with a zero-std pair and an unscorable (NaN) sample.
G_LENGTHS = [3, 6, 1, 4, 5, 2, 6, 3]
GT = 6
GN = sum(G_LENGTHS)
g_lp_old = -(randn(GN).abs() * 1.2 + 0.05)
g_lp_ref = g_lp_old + randn(GN, scale=0.4)
g_lp = g_lp_old + randn(GN, scale=0.25)
g_rewards = torch.tensor([1.0, 0.25, 0.5, 0.5, float("nan"), 2.0, -0.75, 1.5])


def group_advantages_reference(rewards, k, scaling):
    """docs/algorithms.md 7.2 as TRL computes it: nan-aware group mean, Bessel std (+1e-4), NaN advantages -> 0."""
    adv, zero = [], []
    valid_all = rewards[~torch.isnan(rewards)]
    batch_std = valid_all.std(unbiased=True)
    for g0 in range(0, len(rewards), k):
        grp = rewards[g0 : g0 + k]
        valid = grp[~torch.isnan(grp)]
        mean = valid.mean() if len(valid) else torch.tensor(float("nan"))
        std = valid.std(unbiased=True) if len(valid) > 1 else torch.tensor(float("nan"))
        if scaling == "batch":
            std = batch_std
        for r in grp:
            a = r - mean
            if scaling != "none":
                a = a / (std + 1e-4)
            adv.append(0.0 if torch.isnan(a) else a.item())
            zero.append(bool(not torch.isnan(std) and abs(std.item()) <= 1e-8))
    return torch.tensor(adv), sum(zero) / len(zero)


def group_advantages_trl_lines(rewards, k, scaling):
    """TRL 1.16 GRPOTrainer._generate_and_score_completions, sum_then_normalize branch, with TRL's nanstd."""
    mean_grouped_rewards = torch.nanmean(rewards.view(-1, k), dim=1).repeat_interleave(k, dim=0)
    if scaling in ["group", "none"]:
        std_rewards = nanstd(rewards.view(-1, k), dim=1).repeat_interleave(k, dim=0)
    else:
        std_rewards = nanstd(rewards).expand_as(rewards)
    advantages = rewards - mean_grouped_rewards
    if scaling != "none":
        advantages = advantages / (std_rewards + 1e-4)
    is_std_zero = torch.isclose(std_rewards, torch.zeros_like(std_rewards))
    return torch.nan_to_num(advantages, nan=0.0), is_std_zero.double().mean().item()


def stub_trainer(lp_padded, **attrs):
    acc = types.SimpleNamespace(num_processes=1, reduce=lambda x, reduction="sum": x, gather=lambda x: x,
                                gather_for_metrics=lambda x: x)
    args = types.SimpleNamespace(use_bias_correction_kl=attrs.pop("use_bias_correction_kl", False), delta=None,
                                 steps_per_generation=1)
    return types.SimpleNamespace(
        _get_per_token_logps_and_entropies=lambda *a, **kw: (lp_padded, torch.zeros_like(lp_padded), None),
        aux_loss_enabled=False, top_entropy_quantile=1.0, off_policy_mask_threshold=None,
        importance_sampling_level="token", use_vllm=False, vllm_importance_sampling_correction=False,
        model=types.SimpleNamespace(training=True), current_gradient_accumulation_steps=1, accelerator=acc,
        _entropy_bonus_enabled=False, _metrics=defaultdict(lambda: defaultdict(list)), args=args, **attrs)


def trl_inputs(advantages):
    B = len(G_LENGTHS)
    mask = pad(torch.ones(GN), G_LENGTHS, GT)
    return {"prompt_ids": torch.zeros(B, 1, dtype=torch.long), "prompt_mask": torch.ones(B, 1, dtype=torch.long),
            "completion_ids": torch.zeros(B, GT, dtype=torch.long), "completion_mask": mask, "advantages": advantages}


def grpo_reference_loss(adv_seq, case):
    """docs/algorithms.md 7.2 per sequence, autograd for the gradient."""
    x = g_lp.clone().requires_grad_(True)
    per_seq, o, total = [], 0, []
    for s, n in enumerate(G_LENGTHS):
        lpx = x[o : o + n]
        rho = torch.exp(lpx - g_lp_old[o : o + n])
        A = adv_seq[s]
        l = -torch.minimum(rho * A, torch.clamp(rho, 1 - case["epsilon_low"], 1 + case["epsilon_high"]) * A)
        log_r = g_lp_ref[o : o + n] - lpx
        k3 = torch.exp(log_r) - log_r - 1
        if case["use_bias_correction_kl"]:
            k3 = k3 * rho
        l = l + case["beta"] * k3
        per_seq.append(l)
        o += n
    t = case["loss_type"]
    if t == "grpo":
        loss = torch.stack([l.sum() / len(l) for l in per_seq]).mean()
    elif t == "bnpo":
        loss = torch.cat(per_seq).sum() / GN
    elif t == "dr_grpo":
        loss = torch.cat(per_seq).sum() / (len(G_LENGTHS) * case["max_completion_length"])
    else:
        loss = torch.cat(per_seq).sum() / case["num_items_in_batch"]
    (d,) = torch.autograd.grad(loss, x)
    return loss.item(), d


def grpo_fixture():
    adv_cases = []
    for k in (2, 4):
        for scaling in ("group", "batch", "none"):
            ours, frac = group_advantages_reference(g_rewards, k, scaling)
            trl, frac_trl = group_advantages_trl_lines(g_rewards, k, scaling)
            close(ours, trl, f"group advantages k={k} {scaling}", tol=1e-10)
            assert frac == frac_trl, (k, scaling, frac, frac_trl)
            adv_cases.append({"group_size": k, "scaling": scaling, "advantages": flat(trl), "frac_reward_zero_std": frac})
    adv_seq, _ = group_advantages_trl_lines(g_rewards, 2, "group")
    loss_cases = []
    for loss_type, beta, bias, eps_low, eps_high in [
            ("grpo", 0.04, False, 0.2, 0.28), ("bnpo", 0.04, False, 0.2, 0.28), ("dr_grpo", 0.04, False, 0.2, 0.28),
            ("dapo", 0.04, False, 0.2, 0.28), ("dapo", 0.0, False, 0.1, 0.05), ("grpo", 0.1, True, 0.1, 0.05)]:
        case = dict(loss_type=loss_type, beta=beta, use_bias_correction_kl=bias, epsilon_low=eps_low,
                    epsilon_high=eps_high, max_completion_length=8, num_items_in_batch=GN + 5)
        lp_pad = pad(g_lp, G_LENGTHS, GT).requires_grad_(True)
        inputs = trl_inputs(adv_seq)
        inputs["old_per_token_logps"] = pad(g_lp_old, G_LENGTHS, GT)
        inputs["ref_per_token_logps"] = pad(g_lp_ref, G_LENGTHS, GT)
        inputs["num_items_in_batch"] = torch.tensor(float(case["num_items_in_batch"]))
        stub = stub_trainer(lp_pad, beta=beta, loss_type=loss_type, epsilon_low=eps_low, epsilon_high=eps_high,
                            max_completion_length=8, use_bias_correction_kl=bias)
        loss = GRPOTrainer._compute_loss(stub, None, inputs)
        (d_pad,) = torch.autograd.grad(loss, lp_pad)
        d = unpad(d_pad, G_LENGTHS)
        ref_loss, ref_d = grpo_reference_loss(adv_seq, case)
        close(loss.item(), ref_loss, "grpo loss " + loss_type)
        close(d, ref_d, "grpo grad " + loss_type)
        m = stub._metrics["train"]
        case["expected"] = {"loss": loss.item(), "d_logp": flat(d),
                            "clip_ratio/low_mean": m["clip_ratio/low_mean"][0],
                            "clip_ratio/high_mean": m["clip_ratio/high_mean"][0],
                            "clip_ratio/region_mean": m["clip_ratio/region_mean"][0]}
        if beta != 0:
            case["expected"]["kl"] = m["kl"][0]
        loss_cases.append(case)
    return {"lengths": G_LENGTHS, "lp": flat(g_lp), "lp_old": flat(g_lp_old), "lp_ref": flat(g_lp_ref),
            "rewards": flat(g_rewards), "advantage_cases": adv_cases, "loss_advantages": flat(adv_seq),
            "loss_cases": loss_cases}


def rloo_reference(scores, seq_kl, beta, k, normalize):
    """docs/algorithms.md 7.1: R = score - beta * KL; A_i = R_i - mean of the scorable siblings; NaN -> 0."""
    R = scores - beta * seq_kl
    adv = []
    for g0 in range(0, len(R), k):
        grp = R[g0 : g0 + k]
        for i in range(k):
            sib = torch.cat([grp[:i], grp[i + 1 :]])
            sib = sib[~torch.isnan(sib)]
            adv.append(float("nan") if torch.isnan(grp[i]) or len(sib) == 0 else (grp[i] - sib.mean()).item())
    A = torch.tensor(adv)
    if normalize:
        v = A[~torch.isnan(A)]
        A = (A - v.mean()) / (v.std(unbiased=True) + 1e-4)
    return torch.nan_to_num(A, nan=0.0)


def rloo_trl_lines(rewards, kl, beta, k, normalize):
    """TRL 1.16 RLOOTrainer._generate_and_score_completions: KL in the reward, leave-one-out, NaN handling."""
    rewards = rewards - beta * kl
    grouped_rewards = rewards.view(-1, k)
    scorable_counts = (~torch.isnan(grouped_rewards)).sum(dim=1, keepdim=True)
    grouped_sum = torch.nansum(grouped_rewards, dim=1, keepdim=True)
    baselines = ((grouped_sum - grouped_rewards) / (scorable_counts - 1)).view(-1)
    advantages = rewards - baselines
    if normalize:
        advantages = (advantages - torch.nanmean(advantages)) / (nanstd(advantages) + 1e-4)
    return torch.nan_to_num(advantages, nan=0.0)


def rloo_fixture():
    beta = 0.05
    seq_kl = torch.stack([t.sum() for t in torch.split(g_lp_old - g_lp_ref, G_LENGTHS)])
    adv_cases = []
    for k in (2, 4):
        for normalize in (False, True):
            ours = rloo_reference(g_rewards, seq_kl, beta, k, normalize)
            trl = rloo_trl_lines(g_rewards, seq_kl, beta, k, normalize)
            close(ours, trl, f"rloo k={k} normalize={normalize}", tol=1e-10)
            adv_cases.append({"group_size": k, "normalize": normalize, "advantages": flat(trl)})
    adv = rloo_trl_lines(g_rewards, seq_kl, beta, 2, False)
    loss_cases = []
    for eps_low, eps_high in [(0.2, 0.2), (0.1, 0.05)]:
        lp_pad = pad(g_lp, G_LENGTHS, GT).requires_grad_(True)
        inputs = trl_inputs(adv)
        inputs["old_logps"] = torch.stack([t.sum() for t in torch.split(g_lp_old, G_LENGTHS)])
        stub = stub_trainer(lp_pad, epsilon_low=eps_low, epsilon_high=eps_high)
        loss = RLOOTrainer._compute_loss(stub, None, inputs)
        (d_pad,) = torch.autograd.grad(loss, lp_pad)
        # reference: per sequence, docs/algorithms.md 7.1 with TRL's clipped ratio
        x = g_lp.clone().requires_grad_(True)
        L = torch.stack([t.sum() for t in torch.split(x, G_LENGTHS)])
        rho = torch.exp(L - inputs["old_logps"])
        ref = torch.maximum(-adv * rho, -adv * torch.clamp(rho, 1 - eps_low, 1 + eps_high)).mean()
        (ref_d,) = torch.autograd.grad(ref, x)
        close(loss.item(), ref.item(), "rloo loss")
        close(unpad(d_pad, G_LENGTHS), ref_d, "rloo grad")
        m = stub._metrics["train"]
        loss_cases.append({"epsilon_low": eps_low, "epsilon_high": eps_high, "loss": loss.item(),
                           "d_logp": flat(unpad(d_pad, G_LENGTHS)),
                           "clip_ratio/low_mean": m["clip_ratio/low_mean"][0],
                           "clip_ratio/high_mean": m["clip_ratio/high_mean"][0],
                           "clip_ratio/region_mean": m["clip_ratio/region_mean"][0]})
    return {"lengths": G_LENGTHS, "lp": flat(g_lp), "lp_old": flat(g_lp_old), "lp_ref": flat(g_lp_ref),
            "rewards": flat(g_rewards), "beta": beta, "seq_kl": flat(seq_kl), "advantage_cases": adv_cases,
            "loss_advantages": flat(adv), "loss_cases": loss_cases}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    fixtures = {"kl": kl_fixture(), "whiten": whiten_fixture(), "ppo": ppo_fixture(), "apa": apa_fixture(),
                "grpo": grpo_fixture(), "rloo": rloo_fixture()}
    meta = {"torch": torch.__version__, "trl": __import__("trl").__version__, "trl_ppo_core": "0.24.0",
            "script": "reference/make_online_fixtures.py"}
    for name, data in fixtures.items():
        data["reference"] = meta
        with open(OUT / f"{name}.json", "w") as f:
            json.dump(data, f, indent=1, allow_nan=False)
            f.write("\n")
    print("wrote", ", ".join(sorted(fixtures)), "to", OUT)


if __name__ == "__main__":
    main()
