#!/usr/bin/env python3
"""Check that a checkpoint written by the rlhf.cpp engine loads in transformers
unchanged and reproduces the engine's numbers.

  reference/.venv/bin/python reference/check_roundtrip.py DIR [--tol 1e-4]

DIR holds
  logprobs.safetensors  input_ids I32 (B, T); logp F32 (B, T-1) and/or score F32 (B, T)
and the checkpoint, either
  DIR/model/  a causal LM   -> logp[b, t] = log_softmax(logits[b, t])[input_ids[b, t+1]]
  DIR/rm/     a sequence classifier (num_labels=1) -> score[b, t] = score(final hidden[b, t])
(if DIR itself contains config.json it is used as the checkpoint). The kind is taken
from config.json "architectures" (…ForSequenceClassification = reward model).

The checkpoint is loaded with AutoModelForCausalLM / AutoModelForSequenceClassification
(dtype float32, so bf16/f16 weights are widened, not re-rounded); any missing, unexpected
or shape-mismatched tensor is an error, since transformers would silently re-initialise it.
Prints the max abs difference per quantity; exits 1 if any exceeds --tol, 2 on load errors.
"""

import argparse
import json
import os
import sys

import torch
from safetensors.torch import load_file


def find_checkpoint(d):
    if os.path.exists(os.path.join(d, "config.json")):
        return d
    found = [os.path.join(d, s) for s in ("model", "rm") if os.path.exists(os.path.join(d, s, "config.json"))]
    if len(found) != 1:
        sys.exit(f"error: expected exactly one of {d}/model or {d}/rm with a config.json, found {found}")
    return found[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--attn", default="eager", choices=["eager", "sdpa"])
    args = ap.parse_args()

    import transformers
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))

    ckpt = find_checkpoint(args.dir)
    data_path = os.path.join(args.dir, "logprobs.safetensors")
    if not os.path.exists(data_path):
        sys.exit(f"error: {data_path} not found")
    data = load_file(data_path)
    if "input_ids" not in data:
        sys.exit("error: logprobs.safetensors has no input_ids")
    ids = data["input_ids"].long()
    if ids.dim() != 2:
        sys.exit(f"error: input_ids must be (B, T), got {tuple(ids.shape)}")

    with open(os.path.join(ckpt, "config.json")) as f:
        archs = json.load(f).get("architectures") or []
    is_rm = any(a.endswith("ForSequenceClassification") for a in archs)
    cls = AutoModelForSequenceClassification if is_rm else AutoModelForCausalLM

    try:
        model, info = cls.from_pretrained(
            ckpt, dtype=torch.float32, attn_implementation=args.attn, output_loading_info=True
        )
    except Exception as e:  # noqa: BLE001 - report any loader failure as a failed round trip
        print(f"FAIL: transformers could not load {ckpt}: {type(e).__name__}: {e}")
        return 2
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    if bad:
        print(f"FAIL: checkpoint tensors do not match {type(model).__name__}: {bad}")
        return 2
    model.eval()
    print(f"loaded {ckpt} as {type(model).__name__} ({sum(p.numel() for p in model.parameters())} params)")

    checks = []
    with torch.no_grad():
        if is_rm:
            if "score" not in data:
                sys.exit("error: reward-model checkpoint but logprobs.safetensors has no score")
            if "logp" in data:
                print("note: ignoring logp (a sequence classifier has no LM head)")
            hidden = model.base_model(input_ids=ids).last_hidden_state
            ref = model.score(hidden).squeeze(-1).float()
            checks.append(("score", ref, data["score"].float()))
        else:
            if "logp" not in data:
                sys.exit("error: causal-LM checkpoint but logprobs.safetensors has no logp")
            logits = model(input_ids=ids).logits.float()
            ref = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
            checks.append(("logp", ref, data["logp"].float()))
            if "score" in data:
                print("note: ignoring score (checkpoint is a causal LM)")

    ok = True
    for name, ref, got in checks:
        if ref.shape != got.shape:
            print(f"FAIL: {name} shape {tuple(got.shape)} != reference {tuple(ref.shape)}")
            ok = False
            continue
        if not torch.isfinite(got).all():
            print(f"FAIL: {name} from the engine has non-finite values")
            ok = False
            continue
        d = (ref - got).abs().max().item()
        status = "ok" if d <= args.tol else "FAIL"
        print(f"{status}: {name} max abs diff {d:.3e} (tol {args.tol:g}, shape {tuple(ref.shape)})")
        ok = ok and d <= args.tol
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
