#!/usr/bin/env python3
"""Record TRL's offline trainers (DPOTrainer, RewardTrainer, KTOTrainer) on a tiny random Llama.

Writes tests/fixtures/trl/ so that a C++ test can replay exactly the same training and compare
the per-step loss, metrics and final weights:

  model/          tiny random LlamaForCausalLM (F32) + a word-level tokenizer (tokenizer.json)
  rm/             the same trunk as LlamaForSequenceClassification, num_labels 1, seeded score head
  prefs.jsonl     16 preference rows: prompt / chosen / rejected (+ margin, used by the RM margin run)
  unpaired.jsonl  16 unpaired rows: prompt / completion / label (KTO)
  runs/<name>.json                 one per TRL run (config, token ids, batch order, per-step numbers)
  runs/sigmoid_final.safetensors   policy weights after the last step of the sigmoid DPO run
  manifest.json   versions, list of runs, the loss types found in the installed DPOConfig

Every run: CPU, float32, dropout off, AdamW (adamw_torch), lr 1e-3 constant, no warm-up,
weight decay 0, betas (0.9, 0.999), eps 1e-8, max_grad_norm 1.0, 3 optimizer steps,
per_device_train_batch_size 4, gradient_accumulation_steps 1, logging_steps 1.

Per-step values come from two places, both recorded: the logs TRL emits (a TrainerCallback's
on_log; logging_steps=1 so nothing is averaged over steps) and a thin subclass whose compute_loss
first records the batch (row order, collated tensors) and per-row log-probs / rewards computed with
the same fused forward TRL uses, then calls TRL's own compute_loss unchanged.

Usage (see reference/README.md):
  /work/refvenv/bin/python reference/make_trl_fixtures.py [--out tests/fixtures/trl] [--only sigmoid,kto]
"""

import argparse
import dataclasses
import hashlib
import inspect
import json
import os
import re
import shutil
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("WANDB_DISABLED", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import accelerate  # noqa: E402
import datasets  # noqa: E402
import safetensors  # noqa: E402
import tokenizers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
import trl  # noqa: E402
from datasets import Dataset  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    TrainerCallback,
)
from trl import DPOConfig, DPOTrainer, KTOConfig, KTOTrainer, RewardConfig, RewardTrainer  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ---------------------------------------------------------------------------------------------
# Fixed choices
# ---------------------------------------------------------------------------------------------

MODEL_SEED = 2024  # torch.manual_seed before LlamaForCausalLM(config)
RM_SEED = 2025  # torch.manual_seed before loading the trunk into *ForSequenceClassification
TRAIN_SEED = 42  # TrainingArguments.seed (TRL calls set_seed(args.seed) in __init__, Trainer in train())
STEPS = 3
BATCH = 4
LR = 1e-3
BETA = 0.1
LABEL_SMOOTHING = 0.1  # for the loss types that read it (robust, exo_pair, aot, aot_unpaired)
LS_LOSSES = {"robust", "exo_pair", "aot", "aot_unpaired"}
CENTER = 0.01

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]  # ids 0..3
PAD, BOS, EOS, UNK = 0, 1, 2, 3

MODEL_CONFIG = dict(
    vocab_size=128,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=64,
    max_position_embeddings=128,
    tie_word_embeddings=False,
    initializer_range=0.2,
    attention_dropout=0.0,
    attention_bias=False,
    mlp_bias=False,
    rms_norm_eps=1e-5,
    hidden_act="silu",
    rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    bos_token_id=BOS,
    eos_token_id=EOS,
    pad_token_id=PAD,
)
ATTN = "eager"

# Completions start with a space so that prompt + completion splits on a word boundary (the
# tokenized prompt is then a prefix of the tokenized prompt + completion).
PREFS = [
    ("What color is the sky ?", " The sky is blue .", " The sky is green .", 1.0),
    ("Name a fruit .", " An apple .", " A rock .", 0.5),
    ("How many legs does a cat have ?", " A cat has four legs .", " Two .", 2.0),
    ("Say hello .", " Hello !", " Goodbye , see you never .", 0.0),
    ("What is two plus two ?", " Four .", " Two plus two is five .", 1.5),
    ("Where do fish live ?", " Fish live in water .", " Fish live in trees .", 0.0),
    ("Is fire hot ?", " Yes , fire is hot .", " No .", 0.25),
    ("Name a color .", " Red .", " Seven .", 1.0),
    ("What do cows drink ?", " Cows drink water .", " Cows drink milk .", 0.0),
    ("Which is bigger , a dog or a mouse ?", " A dog is bigger .", " A mouse is bigger than a dog .", 0.75),
    ("What sound does a dog make ?", " A dog barks .", " A dog sings songs .", 0.5),
    ("When is it dark ?", " It is dark at night .", " At noon .", 1.0),
    ("Can birds fly ?", " Most birds can fly .", " Birds can swim in the sky .", 0.0),
    ("What is ice ?", " Ice is frozen water .", " Ice is hot fire .", 2.0),
    ("Count to three .", " One , two , three .", " One , three , two .", 0.5),
    ("Thank you .", " You are welcome .", " No .", 0.25),
]

