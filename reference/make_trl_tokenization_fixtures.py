#!/usr/bin/env python3
"""Record how TRL 1.16 tokenizes conversational data and prompt/completion seams, and a DPO run on each.

Writes tests/fixtures/trl_tokens/ so that C++ tests can tokenize the same JSONL with rlhf's own
collation and compare every id, then replay TRL's training from those ids:

  model/           tiny random LlamaForCausalLM (F32) with a byte-level BPE tokenizer trained here on
                   the fixture text, ChatML special tokens and a ChatML chat template (Qwen2.5-Instruct's
                   layout: eos_token <|im_end|>, pad <|endoftext|>, no BOS)
  chat.jsonl       16 conversational preference rows (system / multi-turn prompts, assistant replies)
  seam.jsonl       16 standard-layout preference rows whose prompts end inside a word or on a space, so
                   that BPE merges cross the prompt/completion seam in most of them
  runs/dpo_chat.json, runs/dpo_seam.json   DPOTrainer (sigmoid), 3 steps: rows with TRL's ids, batch
                   order, per-step metrics (the same record layout as make_trl_fixtures.py)
  tokens.json      the ids TRL's other trainers build from the same files, without training:
                   SFTTrainer (prompt-completion: input_ids + labels, -100 on the prompt), KTOTrainer (prompt_ids,
                   completion_ids), RewardTrainer (chosen_ids, rejected_ids)
  manifest.json    versions, sha256 of every file

TRL's conventions seen here (trl/trainer/*_trainer.py, _prepare_dataset):
  - EOS is appended to standard-layout completions only; a conversational completion ends as the
    chat template renders the assistant turn;
  - prompt and prompt + completion are tokenized whole, and the completion starts at their longest
    common prefix (DPO: the shorter of the chosen's and the rejected's), so a token that spans the
    seam belongs to the completion.

Usage (see reference/README.md):
  reference/.venv/bin/python reference/make_trl_tokenization_fixtures.py [--out tests/fixtures/trl_tokens]
"""

import argparse
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_trl_fixtures as base  # noqa: E402  (sets the offline environment before importing HF)

import torch  # noqa: E402
import transformers  # noqa: E402
from datasets import Dataset  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)
from trl import KTOConfig, KTOTrainer, RewardConfig, RewardTrainer, SFTConfig, SFTTrainer  # noqa: E402

MODEL_SEED = 2026
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
VOCAB = 320
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def sys_user(system, user):
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def user(text):
    return [{"role": "user", "content": text}]


def reply(text):
    return [{"role": "assistant", "content": text}]


# (prompt messages, chosen reply, rejected reply)
CHAT = [
    (user("What color is the sky?"), "The sky is blue.", "The sky is green."),
    (sys_user("Be brief.", "Name a fruit."), "An apple.", "A rock."),
    (user("How many legs does a cat have?"), "A cat has four legs.", "Two."),
    (user("Say hello."), "Hello!", "Goodbye, see you never."),
    (sys_user("You are a calculator.", "What is two plus two?"), "Four.", "Two plus two is five."),
    (user("Where do fish live?"), "Fish live in water.", "Fish live in trees."),
    (user("Is fire hot?") + reply("Yes.") + user("Is ice hot?"), "No, ice is cold.", "Yes, ice is hot."),
    (user("Name a color."), "Red.", "Seven."),
    (sys_user("Answer in one word.", "What do cows drink?"), "Water.", "Milk, mostly."),
    (user("Which is bigger, a dog or a mouse?"), "A dog is bigger.", "A mouse is bigger than a dog."),
    (user("What sound does a dog make?"), "A dog barks.", "A dog sings songs."),
    (user("When is it dark?") + reply("At night.") + user("And light?"), "During the day.", "At night too."),
    (user("Can birds fly?"), "Most birds can fly.", "Birds can swim in the sky."),
    (sys_user("Be precise.", "What is ice?"), "Ice is frozen water.", "Ice is hot fire."),
    (user("Count to three."), "One, two, three.", "One, three, two."),
    (user("Thank you."), "You are welcome.", "No."),
]

