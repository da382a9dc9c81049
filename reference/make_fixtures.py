#!/usr/bin/env python3
"""Generate the tiny-model reference fixtures under tests/fixtures/<name>/.

Every model is built with transformers' own classes, written with
save_pretrained, reloaded from disk in float32 and evaluated in eval mode.
Expectations are therefore computed from the weights exactly as saved (for the
bf16 / f16 checkpoints that means the rounded weights, widened to f32).

Layout (see reference/README.md):
  tests/fixtures/<name>/model/               causal LM checkpoint (config.json + safetensors)
  tests/fixtures/<name>/rm/                  same trunk as *ForSequenceClassification, F32
  tests/fixtures/<name>/expected.safetensors input_ids, logits, logp, coef, loss,
                                             grad.<param>, score, hcoef, rm_loss, rm_grad.<param>

Usage:
  reference/.venv/bin/python reference/make_fixtures.py [--out tests/fixtures] [--only gpt2,llama]
"""

import argparse
import json
import os
import shutil
import sys

import numpy as np
import safetensors
import torch
import transformers
from safetensors.torch import save_file
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    GPT2Config,
    GPT2ForSequenceClassification,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    MistralConfig,
    MistralForCausalLM,
    MistralForSequenceClassification,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen2ForSequenceClassification,
    Gemma2Config,
    Gemma2ForCausalLM,
    Gemma2ForSequenceClassification,
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    Gemma3TextForSequenceClassification,
    Phi3Config,
    Phi3ForCausalLM,
    Phi3ForSequenceClassification,
    Olmo2Config,
    Olmo2ForCausalLM,
    Olmo2ForSequenceClassification,
    Qwen3Config,
    Qwen3ForCausalLM,
    Qwen3ForSequenceClassification,
    SmolLM3Config,
    SmolLM3ForCausalLM,
    SmolLM3ForSequenceClassification,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

VOCAB = 96
HIDDEN = 32
LAYERS = 2
HEADS = 4
INTER = 64
MAX_POS = 64
INIT_RANGE = 0.2  # large on purpose: logits must be far from uniform
B, T = 2, 10
PAD_ID = VOCAB - 1  # pad_token_id given to the reward-model configs
ATTN = "eager"  # expectations use the explicit-math path; sdpa is cross-checked

COMMON = dict(vocab_size=VOCAB, bos_token_id=1, eos_token_id=2, initializer_range=INIT_RANGE)


def llama_like(extra):
    d = dict(
        COMMON,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=INTER,
        max_position_embeddings=MAX_POS,
    )
    d.update(extra)
    return d