# Sequential batches of 4 (KTO's sampler): labels T F T F | T T F T | F F T F | T F T F
UNPAIRED = [
    ("What color is grass ?", " Grass is green .", True),
    ("Name an animal .", " A chair .", False),
    ("Is water wet ?", " Yes , water is wet .", True),
    ("What is one plus one ?", " One plus one is three .", False),
    ("Say goodbye .", " Goodbye !", True),
    ("Where do birds live ?", " Birds live in trees .", True),
    ("Is the sun cold ?", " Yes , the sun is cold .", False),
    ("Name a fruit .", " A banana .", True),
    ("How many eyes does a dog have ?", " Seven .", False),
    ("What do cats eat ?", " Cats eat rocks .", False),
    ("Count to two .", " One , two .", True),
    ("What is snow ?", " Snow is hot .", False),
    ("Can fish swim ?", " Fish can swim .", True),
    ("What color is milk ?", " Milk is black .", False),
    ("When is it light ?", " It is light during the day .", True),
    ("Say hello .", " Bye .", False),
]

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def words_of(text):
    # Same split as tokenizers' Whitespace pre-tokenizer (\w+|[^\w\s]+) on our ASCII data.
    return re.findall(r"\w+|[^\w\s]+", text)


def build_vocab():
    words = set()
    for p, c, r, _ in PREFS:
        for t in (p, c, r):
            words.update(words_of(t))
    for p, c, _ in UNPAIRED:
        for t in (p, c):
            words.update(words_of(t))
    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for w in sorted(words):
        vocab[w] = len(vocab)
    assert len(vocab) <= MODEL_CONFIG["vocab_size"], len(vocab)
    return vocab


def build_tokenizer(vocab):
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    # Llama-style: the tokenizer prepends BOS to every encoded text (add_special_tokens=True).
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", BOS)])
    tok.decoder = decoders.WordPiece(prefix="##")
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )


def strip_generation_config(d):
    p = os.path.join(d, "generation_config.json")
    if os.path.exists(p):
        os.remove(p)


def rel(path):
    return os.path.relpath(path, REPO)


def f(x):
    """Python float (double) of a scalar; float32 values convert exactly."""
    if isinstance(x, torch.Tensor):
        return float(x.detach().double().item())
    return float(x)


def flist(t):
    return [float(v) for v in t.detach().double().tolist()]


def versions():
    return {
        "trl": trl.__version__,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "accelerate": accelerate.__version__,
        "datasets": datasets.__version__,
        "tokenizers": tokenizers.__version__,
        "safetensors": safetensors.__version__,
        "python": sys.version.split()[0],
    }


def dpo_loss_types():
    """The loss types of the installed DPOConfig, from its help text, cross-checked with the
    branches of DPOTrainer._compute_loss."""
    field = {fl.name: fl for fl in dataclasses.fields(DPOConfig)}["loss_type"]
    from_help = re.findall(r"`'([a-z_]+)'`", field.metadata["help"])
    src = inspect.getsource(DPOTrainer._compute_loss)
    from_code = re.findall(r'loss_type == "([a-z_]+)"', src)
    assert from_help and sorted(from_help) == sorted(from_code), (from_help, from_code)
    return from_help


CONFIG_KEYS = [
    # optimisation
    "optim", "learning_rate", "lr_scheduler_type", "warmup_steps", "warmup_ratio", "weight_decay",
    "adam_beta1", "adam_beta2", "adam_epsilon", "max_grad_norm", "max_steps", "num_train_epochs",
    "per_device_train_batch_size", "gradient_accumulation_steps", "seed", "data_seed",
    "train_sampling_strategy", "dataloader_drop_last", "logging_steps", "remove_unused_columns",
    # precision / model handling
    "bf16", "fp16", "tf32", "gradient_checkpointing", "disable_dropout", "use_cpu", "model_init_kwargs",
    # data
    "max_length", "truncation_mode", "max_prompt_length", "max_completion_length", "pad_to_multiple_of",
    "padding_free", "eos_token", "pad_token", "dataset_num_proc",
    # DPO / KTO / RM
    "loss_type", "loss_weights", "beta", "label_smoothing", "ld_alpha", "f_divergence_type",
    "f_alpha_divergence_coef", "use_weighting", "discopop_tau", "sync_ref_model",
    "ref_model_mixup_alpha", "ref_model_sync_steps", "precompute_ref_log_probs", "reference_free",
    "center_rewards_coefficient", "desirable_weight", "undesirable_weight", "router_aux_loss_coef",
]


def curated_config(args):
    out = {}
    for k in CONFIG_KEYS:
        if hasattr(args, k):
            v = getattr(args, k)
            if hasattr(v, "value"):  # enums
                v = v.value
            if isinstance(v, torch.dtype):
                v = str(v)
            out[k] = v
    return out


def common_args(outdir, seed=TRAIN_SEED):
    return dict(
        output_dir=outdir,
        max_steps=STEPS,
        per_device_train_batch_size=BATCH,
        gradient_accumulation_steps=1,
        learning_rate=LR,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        adam_beta1=0.9,
        adam_beta2=0.999,
        adam_epsilon=1e-8,
        max_grad_norm=1.0,
        optim="adamw_torch",
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        bf16=False,
        fp16=False,
        use_cpu=True,
        gradient_checkpointing=False,
        seed=seed,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )


class LogCatcher(TrainerCallback):
    def __init__(self):
        self.logs = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is not None:
            self.logs.append({"global_step": state.global_step, **{k: v for k, v in logs.items()}})


def recording(cls, capture):
    """Subclass of a TRL trainer whose compute_loss records the batch and per-row numbers first
    (no_grad, same fused forward as TRL), then runs TRL's compute_loss unchanged."""

    class Recording(cls):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            rec = None
            if model.training:
                rec = capture(self, model, inputs)
                self._rec_steps.append(rec)
            out = super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
            if rec is not None:
                loss = out[0] if isinstance(out, tuple) else out
                rec["loss_from_compute_loss"] = f(loss)
            return out

    Recording.__name__ = "Recording" + cls.__name__
    return Recording