# Prompts that end inside a word ("Par" + "is") or on a space ("is " + "blue"): BPE merges across
# the seam. A few end on a word boundary as controls.
SEAM = [
    ("The capital of France is Par", "is.", "ma."),
    ("The sky is ", "blue.", "green."),
    ("A cat has four le", "gs.", "aves."),
    ("Water freezes at zero degr", "ees.", "adation."),
    ("Say hello:", " Hello!", " Goodbye."),
    ("Two plus two is f", "our.", "ive."),
    ("Fish live in wat", "er.", "ermelons."),
    ("Fire is ", "hot.", "cold."),
    ("The opposite of up is", " down.", " sideways."),
    ("Cows drink wa", "ter.", "ffles."),
    ("A dog is bigger than a mou", "se.", "ntain."),
    ("Dogs ba", "rk.", "ke bread."),
    ("It is dark at ni", "ght.", "ne."),
    ("Most birds can ", "fly.", "swim."),
    ("Ice is frozen ", "water.", "fire."),
    ("One, two, thr", "ee.", "ow."),
]


def chat_rows():
    return [{"prompt": p, "chosen": reply(c), "rejected": reply(r)} for p, c, r in CHAT]


def seam_rows():
    return [{"prompt": p, "chosen": c, "rejected": r} for p, c, r in SEAM]


def corpus():
    texts = []
    for p, c, r in CHAT:
        for m in p:
            texts.append(m["role"] + "\n" + m["content"])
        texts += ["assistant\n" + c, "assistant\n" + r]
    for p, c, r in SEAM:
        texts += [p + c, p + r, p]
    return texts


def build_tokenizer():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None,
        additional_special_tokens=["<|im_start|>"],
    )
    fast.chat_template = CHATML
    return fast


def make_model_and_data(out):
    tok = build_tokenizer()
    vocab_size = len(tok)
    assert vocab_size <= VOCAB, vocab_size
    mdir = os.path.join(out, "model")
    if os.path.exists(mdir):
        shutil.rmtree(mdir)
    cfg = dict(base.MODEL_CONFIG)
    cfg.update(vocab_size=VOCAB, bos_token_id=None, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(MODEL_SEED)
    model = LlamaForCausalLM(LlamaConfig(**cfg)).to(torch.float32).eval()
    model.save_pretrained(mdir, safe_serialization=True)
    base.strip_generation_config(mdir)
    tok.save_pretrained(mdir)
    tok2 = AutoTokenizer.from_pretrained(mdir)
    re_model = AutoModelForCausalLM.from_pretrained(mdir, dtype=torch.float32)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), re_model.state_dict().values()))
    for rows, name in ((chat_rows(), "chat.jsonl"), (seam_rows(), "seam.jsonl")):
        with open(os.path.join(out, name), "w") as fh:
            for r in rows:
                fh.write(json.dumps(r) + "\n")
    # The fixture is only useful if the seams really merge.
    merged = sum(
        1 for p, c, _ in SEAM if tok2(p)["input_ids"] != tok2(p + c + tok2.eos_token)["input_ids"][: len(tok2(p)["input_ids"])]
    )
    assert merged >= 10, merged
    return tok2


def fix_effective(record, tok):
    """make_trl_fixtures.run_dpo describes its own tokenizer's BOS/EOS; describe this one's."""
    eff = record["effective"]
    eff["eos_appended"] = [r["chosen_ids"][-1] == tok.eos_token_id for r in record["rows"]]
    eff["bos_prepended"] = "no BOS: the tokenizer has no post-processor"
    eff["seam_moved"] = [
        len(r["prompt_ids"]) < len(tok(r["prompt"])["input_ids"]) if isinstance(r["prompt"], str) else None
        for r in record["rows"]
    ]


