"""What the TRL baselines of bench/online_step.sh share: bench/trl_online_step.py (RLOO / GRPO, in
reference/.venv with TRL 1.16) and bench/trl_ppo_step.py (PPO, in reference/.venv-ppo with TRL 1.12).

Only the standard library is imported at module level: trl_online_step.py's `prepare` mode runs
without packages, and each venv has its own TRL. The functions that need torch, transformers or TRL
import them when called, after the calling script has imported them itself.
"""

import contextlib
import json
import os
import resource
import sys
import tempfile
import time

# The prepared model's ids (bench/trl_online_step.py prepare): ids 0..1999 are the fixture tokenizer's
# BPE vocabulary; 2000..2004 are special (the edited embedding keeps them from being sampled).
N_REGULAR = 2000
EOS, PAD = 2002, 2000


def check_environment():
    """Warns without OMP_WAIT_POLICY=PASSIVE; keeps the Hugging Face libraries offline and quiet."""
    if os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
        print("warning: run with OMP_WAIT_POLICY=PASSIVE (see bench/online_step.sh)", file=sys.stderr)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def quiet_libraries(threads):
    """No transformers/datasets logging or progress bars; torch on `threads` threads."""
    import datasets
    import torch
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    torch.set_num_threads(threads)


def read_prompts(model_dir):
    """The prompts of model_dir/prompts.jsonl (written by trl_online_step.py prepare)."""
    return [json.loads(line)["prompt"] for line in open(os.path.join(model_dir, "prompts.jsonl"))]


def step_timer():
    """A TrainerCallback that records the wall and CPU (process_time, all threads) time between
    consecutive on_step_end callbacks in .wall / .cpu; the first interval starts at on_train_begin."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.wall, self.cpu = [], []
            self.last = None

        def on_train_begin(self, a, state, control, **kw):
            self.last = (time.perf_counter(), time.process_time())

        def on_step_end(self, a, state, control, **kw):
            now = (time.perf_counter(), time.process_time())
            self.wall.append(now[0] - self.last[0])
            self.cpu.append(now[1] - self.last[1])
            self.last = now

    return StepTimer()


def training_args(method, batch, seed):
    """The TrainingArguments both baselines set alike: `batch` episodes per device step, no gradient
    accumulation, sampling at temperature 1, learning rate 1e-6, float32 on the CPU, no gradient
    checkpointing, no data loader workers, logging every step to nowhere, nothing saved."""
    return dict(
        output_dir=tempfile.mkdtemp(prefix=f"trl_{method}_step_"),
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=1,
        temperature=1.0,
        learning_rate=1e-6,
        logging_steps=1,
        report_to=[],
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        dataloader_num_workers=0,
        save_strategy="no",
        disable_tqdm=True,
        seed=seed,
    )


def to_stderr(fn, *args, **kw):
    """fn(*args, **kw) with its stdout sent to stderr (stdout carries only the result line);
    returns its result and the wall time it took."""
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        out = fn(*args, **kw)
    return out, time.perf_counter() - t0


def result_line(method, timer, steps, warmup, batch, max_new_tokens, init_s, fields):
    """The JSON result line: the timing of the steps after `warmup` (the caller has checked that
    there are `steps` of them), `fields` (the method's own), then memory, threads and versions."""
    import accelerate
    import datasets
    import torch
    import transformers
    import trl

    wall = timer.wall[warmup:]
    cpu = timer.cpu[warmup:]
    mean_s = sum(wall) / len(wall)
    tokens = batch * max_new_tokens
    return json.dumps({
        "impl": "trl", "method": method,
        "episodes_per_s": round(batch / mean_s, 2),
        "tokens_per_s": round(tokens / mean_s, 1),
        "step_s": round(mean_s, 3),
        "step_s_each": [round(t, 3) for t in wall],
        "cpu_s_per_step": round(sum(cpu) / len(cpu), 3),
        "warmup_step_s": [round(t, 3) for t in timer.wall[:warmup]],
        "trainer_init_s": round(init_s, 2),
        "episodes_per_step": batch, "completion_tokens_per_step": tokens,
        **fields,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "threads": torch.get_num_threads(), "steps": steps, "warmup": warmup,
        "trl": trl.__version__, "transformers": transformers.__version__, "torch": torch.__version__,
        "accelerate": accelerate.__version__, "datasets": datasets.__version__,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    })


def add_run_arguments(ap, prompts_per_step):
    """--steps, --warmup, --threads, --prompts-per-step, --max-new-tokens, --seed."""
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompts-per-step", type=int, default=prompts_per_step)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--seed", type=int, default=42)


def check_run_arguments(ap, args):
    if args.steps < 1 or args.warmup < 0:
        ap.error("--steps must be >= 1 and --warmup >= 0")