def fused_logps(model, input_ids, attention_mask, completion_mask):
    labels = input_ids.masked_fill(completion_mask == 0, -100)
    out = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, labels=labels, fused_lm_head=True)
    return out.log_probs[:, -(input_ids.size(1) - 1):].sum(dim=1)


def seq_key(ids, mask):
    return tuple(int(t) for t, m in zip(ids.tolist(), mask.tolist()) if m)


# ---------------------------------------------------------------------------------------------
# Step 1-2: model, tokenizer, rm, datasets
# ---------------------------------------------------------------------------------------------


def make_model_and_data(out):
    vocab = build_vocab()
    tok = build_tokenizer(vocab)

    mdir = os.path.join(out, "model")
    if os.path.exists(mdir):
        shutil.rmtree(mdir)
    torch.manual_seed(MODEL_SEED)
    config = LlamaConfig(**MODEL_CONFIG)
    model = LlamaForCausalLM(config).to(torch.float32).eval()
    model.save_pretrained(mdir, safe_serialization=True)
    strip_generation_config(mdir)
    tok.save_pretrained(mdir)

    # Reload both from disk and check they round-trip.
    tok2 = AutoTokenizer.from_pretrained(mdir)
    for p, c, r, _ in PREFS:
        for t in (p, p + c + "</s>", p + r + "</s>"):
            assert tok(t)["input_ids"] == tok2(t)["input_ids"]
            ids = tok2(t)["input_ids"]
            assert UNK not in ids and max(ids) < MODEL_CONFIG["vocab_size"], t
    re_model = AutoModelForCausalLM.from_pretrained(mdir, dtype=torch.float32)
    sd0, sd1 = model.state_dict(), re_model.state_dict()
    assert sd0.keys() == sd1.keys() and all(torch.equal(sd0[k], sd1[k]) for k in sd0)

    # Reward model: same trunk, score head initialised by transformers under RM_SEED.
    rdir = os.path.join(out, "rm")
    if os.path.exists(rdir):
        shutil.rmtree(rdir)
    torch.manual_seed(RM_SEED)
    rm = AutoModelForSequenceClassification.from_pretrained(
        mdir, num_labels=1, pad_token_id=PAD, dtype=torch.float32, attn_implementation=ATTN
    )
    assert rm.score.weight.shape == (1, MODEL_CONFIG["hidden_size"]) and rm.score.bias is None
    assert rm.score.weight.abs().sum() > 0
    for k, v in rm.model.state_dict().items():
        assert torch.equal(v, sd0["model." + k]), k
    rm.save_pretrained(rdir, safe_serialization=True)
    strip_generation_config(rdir)
    tok2.save_pretrained(rdir)
    rm2 = AutoModelForSequenceClassification.from_pretrained(rdir, dtype=torch.float32)
    assert torch.equal(rm2.score.weight, rm.score.weight)

    with open(os.path.join(out, "prefs.jsonl"), "w") as fh:
        for p, c, r, m in PREFS:
            fh.write(json.dumps({"prompt": p, "chosen": c, "rejected": r, "margin": m}) + "\n")
    with open(os.path.join(out, "unpaired.jsonl"), "w") as fh:
        for p, c, lab in UNPAIRED:
            fh.write(json.dumps({"prompt": p, "completion": c, "label": lab}) + "\n")
    return vocab


def load_jsonl(path):
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


# ---------------------------------------------------------------------------------------------
# Step 3: runs
# ---------------------------------------------------------------------------------------------


def capture_dpo(trainer, model, inputs):
    ids, am, cm = inputs["input_ids"], inputs["attention_mask"], inputs["completion_mask"]
    n = ids.size(0) // 2
    with torch.no_grad():
        pol = fused_logps(model, ids, am, cm)
        ref = fused_logps(trainer.ref_model, ids, am, cm)
    lens = cm.sum(dim=1)
    rows = [trainer._row_index[seq_key(ids[i], am[i])] for i in range(n)]
    rej_rows = [trainer._row_index_rej[seq_key(ids[n + i], am[n + i])] for i in range(n)]
    assert rows == rej_rows, (rows, rej_rows)
    return {
        "rows": rows,
        "input_ids": ids.tolist(),
        "attention_mask": am.tolist(),
        "completion_mask": cm.tolist(),
        "per_row": {
            "logps_chosen": flist(pol[:n]),
            "logps_rejected": flist(pol[n:]),
            "ref_logps_chosen": flist(ref[:n]),
            "ref_logps_rejected": flist(ref[n:]),
            "len_chosen": [int(x) for x in lens[:n]],
            "len_rejected": [int(x) for x in lens[n:]],
        },
    }


def capture_rm(trainer, model, inputs):
    ids, am = inputs["input_ids"], inputs["attention_mask"]
    n = ids.size(0) // 2
    with torch.no_grad():
        scores = model(input_ids=ids, attention_mask=am, use_cache=False).logits.squeeze(-1)
    # LlamaForSequenceClassification pools at the rightmost token != pad_token_id
    nonpad = (ids != model.config.pad_token_id).int()
    pos = (torch.arange(ids.size(1)) * nonpad).argmax(-1)
    rows = [trainer._row_index[seq_key(ids[i], am[i])] for i in range(n)]
    rej_rows = [trainer._row_index_rej[seq_key(ids[n + i], am[n + i])] for i in range(n)]
    assert rows == rej_rows, (rows, rej_rows)
    rec = {
        "rows": rows,
        "input_ids": ids.tolist(),
        "attention_mask": am.tolist(),
        "per_row": {
            "reward_chosen": flist(scores[:n]),
            "reward_rejected": flist(scores[n:]),
            "scored_position_chosen": [int(x) for x in pos[:n]],
            "scored_position_rejected": [int(x) for x in pos[n:]],
        },
    }
    if "margin" in inputs:
        rec["per_row"]["margin"] = flist(inputs["margin"])
    return rec