def other_trainers(model_dir, tok, chat, seam):
    """The ids SFTTrainer, KTOTrainer and RewardTrainer build from the same rows (no training)."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        common = base.common_args(tmp)
        for name, rows in (("chat", chat), ("seam", seam)):
            pc = [{"prompt": r["prompt"], "completion": r["chosen"]} for r in rows]
            sft = SFTTrainer(
                model=model_dir, args=SFTConfig(**common, model_init_kwargs={"dtype": "float32"}),
                train_dataset=Dataset.from_list(pc), processing_class=tok,
            )
            ds = sft.train_dataset
            # labels: -100 on the prompt (completion_only_loss), the token id on the completion
            sft_rows = [{"input_ids": ds[i]["input_ids"], "labels": ds[i]["labels"]} for i in range(len(ds))]
            unpaired = [{"prompt": r["prompt"], "completion": r["chosen"], "label": i % 2 == 0} for i, r in enumerate(rows)]
            kto = KTOTrainer(
                model=model_dir, ref_model=None,
                args=KTOConfig(**common, loss_type="apo_zero_unpaired", model_init_kwargs={"dtype": "float32"},
                               precompute_ref_log_probs=False),
                train_dataset=Dataset.from_list(unpaired), processing_class=tok,
            )
            ds = kto.train_dataset
            kto_rows = [{"prompt_ids": ds[i]["prompt_ids"], "completion_ids": ds[i]["completion_ids"]} for i in range(len(ds))]
            rm = RewardTrainer(
                model=transformers.AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1, dtype=torch.float32),
                args=RewardConfig(**common), train_dataset=Dataset.from_list(rows), processing_class=tok,
            )
            ds = rm.train_dataset
            rm_rows = [{"chosen_ids": ds[i]["chosen_ids"], "rejected_ids": ds[i]["rejected_ids"]} for i in range(len(ds))]
            out[name] = {"sft": sft_rows, "kto": kto_rows, "rm": rm_rows}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(base.REPO, "tests", "fixtures", "trl_tokens"))
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    transformers.logging.set_verbosity_error()
    base.datasets.disable_progress_bars()
    base.datasets.disable_caching()
    out = os.path.abspath(a.out)
    if os.path.exists(out):
        shutil.rmtree(out)
    out_runs = os.path.join(out, "runs")
    os.makedirs(out_runs)

    tok = make_model_and_data(out)
    model_dir = os.path.join(out, "model")
    chat = base.load_jsonl(os.path.join(out, "chat.jsonl"))
    seam = base.load_jsonl(os.path.join(out, "seam.jsonl"))
    for name, rows in (("dpo_chat", chat), ("dpo_seam", seam)):
        print(f"[trl-tokens] {name}", flush=True)
        rec = base.run_dpo(name, ["sigmoid"], None, model_dir, model_dir, rows, out_runs)
        base.check_dpo(rec)
        fix_effective(rec, tok)
        base.dump_json(rec, os.path.join(out_runs, f"{name}.json"))
    print("[trl-tokens] SFT / KTO / reward tokenization", flush=True)
    base.dump_json(other_trainers(model_dir, tok, chat, seam), os.path.join(out, "tokens.json"))

    files = {}
    for root, _, names in os.walk(out):
        for n in sorted(names):
            p = os.path.join(root, n)
            files[os.path.relpath(p, out)] = base.sha256(p)
    manifest = {
        "generator": "reference/make_trl_tokenization_fixtures.py",
        "versions": base.versions(),
        "seeds": {"model": MODEL_SEED, "training": base.TRAIN_SEED},
        "sha256": dict(sorted(files.items())),
    }
    base.dump_json(manifest, os.path.join(out, "manifest.json"))
    total = sum(os.path.getsize(os.path.join(r, n)) for r, _, ns in os.walk(out) for n in ns)
    print(f"[trl-tokens] wrote {base.rel(out)}; total {total} bytes")


if __name__ == "__main__":
    main()