SPECS = {
    "gpt2": dict(
        seed=1001,
        config_cls=GPT2Config,
        config=dict(COMMON, n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS, n_inner=INTER, n_positions=MAX_POS),
        lm_cls=GPT2LMHeadModel,
        rm_cls=GPT2ForSequenceClassification,
        dtype=torch.float32,
        shard=None,
    ),
    "llama": dict(
        seed=1002,
        config_cls=LlamaConfig,
        config=llama_like(
            dict(
                num_key_value_heads=2,
                tie_word_embeddings=False,
                rms_norm_eps=1e-5,
                # transformers 5 spelling of rope_theta=500000 +
                # rope_scaling={"rope_type": "llama3", ...}
                rope_parameters={
                    "rope_type": "llama3",
                    "rope_theta": 500000.0,
                    "factor": 8.0,
                    "low_freq_factor": 1.0,
                    "high_freq_factor": 4.0,
                    "original_max_position_embeddings": 16,
                },
            )
        ),
        lm_cls=LlamaForCausalLM,
        rm_cls=LlamaForSequenceClassification,
        dtype=torch.bfloat16,
        shard="20KB",  # -> 3 shards + model.safetensors.index.json
    ),
    "qwen2": dict(
        seed=1003,
        config_cls=Qwen2Config,
        config=llama_like(
            dict(
                num_key_value_heads=2,
                tie_word_embeddings=True,  # like Qwen2.5-0.5B / 1.5B: tied, non-GPT-2 arch
                rms_norm_eps=1e-6,
                rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
            )
        ),
        lm_cls=Qwen2ForCausalLM,
        rm_cls=Qwen2ForSequenceClassification,
        dtype=torch.float16,
        shard=None,
    ),
    "mistral": dict(
        seed=1004,
        config_cls=MistralConfig,
        config=llama_like(
            dict(
                num_key_value_heads=2,
                tie_word_embeddings=False,
                rms_norm_eps=1e-5,
                sliding_window=4,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            )
        ),
        lm_cls=MistralForCausalLM,
        rm_cls=MistralForSequenceClassification,
        dtype=torch.float32,
        shard=None,
    ),
    # q/k RMSNorm per head before RoPE, head_dim 16 given explicitly (not hidden / heads = 8),
    # tied like Qwen3-0.6B, and layer 1 sliding (window 4 < T) while layer 0 attends fully.
    "qwen3": dict(
        seed=1005,
        config_cls=Qwen3Config,
        config=llama_like(
            dict(
                num_key_value_heads=2,
                head_dim=16,
                tie_word_embeddings=True,
                rms_norm_eps=1e-6,
                use_sliding_window=True,
                sliding_window=4,
                max_window_layers=1,
                rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
            )
        ),
        lm_cls=Qwen3ForCausalLM,
        rm_cls=Qwen3ForSequenceClassification,
        dtype=torch.bfloat16,
        shard=None,
    ),
    # Llama's block with RoPE off on layer 1 (no_rope_layers [1, 0]); tied as SmolLM3-3B.
    "smollm3": dict(
        seed=1006,
        config_cls=SmolLM3Config,
        config=llama_like(
            dict(
                num_key_value_heads=2,
                tie_word_embeddings=True,
                rms_norm_eps=1e-6,
                no_rope_layers=[1, 0],
                pad_token_id=None,  # its default (128004) is outside the tiny vocabulary
                rope_parameters={"rope_type": "default", "rope_theta": 5000000.0},
            )
        ),
        lm_cls=SmolLM3ForCausalLM,
        rm_cls=SmolLM3ForSequenceClassification,
        dtype=torch.float32,
        shard=None,
    ),
    # Norms after attention and MLP (none before), q/k RMSNorms over the whole projections.
    "olmo2": dict(
        seed=1007,
        config_cls=Olmo2Config,
        config=llama_like(
            dict(
                num_key_value_heads=2,
                tie_word_embeddings=False,
                rms_norm_eps=1e-6,
                pad_token_id=None,  # its default (1) would be nn.Embedding's padding_idx, with no gradient
                rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
            )
        ),
        lm_cls=Olmo2ForCausalLM,
        rm_cls=Olmo2ForSequenceClassification,
        dtype=torch.float16,
        shard=None,
    ),
    # Sandwich RMSNorms with (1 + w), GeGLU, the embedding scaled by sqrt(32), per-head q/k norms
    # with (1 + w), scores scaled by 1/sqrt(12) (not 1/sqrt(head_dim 16)), layer 0 sliding (window
    # 4 < T) with local RoPE base 10000 and layer 1 global with base 1e6 and linear scaling 2.
    "gemma3": dict(
        seed=1008,
        config_cls=Gemma3TextConfig,
        config=llama_like(
            dict(
                num_key_value_heads=2,
                head_dim=16,
                tie_word_embeddings=True,
                rms_norm_eps=1e-6,
                query_pre_attn_scalar=12,
                sliding_window=4,
                layer_types=["sliding_attention", "full_attention"],
                pad_token_id=None,
                rope_parameters={
                    "full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1000000.0},
                    "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                },
            )
        ),
        lm_cls=Gemma3ForCausalLM,
        rm_cls=Gemma3TextForSequenceClassification,
        dtype=torch.bfloat16,
        shard=None,
    ),
    # Gemma 3's block without q/k norms, plus soft-capped attention scores (cap 2: the tiny
    # model's scores reach it) and logits (cap 3), alternating sliding (window 4) and global.
    "gemma2": dict(
        seed=1009,
        config_cls=Gemma2Config,
        config=llama_like(
            dict(
                num_key_value_heads=2,
                head_dim=8,
                tie_word_embeddings=True,
                rms_norm_eps=1e-6,
                query_pre_attn_scalar=8,
                sliding_window=4,
                attn_logit_softcapping=2.0,
                final_logit_softcapping=3.0,
                pad_token_id=None,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            )
        ),
        lm_cls=Gemma2ForCausalLM,
        rm_cls=Gemma2ForSequenceClassification,
        dtype=torch.float32,
        shard=None,
    ),
    # Fused qkv_proj and gate_up_proj, RoPE on half of each head (partial_rotary_factor 0.5, as
    # Phi-4-mini's 0.75), LongRoPE with original_max_position_embeddings 8 < T (so the long factors
    # and the attention factor sqrt(1 + ln 8 / ln 8) apply), a window of 6 on every layer.
    "phi3": dict(
        seed=1010,
        config_cls=Phi3Config,
        config=llama_like(
            dict(
                num_key_value_heads=2,
                tie_word_embeddings=False,
                rms_norm_eps=1e-5,
                sliding_window=6,
                original_max_position_embeddings=8,
                pad_token_id=None,
                rope_parameters={
                    "rope_type": "longrope",
                    "rope_theta": 10000.0,
                    "partial_rotary_factor": 0.5,
                    "short_factor": [1.0, 1.5],
                    "long_factor": [2.0, 7.0],
                },
            )
        ),
        lm_cls=Phi3ForCausalLM,
        rm_cls=Phi3ForSequenceClassification,
        dtype=torch.bfloat16,
        shard=None,
    ),
}


def perturb_(model, gen):
    """Make biases and norm gains non-trivial so that a loader that ignores them
    (or swaps weight/bias) fails the fixture. Matrices keep the normal(0, 0.2) init."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            elif p.dim() == 1:  # LayerNorm / RMSNorm gains
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))


def strip_generation_config(d):
    p = os.path.join(d, "generation_config.json")
    if os.path.exists(p):
        os.remove(p)


def load_checked(cls, path, **kw):
    model, info = cls.from_pretrained(path, dtype=torch.float32, output_loading_info=True, **kw)
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    assert not bad, f"{path}: reload not clean: {bad}"
    model.eval()
    return model


def causal_logp(model, ids):
    logits = model(input_ids=ids).logits.float()
    logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None].long()).squeeze(-1)
    return logits, logp


def rm_scores(rm, ids):
    hidden = rm.base_model(input_ids=ids).last_hidden_state
    return rm.score(hidden).squeeze(-1)


def grads(model, prefix):
    out = {}
    for name, p in model.named_parameters():
        assert p.grad is not None, f"no grad for {name}"
        out[prefix + name] = p.grad.detach().float().contiguous()
    return out


def make(name, spec, out_root):
    print(f"== {name}", flush=True)
    torch.manual_seed(spec["seed"])
    gen = torch.Generator().manual_seed(spec["seed"])
    fdir = os.path.join(out_root, name)
    if os.path.exists(fdir):
        shutil.rmtree(fdir)
    mdir, rdir = os.path.join(fdir, "model"), os.path.join(fdir, "rm")

    # --- causal LM ------------------------------------------------------------------
    cfg = spec["config_cls"](**spec["config"])
    lm = spec["lm_cls"](cfg)
    perturb_(lm, gen)
    lm = lm.to(spec["dtype"])
    kw = {"max_shard_size": spec["shard"]} if spec["shard"] else {}
    lm.save_pretrained(mdir, **kw)
    strip_generation_config(mdir)
    if spec["shard"]:
        shards = [f for f in os.listdir(mdir) if f.endswith(".safetensors")]
        assert len(shards) >= 2 and os.path.exists(os.path.join(mdir, "model.safetensors.index.json")), shards
    del lm

    # --- reward model: same trunk (as saved, i.e. rounded), random score head, F32 ----
    lm32 = load_checked(AutoModelForCausalLM, mdir, attn_implementation=ATTN)
    rcfg = spec["config_cls"](**spec["config"])
    rcfg.num_labels = 1
    rcfg.pad_token_id = PAD_ID
    rm = spec["rm_cls"](rcfg)
    missing, unexpected = rm.base_model.load_state_dict(lm32.base_model.state_dict(), strict=True)
    assert not missing and not unexpected
    with torch.no_grad():
        rm.score.weight.copy_(INIT_RANGE * torch.randn(rm.score.weight.shape, generator=gen))
    assert rm.score.bias is None if hasattr(rm.score, "bias") else True
    rm = rm.to(torch.float32)
    rm.config.dtype = torch.float32
    rm.save_pretrained(rdir)
    strip_generation_config(rdir)
    del rm

    # --- inputs -------------------------------------------------------------------------
    ids = torch.randint(0, VOCAB, (B, T), generator=gen, dtype=torch.int64)
    coef = torch.rand((B, T - 1), generator=gen) * 2 - 1
    hcoef = torch.rand((B, T), generator=gen) * 2 - 1

    # --- LM expectations (from the checkpoint as saved) ---------------------------------
    lm32.zero_grad(set_to_none=True)
    logits, logp = causal_logp(lm32, ids)
    loss = (coef * logp).sum()
    loss.backward()
    exp = {
        "input_ids": ids.to(torch.int32),
        "logits": logits.detach().contiguous(),
        "logp": logp.detach().contiguous(),
        "coef": coef.contiguous(),
        "loss": loss.detach().reshape(()),
    }
    exp.update(grads(lm32, "grad."))
    mean_logp = logp.mean().item()
    print(f"   mean logp {mean_logp:.3f} (uniform {-np.log(VOCAB):.3f}), loss {loss.item():.5f}")

    # sdpa must agree with eager (transformers has no sdpa path with soft-capped scores)
    if not spec["config"].get("attn_logit_softcapping"):
        lm_sdpa = load_checked(AutoModelForCausalLM, mdir, attn_implementation="sdpa")
        with torch.no_grad():
            _, logp_sdpa = causal_logp(lm_sdpa, ids)
        d = (logp_sdpa - logp).abs().max().item()
        assert d < 1e-5, f"sdpa vs eager logp differ by {d}"

    # --- RM expectations ------------------------------------------------------------------
    rm32 = load_checked(AutoModelForSequenceClassification, rdir, attn_implementation=ATTN)
    rm32.zero_grad(set_to_none=True)
    score = rm_scores(rm32, ids)
    rm_loss = (hcoef * score).sum()
    rm_loss.backward()
    exp.update(
        {
            "score": score.detach().contiguous(),
            "hcoef": hcoef.contiguous(),
            "rm_loss": rm_loss.detach().reshape(()),
        }
    )
    exp.update(grads(rm32, "rm_grad."))
    # the RM trunk is the LM trunk: its last hidden state must match
    with torch.no_grad():
        h_lm = lm32.base_model(input_ids=ids).last_hidden_state
        h_rm = rm32.base_model(input_ids=ids).last_hidden_state
        assert torch.equal(h_lm, h_rm)
        # pooled HF logits == per-position score at the last non-pad token
        pooled = rm32(input_ids=ids).logits.squeeze(-1)
        nonpad = (ids != PAD_ID).int()
        last = (T - 1 - torch.flip(nonpad, [1]).argmax(1)).clamp(min=0)
        assert torch.allclose(pooled, score[torch.arange(B), last], atol=1e-6)

    if name == "mistral":
        check_sliding_window(mdir, ids, logp)
    if "layer_types" in lm32.config and "sliding_attention" in lm32.config.layer_types:
        check_layer_windows(mdir, ids, lm32.config)
    if "no_rope_layers" in lm32.config:
        check_nope_layers(mdir, ids, lm32.config)
    if getattr(lm32.config, "attn_logit_softcapping", None):
        check_softcaps(mdir, ids)

    meta = {
        "name": name,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "safetensors": safetensors.__version__,
        "saved_dtype": str(spec["dtype"]).replace("torch.", ""),
        "attn_implementation": ATTN,
    }
    # one metadata key holding sorted JSON: safetensors would otherwise write the
    # metadata map in hash order and the file would not be byte-reproducible
    save_file(exp, os.path.join(fdir, "expected.safetensors"), metadata={"reference": json.dumps(meta, sort_keys=True)})


def check_sliding_window(mdir, ids, logp_window):
    """Prove the fixture exercises the window (transformers' semantics: query q attends
    keys k with q - W < k <= q, i.e. W keys including itself)."""
    with open(os.path.join(mdir, "config.json")) as f:
        assert json.load(f)["sliding_window"] == 4
    for impl in ("eager", "sdpa"):
        win = load_checked(AutoModelForCausalLM, mdir, attn_implementation=impl)
        full = load_checked(AutoModelForCausalLM, mdir, attn_implementation=impl, sliding_window=None)
        assert win.config.sliding_window == 4 and full.config.sliding_window is None
        with torch.no_grad():
            lw = win(input_ids=ids).logits
            lf = full(input_ids=ids).logits
            # 1) positions < W see the same keys either way; later ones must differ
            assert torch.allclose(lw[:, :4], lf[:, :4], atol=1e-5), impl
            d = (lw[:, 4:] - lf[:, 4:]).abs().amax(dim=(0, 2))
            assert (d > 1e-3).all(), f"{impl}: window ignored? {d}"
            # 2) receptive field: with W=4 and 2 layers position t depends on tokens
            #    t-6..t only, so changing token 0 must leave positions >= 7 untouched.
            ids2 = ids.clone()
            ids2[:, 0] = (ids2[:, 0] + 1) % VOCAB
            lw2 = win(input_ids=ids2).logits
            lf2 = full(input_ids=ids2).logits
            assert torch.equal(lw2[:, 7:], lw[:, 7:]) or torch.allclose(lw2[:, 7:], lw[:, 7:], atol=1e-6), impl
            assert (lw2[:, 6] - lw[:, 6]).abs().max() > 1e-4, impl
            assert (lf2[:, 7:] - lf[:, 7:]).abs().max() > 1e-4, impl
        _, lp = causal_logp(win, ids)
        assert (lp - logp_window).abs().max() < 1e-5
    print("   sliding window verified (eager + sdpa): window != full, receptive field = 7 tokens")


def check_layer_windows(mdir, ids, config):
    """Prove the sliding layers' windows change the result: the same model with a window longer
    than the input gives other logits from position `sliding_window` on, and equal ones before
    (the layer types, hence Gemma 3's per-type RoPE, stay)."""
    full = load_checked(AutoModelForCausalLM, mdir, attn_implementation=ATTN, sliding_window=1000)
    win = load_checked(AutoModelForCausalLM, mdir, attn_implementation=ATTN)
    w = config.sliding_window
    with torch.no_grad():
        lw, lf = win(input_ids=ids).logits, full(input_ids=ids).logits
    assert torch.allclose(lw[:, :w], lf[:, :w], atol=1e-5)
    d = (lw[:, w:] - lf[:, w:]).abs().amax(dim=(0, 2))
    assert (d > 1e-3).all(), f"layer windows ignored? {d}"
    print(f"   layer windows verified: {config.layer_types}, window {w}")


def check_softcaps(mdir, ids):
    """Prove both soft-caps bind: without either the logits differ."""
    capped = load_checked(AutoModelForCausalLM, mdir, attn_implementation=ATTN)
    with torch.no_grad():
        ref = capped(input_ids=ids).logits
        for off in ("attn_logit_softcapping", "final_logit_softcapping"):
            m = load_checked(AutoModelForCausalLM, mdir, attn_implementation=ATTN, **{off: None})
            d = (m(input_ids=ids).logits - ref).abs().max().item()
            assert d > 1e-2, f"{off} does not bind: {d}"
    print("   soft-caps verified: attention and final")


def check_nope_layers(mdir, ids, config):
    """Prove the NoPE layers matter: with RoPE on every layer the logits differ."""
    assert 0 in config.no_rope_layers, config.no_rope_layers
    rope_everywhere = load_checked(
        AutoModelForCausalLM, mdir, attn_implementation=ATTN, no_rope_layers=[1] * config.num_hidden_layers
    )
    nope = load_checked(AutoModelForCausalLM, mdir, attn_implementation=ATTN)
    with torch.no_grad():
        d = (nope(input_ids=ids).logits - rope_everywhere(input_ids=ids).logits).abs().max().item()
    assert d > 1e-3, f"no_rope_layers ignored? {d}"
    print(f"   NoPE layers verified: {config.no_rope_layers}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures"))
    ap.add_argument("--only", default="", help="comma-separated subset of " + ",".join(SPECS))
    args = ap.parse_args()
    transformers.utils.logging.disable_progress_bar()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    names = [n for n in args.only.split(",") if n] or list(SPECS)
    for n in names:
        if n not in SPECS:
            sys.exit(f"unknown fixture {n}")
        make(n, SPECS[n], args.out)
    print("done:", ", ".join(names))


if __name__ == "__main__":
    main()