def capture_kto(trainer, model, inputs):
    ids, am, cm = inputs["input_ids"], inputs["attention_mask"], inputs["completion_mask"]
    with torch.no_grad():
        pol = fused_logps(model, ids, am, cm)
        ref = fused_logps(trainer.ref_model, ids, am, cm)
    rows = [trainer._row_index[seq_key(ids[i], am[i])] for i in range(ids.size(0))]
    rec = {
        "rows": rows,
        "input_ids": ids.tolist(),
        "attention_mask": am.tolist(),
        "completion_mask": cm.tolist(),
        "label": [bool(x) for x in inputs["label"].tolist()],
        "per_row": {
            "logps": flist(pol),
            "ref_logps": flist(ref),
            "len": [int(x) for x in cm.sum(dim=1)],
        },
    }
    if "KL_input_ids" in inputs:
        kid, kam, kcm = inputs["KL_input_ids"], inputs["KL_attention_mask"], inputs["KL_completion_mask"]
        with torch.no_grad():
            kpol = fused_logps(model, kid, kam, kcm)
            kref = fused_logps(trainer.ref_model, kid, kam, kcm)
        rec["KL_input_ids"] = kid.tolist()
        rec["KL_attention_mask"] = kam.tolist()
        rec["KL_completion_mask"] = kcm.tolist()
        rec["per_row"]["KL_logps"] = flist(kpol)
        rec["per_row"]["KL_ref_logps"] = flist(kref)
        rec["per_row"]["KL_len"] = [int(x) for x in kcm.sum(dim=1)]
        rec["z0"] = f((kpol - kref).mean().clamp(min=0))
    return rec


def collect_steps(trainer, catcher):
    step_logs = [lg for lg in catcher.logs if "loss" in lg and "train_runtime" not in lg]
    summary = [lg for lg in catcher.logs if "train_runtime" in lg]
    assert len(step_logs) == STEPS, catcher.logs
    assert len(trainer._rec_steps) == STEPS, len(trainer._rec_steps)
    steps = []
    for i, (lg, rec) in enumerate(zip(step_logs, trainer._rec_steps)):
        assert lg["global_step"] == i + 1
        metrics = {k: v for k, v in lg.items() if k not in ("global_step",)}
        assert metrics["loss"] == rec["loss_from_compute_loss"], (metrics["loss"], rec["loss_from_compute_loss"])
        steps.append({"step": i + 1, **rec, "metrics": metrics})
    # drop wall-clock fields so that the fixture is reproducible byte for byte
    summary = {k: v for k, v in summary[0].items() if "runtime" not in k and "per_second" not in k} if summary else None
    return steps, summary


def run_dpo(name, loss_types, loss_weights, model_dir, tok_dir, prefs, out_runs, save_final=False):
    tok = AutoTokenizer.from_pretrained(tok_dir)
    ds = Dataset.from_list(prefs)
    with tempfile.TemporaryDirectory() as tmp:
        uses_ls = any(lt in LS_LOSSES for lt in loss_types)
        args = DPOConfig(
            **common_args(tmp),
            loss_type=list(loss_types),
            loss_weights=list(loss_weights) if loss_weights is not None else None,
            beta=BETA,
            label_smoothing=LABEL_SMOOTHING if uses_ls else 0.0,
            model_init_kwargs={"dtype": "float32", "attn_implementation": ATTN},
            precompute_ref_log_probs=False,
        )
        catcher = LogCatcher()
        cls = recording(DPOTrainer, capture_dpo)
        trainer = cls(
            model=model_dir,  # TRL loads policy and (ref_model=None) a second copy as the reference
            ref_model=None,
            args=args,
            train_dataset=ds,
            processing_class=tok,
            callbacks=[catcher],
        )
        trainer._rec_steps = []
        tds = trainer.train_dataset
        rows = []
        trainer._row_index, trainer._row_index_rej = {}, {}
        for i in range(len(tds)):
            r = tds[i]
            rows.append(
                {
                    "index": i,
                    "prompt": r["prompt"],
                    "chosen": r["chosen"],
                    "rejected": r["rejected"],
                    "prompt_ids": r["prompt_ids"],
                    "chosen_ids": r["chosen_ids"],
                    "rejected_ids": r["rejected_ids"],
                }
            )
            k_c, k_r = tuple(r["prompt_ids"] + r["chosen_ids"]), tuple(r["prompt_ids"] + r["rejected_ids"])
            assert k_c not in trainer._row_index and k_r not in trainer._row_index_rej
            trainer._row_index[k_c] = i
            trainer._row_index_rej[k_r] = i
        assert len(tds) == len(prefs)
        assert trainer.ref_model is not None and trainer.ref_model is not trainer.model
        # the reference starts equal to the policy
        for (k, a), (_, b) in zip(trainer.model.state_dict().items(), trainer.ref_model.state_dict().items()):
            assert torch.equal(a, b), k
        trainer.train()
        steps, summary = collect_steps(trainer, catcher)

        record = {
            "name": name,
            "trainer": "DPOTrainer",
            "versions": versions(),
            "model": rel(model_dir),
            "reference_model": "ref_model=None: TRL loads a second copy of model/ (same weights, float32, eager); "
            "precompute_ref_log_probs=False, so reference log-probs are computed on every batch",
            "dataset": "prefs.jsonl (the margin column is ignored by DPOTrainer)",
            "config": curated_config(args),
            "effective": {
                "loss_types": trainer.loss_types,
                "loss_weights": trainer.loss_weights,
                "label_smoothing": trainer.label_smoothing,
                "pad_token_id": tok.pad_token_id,
                "bos_token_id": tok.bos_token_id,
                "eos_token_id": tok.eos_token_id,
                "eos_appended": all(r["chosen_ids"][-1] == EOS and r["rejected_ids"][-1] == EOS for r in rows),
                "bos_prepended": all(r["prompt_ids"][0] == BOS for r in rows),
                "padding_side": "right (DataCollatorForPreference pads right; tokenizer.padding_side="
                + tok.padding_side + " is not used)",
                "collator_layout": "input_ids = [prompt+chosen for each row] + [prompt+rejected for each row], "
                "right-padded with pad_token_id to the longest of the 2B sequences",
                "attn_implementation": trainer.model.config._attn_implementation,
                "train_sampler": type(trainer._get_train_sampler()).__name__,
            },
            "rows": rows,
            "steps": steps,
            "train_summary": summary,
        }
        if save_final:
            sd = {k: v.detach().contiguous().clone() for k, v in trainer.model.state_dict().items()}
            path = os.path.join(out_runs, f"{name}_final.safetensors")
            save_file(sd, path, metadata={"reference": json.dumps({"run": name, "after_step": STEPS, **versions()})})
            record["final_weights"] = rel(path)
    dump_json(record, os.path.join(out_runs, f"{name}.json"))
    return record


def run_rm(name, rm_dir, tok_dir, prefs, out_runs, center=None, margin=False):
    tok = AutoTokenizer.from_pretrained(tok_dir)
    data = [dict(r) for r in prefs]
    if not margin:
        for r in data:
            del r["margin"]
    ds = Dataset.from_list(data)
    model = AutoModelForSequenceClassification.from_pretrained(rm_dir, dtype=torch.float32, attn_implementation=ATTN)
    score0 = model.score.weight.detach().clone()
    with tempfile.TemporaryDirectory() as tmp:
        args = RewardConfig(**common_args(tmp), center_rewards_coefficient=center)
        catcher = LogCatcher()
        cls = recording(RewardTrainer, capture_rm)
        trainer = cls(model=model, args=args, train_dataset=ds, processing_class=tok, callbacks=[catcher])
        assert torch.equal(trainer.model.score.weight, score0)
        trainer._rec_steps = []
        tds = trainer.train_dataset
        rows = []
        trainer._row_index, trainer._row_index_rej = {}, {}
        for i in range(len(tds)):
            r = tds[i]
            row = {"index": i, "chosen_ids": r["chosen_ids"], "rejected_ids": r["rejected_ids"]}
            if margin:
                row["margin"] = r["margin"]
            rows.append(row)
            trainer._row_index[tuple(r["chosen_ids"])] = i
            trainer._row_index_rej[tuple(r["rejected_ids"])] = i
        assert len(trainer._row_index) == len(tds) == len(prefs)
        trainer.train()
        steps, summary = collect_steps(trainer, catcher)
        record = {
            "name": name,
            "trainer": "RewardTrainer",
            "versions": versions(),
            "model": rel(rm_dir),
            "dataset": "prefs.jsonl" + (" (with its margin column)" if margin else " (margin column dropped)"),
            "config": curated_config(args),
            "effective": {
                "pad_token_id": model.config.pad_token_id,
                "eos_appended": all(r["chosen_ids"][-1] == EOS and r["rejected_ids"][-1] == EOS for r in rows),
                "bos_prepended": all(r["chosen_ids"][0] == BOS for r in rows),
                "sequence": "chosen_ids = tokenize(prompt + chosen + eos) (one string, BOS from the tokenizer); "
                "same for rejected",
                "padding_side": "right (reward DataCollatorForPreference)",
                "collator_layout": "input_ids = [chosen rows] + [rejected rows], right-padded with pad_token_id",
                "scored_position": "rightmost token != config.pad_token_id (here the EOS)",
                "attn_implementation": trainer.model.config._attn_implementation,
                "train_sampler": type(trainer._get_train_sampler()).__name__,
            },
            "rows": rows,
            "steps": steps,
            "train_summary": summary,
        }
    dump_json(record, os.path.join(out_runs, f"{name}.json"))
    return record


def run_kto(name, model_dir, tok_dir, unpaired, out_runs, loss_type="kto"):
    tok = AutoTokenizer.from_pretrained(tok_dir)
    ds = Dataset.from_list(unpaired)
    with tempfile.TemporaryDirectory() as tmp:
        args = KTOConfig(
            **common_args(tmp),
            loss_type=loss_type,
            beta=BETA,
            desirable_weight=1.0,
            undesirable_weight=1.0,
            model_init_kwargs={"dtype": "float32", "attn_implementation": ATTN},
            precompute_ref_log_probs=False,
        )
        catcher = LogCatcher()
        cls = recording(KTOTrainer, capture_kto)
        trainer = cls(
            model=model_dir, ref_model=None, args=args, train_dataset=ds, processing_class=tok, callbacks=[catcher]
        )
        trainer._rec_steps = []
        tds = trainer.train_dataset
        rows = []
        trainer._row_index = {}
        for i in range(len(tds)):
            r = tds[i]
            row = {
                "index": i,
                "prompt": r["prompt"],
                "completion": r["completion"],
                "label": bool(r["label"]),
                "prompt_ids": r["prompt_ids"],
                "completion_ids": r["completion_ids"],
            }
            if "KL_completion_ids" in r:
                row["KL_completion_ids"] = r["KL_completion_ids"]
            rows.append(row)
            k = tuple(r["prompt_ids"] + r["completion_ids"])
            assert k not in trainer._row_index
            trainer._row_index[k] = i
        assert len(tds) == len(unpaired)
        assert trainer.ref_model is not None
        trainer.train()
        steps, summary = collect_steps(trainer, catcher)
        record = {
            "name": name,
            "trainer": "KTOTrainer",
            "versions": versions(),
            "model": rel(model_dir),
            "reference_model": "ref_model=None: TRL loads a second copy of model/; precompute_ref_log_probs=False",
            "dataset": "unpaired.jsonl",
            "config": curated_config(args),
            "effective": {
                "calculate_KL": bool(trainer.calculate_KL),
                "pad_token_id": tok.pad_token_id,
                "eos_appended": all(r["completion_ids"][-1] == EOS for r in rows),
                "bos_prepended": all(r["prompt_ids"][0] == BOS for r in rows),
                "padding_side": "right (DataCollatorForUnpairedPreference)",
                "KL_pairs": "KL_completion_ids are built once, in dataset order, by a batched map with "
                "batch_size=per_device_train_batch_size: inside each chunk [4k, 4k+4) row j gets the completion "
                "of row j-1 and the first row of the chunk gets the completion of the last (rotation by +1: "
                "(x1,yn),(x2,y1),...,(xn,y_{n-1})). The sampler is sequential, so chunks are the batches.",
                "attn_implementation": trainer.model.config._attn_implementation,
                "train_sampler": type(trainer._get_train_sampler()).__name__,
            },
            "rows": rows,
            "steps": steps,
            "train_summary": summary,
        }
    dump_json(record, os.path.join(out_runs, f"{name}.json"))
    return record


# ---------------------------------------------------------------------------------------------
# Self-checks: the documented conventions, re-implemented here in float64 from the per-row numbers,
# must reproduce TRL's logged loss and metrics; and a plain-PyTorch replay of the sigmoid DPO run
# (HF forward + log_softmax, no TRL code) must reproduce TRL's per-step loss and final weights.
# ---------------------------------------------------------------------------------------------


def _close(name, got, want, rtol=2e-5, atol=2e-6):
    if not abs(got - want) <= atol + rtol * abs(want):
        raise AssertionError(f"self-check {name}: recomputed {got!r} vs TRL {want!r}")


def _t(x):
    return torch.tensor(x, dtype=torch.float64)


def dpo_loss_f64(loss_type, pr, beta, ls, tau):
    F = torch.nn.functional
    pc, pj, rc, rj = _t(pr["logps_chosen"]), _t(pr["logps_rejected"]), _t(pr["ref_logps_chosen"]), _t(pr["ref_logps_rejected"])
    lc, lj = _t(pr["len_chosen"]), _t(pr["len_rejected"])
    hc, hj = pc - rc, pj - rj
    d = hc - hj
    ls_ = F.logsigmoid
    if loss_type == "sigmoid":
        per = -ls_(beta * d)
    elif loss_type == "hinge":
        per = torch.relu(1 - beta * d)
    elif loss_type == "ipo":
        per = (hc / lc - hj / lj - 1 / (2 * beta)) ** 2
    elif loss_type == "exo_pair":
        p = torch.sigmoid(beta * d)
        per = p * (ls_(beta * d) - torch.log1p(_t(-ls))) + (1 - p) * (ls_(-beta * d) - torch.log(_t(ls)))
    elif loss_type == "nca_pair":
        per = -ls_(beta * hc) - 0.5 * ls_(-beta * hc) - 0.5 * ls_(-beta * hj)
    elif loss_type == "robust":
        per = ((1 - ls) * -ls_(beta * d) - ls * -ls_(-beta * d)) / (1 - 2 * ls)
    elif loss_type == "bco_pair":
        per = -ls_(beta * hc) - ls_(-beta * hj)
    elif loss_type == "sppo_hard":
        per = (hc - 0.5 / beta) ** 2 + (hj + 0.5 / beta) ** 2
    elif loss_type in ("aot", "aot_unpaired"):
        if loss_type == "aot":
            dd = torch.sort(pc - pj).values - torch.sort(rc - rj).values
        else:
            dd = torch.sort(hc).values - torch.sort(hj).values
        per = -(1 - ls) * ls_(beta * dd) - ls * ls_(-beta * dd)
    elif loss_type == "apo_zero":
        per = (1 - torch.sigmoid(beta * hc)) + torch.sigmoid(beta * hj)
    elif loss_type == "apo_down":
        per = torch.sigmoid(beta * hc) + (1 - torch.sigmoid(beta * d))
    elif loss_type == "discopop":
        z = beta * d
        m = torch.sigmoid(z / tau)
        per = (1 - m) * -ls_(z) + m * torch.exp(-z)
    elif loss_type == "sft":
        per = -pc.sum() / lc.sum()  # token mean pooled over the batch's chosen tokens
    elif loss_type == "sigmoid_norm":
        per = -ls_(beta * (hc / lc - hj / lj))
    else:
        raise ValueError(loss_type)
    return per.mean()


def check_dpo(record):
    eff, cfg = record["effective"], record["config"]
    beta, ls, tau = cfg["beta"], cfg["label_smoothing"], cfg["discopop_tau"]
    for st in record["steps"]:
        pr, m = st["per_row"], st["metrics"]
        loss = sum(w * dpo_loss_f64(lt, pr, beta, ls, tau) for lt, w in zip(eff["loss_types"], eff["loss_weights"]))
        _close(f"{record['name']} step {st['step']} loss", float(loss), m["loss"])
        rc = beta * (_t(pr["logps_chosen"]) - _t(pr["ref_logps_chosen"]))
        rj = beta * (_t(pr["logps_rejected"]) - _t(pr["ref_logps_rejected"]))
        _close("rewards/chosen", float(rc.mean()), m["rewards/chosen"])
        _close("rewards/rejected", float(rj.mean()), m["rewards/rejected"])
        _close("rewards/margins", float((rc - rj).mean()), m["rewards/margins"])
        _close("rewards/accuracies", float((rc > rj).double().mean()), m["rewards/accuracies"], 0, 0)
        _close("logps/chosen", float(_t(pr["logps_chosen"]).mean()), m["logps/chosen"])
        _close("logps/rejected", float(_t(pr["logps_rejected"]).mean()), m["logps/rejected"])
        am = torch.tensor(st["attention_mask"])
        assert m["num_tokens"] == sum(int(torch.tensor(s["attention_mask"]).sum()) for s in record["steps"][: st["step"]])
        assert int(am.sum()) > 0


def check_rm(record):
    eta = record["config"]["center_rewards_coefficient"]
    F = torch.nn.functional
    for st in record["steps"]:
        pr, m = st["per_row"], st["metrics"]
        rc, rj = _t(pr["reward_chosen"]), _t(pr["reward_rejected"])
        mg = _t(pr["margin"]) if "margin" in pr else torch.zeros_like(rc)
        loss = (-F.logsigmoid(rc - rj - mg)).mean()
        if eta is not None:
            loss = loss + eta * ((rc + rj) ** 2).mean()
        _close(f"{record['name']} step {st['step']} loss", float(loss), m["loss"])
        _close("accuracy", float((rc > rj).double().mean()), m["accuracy"], 0, 0)
        _close("margin", float((rc - rj).mean()), m["margin"])
        allr = torch.cat([rc, rj])
        _close("min_reward", float(allr.min()), m["min_reward"])
        _close("max_reward", float(allr.max()), m["max_reward"])
        _close("mean_reward", float(allr.mean()), m["mean_reward"])
        ids = st["input_ids"]
        for half, key in ((0, "scored_position_chosen"), (1, "scored_position_rejected")):
            for i, p in enumerate(pr[key]):
                row = ids[half * len(pr[key]) + i]
                assert row[p] == EOS and all(t == PAD for t in row[p + 1:]), (row, p)


def check_kto(record):
    cfg = record["config"]
    beta, wd, wu = cfg["beta"], cfg["desirable_weight"], cfg["undesirable_weight"]
    kto = cfg["loss_type"] == "kto"
    rows = record["rows"]
    B = cfg["per_device_train_batch_size"]
    if kto:  # KL completion of row j is the completion of row j-1 inside its chunk of B rows
        for i, r in enumerate(rows):
            start = (i // B) * B
            end = min(start + B, len(rows))
            src = end - 1 if i == start else i - 1
            assert r["KL_completion_ids"] == rows[src]["completion_ids"], i
    for st in record["steps"]:
        pr, m = st["per_row"], st["metrics"]
        D = _t(pr["logps"]) - _t(pr["ref_logps"])
        lab = torch.tensor(st["label"])
        if kto:
            z0 = torch.clamp((_t(pr["KL_logps"]) - _t(pr["KL_ref_logps"])).mean(), min=0)
            _close("kl", float(z0), m["kl"], atol=1e-5)
            # the batch's KL rows are its own rows' prompts with the rotated completions
            for i, row in enumerate(st["rows"]):
                r = rows[row]
                kl_ids = [t for t, a in zip(st["KL_input_ids"][i], st["KL_attention_mask"][i]) if a]
                assert kl_ids == r["prompt_ids"] + r["KL_completion_ids"]
            lc = wd * (1 - torch.sigmoid(beta * (D[lab] - z0)))
            lr = wu * (1 - torch.sigmoid(beta * (z0 - D[~lab])))
        else:
            lc = wd * (1 - torch.sigmoid(beta * D[lab]))
            lr = wu * torch.sigmoid(beta * D[~lab])
        loss = torch.cat([lc, lr]).mean()
        _close(f"{record['name']} step {st['step']} loss", float(loss), m["loss"])
        if lab.any():
            _close("rewards/chosen", float(beta * D[lab].mean()), m["rewards/chosen"])
            _close("logps/chosen", float(_t(pr["logps"])[lab].mean()), m["logps/chosen"])
        if (~lab).any():
            _close("rewards/rejected", float(beta * D[~lab].mean()), m["rewards/rejected"])
            _close("logps/rejected", float(_t(pr["logps"])[~lab].mean()), m["logps/rejected"])
        if lab.any() and (~lab).any():
            _close("rewards/margins", float(beta * D[lab].mean() - beta * D[~lab].mean()), m["rewards/margins"])


def replay_sigmoid(record, model_dir, final_path):
    """Plain PyTorch: HF forward (full logits) + log_softmax/gather, DPO sigmoid loss, backward,
    clip_grad_norm_(1.0), torch.optim.AdamW. Returns max |w - w_TRL| over all parameters."""
    from safetensors.torch import load_file

    cfg = record["config"]
    beta = cfg["beta"]
    policy = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation=ATTN)
    ref = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation=ATTN).eval()
    policy.train()
    opt = torch.optim.AdamW(
        policy.parameters(), lr=cfg["learning_rate"], betas=(cfg["adam_beta1"], cfg["adam_beta2"]),
        eps=cfg["adam_epsilon"], weight_decay=cfg["weight_decay"],
    )

    def seq_logps(model, ids, am, cm):
        logits = model(input_ids=ids, attention_mask=am, use_cache=False).logits.float()
        lp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
        return (lp * cm[:, 1:]).sum(dim=1)

    for st in record["steps"]:
        ids, am, cm = (torch.tensor(st[k]) for k in ("input_ids", "attention_mask", "completion_mask"))
        n = ids.size(0) // 2
        lp = seq_logps(policy, ids, am, cm)
        with torch.no_grad():
            lr_ = seq_logps(ref, ids, am, cm)
        h = (lp[:n] - lr_[:n]) - (lp[n:] - lr_[n:])
        loss = -torch.nn.functional.logsigmoid(beta * h).mean()
        _close(f"replay step {st['step']} loss", f(loss), st["metrics"]["loss"], rtol=1e-5)
        opt.zero_grad()
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg["max_grad_norm"])
        _close(f"replay step {st['step']} grad_norm", f(gn), st["metrics"]["grad_norm"], rtol=1e-4)
        opt.step()
    want = load_file(final_path)
    got = policy.state_dict()
    assert set(want) == set(got)
    return max(float((got[k] - want[k]).abs().max()) for k in want)


def dump_json(obj, path):
    """Indented JSON with every list of scalars on one line (token ids, masks, per-row values)."""

    def fmt(o, ind):
        pad, pad1 = " " * ind, " " * (ind + 1)
        if isinstance(o, dict):
            if not o:
                return "{}"
            items = [f"{pad1}{json.dumps(k)}: {fmt(v, ind + 1)}" for k, v in o.items()]
            return "{\n" + ",\n".join(items) + "\n" + pad + "}"
        if isinstance(o, list):
            if all(not isinstance(x, (dict, list)) for x in o):
                return "[" + ", ".join(json.dumps(x) for x in o) + "]"
            return "[\n" + ",\n".join(pad1 + fmt(x, ind + 1) for x in o) + "\n" + pad + "]"
        return json.dumps(o)

    text = fmt(obj, 0) + "\n"
    assert json.loads(text) == json.loads(json.dumps(obj))
    with open(path, "w") as fh:
        fh.write(text)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        h.update(fh.read())
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures", "trl"))
    ap.add_argument("--only", default="", help="comma-separated run names (model/data are always rebuilt)")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    datasets.disable_caching()

    out = os.path.abspath(a.out)
    os.makedirs(out, exist_ok=True)
    out_runs = os.path.join(out, "runs")
    only = set(x for x in a.only.split(",") if x)
    if not only and os.path.exists(out_runs):
        shutil.rmtree(out_runs)
    os.makedirs(out_runs, exist_ok=True)

    make_model_and_data(out)
    model_dir, rm_dir = os.path.join(out, "model"), os.path.join(out, "rm")
    prefs = load_jsonl(os.path.join(out, "prefs.jsonl"))
    unpaired = load_jsonl(os.path.join(out, "unpaired.jsonl"))

    loss_types = dpo_loss_types()
    plan = []
    for lt in loss_types:
        plan.append((lt, "dpo", dict(loss_types=[lt], loss_weights=None, save_final=(lt == "sigmoid"))))
    plan.append(("sigmoid_sft", "dpo", dict(loss_types=["sigmoid", "sft"], loss_weights=[1.0, 1.0], save_final=False)))
    plan.append(("reward", "rm", dict(center=None, margin=False)))
    plan.append(("reward_center", "rm", dict(center=CENTER, margin=False)))
    plan.append(("reward_margin", "rm", dict(center=None, margin=True)))
    plan.append(("kto", "kto", dict(loss_type="kto")))
    plan.append(("kto_apo_zero_unpaired", "kto", dict(loss_type="apo_zero_unpaired")))

    done = []
    for name, kind, kw in plan:
        if only and name not in only:
            continue
        print(f"[trl-fixtures] {name}", flush=True)
        if kind == "dpo":
            rec = run_dpo(name, kw["loss_types"], kw["loss_weights"], model_dir, model_dir, prefs, out_runs, kw["save_final"])
            check_dpo(rec)
            if name == "sigmoid":
                diff = replay_sigmoid(rec, model_dir, os.path.join(out_runs, "sigmoid_final.safetensors"))
                print(f"[trl-fixtures] plain-PyTorch replay of sigmoid: max |w - w_TRL| = {diff:.3g}")
                assert diff < 1e-5, diff
        elif kind == "rm":
            check_rm(run_rm(name, rm_dir, model_dir, prefs, out_runs, center=kw["center"], margin=kw["margin"]))
        else:
            check_kto(run_kto(name, model_dir, model_dir, unpaired, out_runs, loss_type=kw["loss_type"]))
        done.append(name)

    if not only:
        files = {}
        for root, _, names in os.walk(out):
            for n in sorted(names):
                p = os.path.join(root, n)
                if os.path.basename(p) == "manifest.json":
                    continue
                files[os.path.relpath(p, out)] = sha256(p)
        manifest = {
            "generator": "reference/make_trl_fixtures.py",
            "versions": versions(),
            "dpo_loss_types_in_installed_trl": loss_types,
            "runs": [{"name": n, "kind": k, **{kk: vv for kk, vv in kw.items() if kk != "save_final"}} for n, k, kw in plan],
            "seeds": {"model": MODEL_SEED, "rm_score_head": RM_SEED, "training": TRAIN_SEED},
            "model_config": {k: v for k, v in MODEL_CONFIG.items()},
            "attn_implementation": ATTN,
            "sha256": dict(sorted(files.items())),
        }
        dump_json(manifest, os.path.join(out, "manifest.json"))
    total = sum(os.path.getsize(os.path.join(r, n)) for r, _, ns in os.walk(out) for n in ns)
    print(f"[trl-fixtures] wrote {len(done)} runs to {rel(out)}; total {total} bytes")


if __name__ == "__main__":
    main()
