#!/usr/bin/env bash
# Data parallelism on MPI, as a user launches it (mpirun -np 2 on this 2-core machine): 2 ranks
# with per-rank batch B train like 1 process with gradient accumulation 2 x B (and, for DPO's
# per-pair mean, like batch 2B): same loss curve and, through rlhf eval's per-pair log-probs,
# the same weights, to fp32 tolerance. A failing rank stops every rank; a resume with another
# number of ranks is refused; a killed rank fails the job and its checkpoint resumes exactly.
set -euo pipefail
RLHF="$1"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
TOK="$ROOT/tests/fixtures/text/tokenizers/qwen2"
PREFS="$ROOT/tests/fixtures/trl/prefs.jsonl"
MPIRUN=(mpirun --oversubscribe -np 2)
[[ $(id -u) -eq 0 ]] && MPIRUN=(mpirun --allow-run-as-root --oversubscribe -np 2)
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
# Containers often forbid the cross-process memory copy Open MPI's shared-memory transport tries
# first (CMA needs ptrace rights); plain copies work everywhere.
export OMPI_MCA_btl_vader_single_copy_mechanism=none

"$RLHF" init-model --family qwen2 --preset tiny --vocab-size 2048 --kv-heads 2 --out "$tmp/base" >/dev/null
cp "$TOK/tokenizer.json" "$TOK/tokenizer_config.json" "$tmp/base/"

# Column `key` of every metrics line, one value per line.
column() { sed -n "s|.*\"$2\":\\([0-9.e+-]*\\).*|\\1|p" "$1"; }
# Every pair of values agrees to `tol` relative (of max(1e-3, |b|)).
same() {
  paste <(printf '%s\n' "$1") <(printf '%s\n' "$2") |
    awk -v tol="$3" '{ d = $1 - $2; if (d < 0) d = -d; s = $2 < 0 ? -$2 : $2; if (s < 1e-3) s = 1e-3;
                       if (d > tol * s) { print "differs: " $1 " vs " $2; bad = 1 } n++ }
                     END { exit bad || n == 0 }'
}
logps() {
  "$RLHF" eval --data "$PREFS" --policy "$1" --ref-model "$tmp/base" --max-length 256 --scores-out "$1.scores" >/dev/null
  sed 's/.*"policy_logps":{"chosen":\([0-9.e+-]*\),"rejected":\([0-9.e+-]*\)}.*/\1\n\2/' "$1.scores"
}

for task in dpo sft; do
  data="$PREFS"
  if [[ $task == sft ]]; then
    data="$tmp/sft.jsonl"
    for i in $(seq 1 16); do echo "{\"prompt\": \"Say $i :\", \"completion\": \" number $i , twice $i $i .\"}"; done > "$data"
  fi
  args=(--model "$tmp/base" --data "$data" --per-device-train-batch-size 2 --max-steps 6 --learning-rate 1e-3
        --lr-scheduler-type constant --max-length 64 --threads 1)
  "${MPIRUN[@]}" "$RLHF" "$task" "${args[@]}" --out "$tmp/$task-dp2" > "$tmp/$task-dp2.log" 2>&1 \
    || fail "$task under mpirun: $(cat "$tmp/$task-dp2.log")"
  grep -q '"ranks": 2' "$tmp/$task-dp2/manifest.json" || fail "$task manifest: ranks"
  "$RLHF" "$task" "${args[@]}" --gradient-accumulation-steps 2 --out "$tmp/$task-acc2" > /dev/null
  [[ $(grep -c . "$tmp/$task-dp2/metrics.jsonl") -eq 6 ]] || fail "$task: rank 0 alone writes the metrics"
  same "$(column "$tmp/$task-dp2/metrics.jsonl" loss)" "$(column "$tmp/$task-acc2/metrics.jsonl" loss)" 1e-5 \
    || fail "$task: 2 ranks vs accumulation 2: loss curves differ"
  same "$(column "$tmp/$task-dp2/metrics.jsonl" grad_norm)" "$(column "$tmp/$task-acc2/metrics.jsonl" grad_norm)" 1e-4 \
    || fail "$task: grad norms differ"
  same "$(logps "$tmp/$task-dp2")" "$(logps "$tmp/$task-acc2")" 1e-5 || fail "$task: final weights differ"
done
# DPO's loss is a mean over pairs, so batch 2B on one process is the same run too.
"$RLHF" dpo --model "$tmp/base" --data "$PREFS" --per-device-train-batch-size 4 --max-steps 6 --learning-rate 1e-3 \
  --lr-scheduler-type constant --max-length 64 --threads 1 --out "$tmp/dpo-b4" > /dev/null
same "$(column "$tmp/dpo-dp2/metrics.jsonl" loss)" "$(column "$tmp/dpo-b4/metrics.jsonl" loss)" 1e-5 \
  || fail "dpo: 2 ranks vs batch 2B: loss curves differ"

# ZeRO-1 (AdamW moments sharded over the ranks) gives the plain data-parallel weights bit for bit,
# also across a checkpoint (saved whole) and a resume.
zargs=(--model "$tmp/base" --data "$PREFS" --per-device-train-batch-size 2 --max-steps 6 --save-steps 3
       --learning-rate 1e-3 --lr-scheduler-type constant --max-length 64 --threads 1)
"${MPIRUN[@]}" "$RLHF" dpo "${zargs[@]}" --out "$tmp/plain" > /dev/null 2>&1 || fail "plain 2-rank dpo"
"${MPIRUN[@]}" "$RLHF" dpo "${zargs[@]}" --zero1 --out "$tmp/zero1" > "$tmp/zero1.log" 2>&1 || fail "zero1: $(cat "$tmp/zero1.log")"
grep -q "ZeRO-1: AdamW moments" "$tmp/zero1.log" || fail "zero1: memory per rank not reported"
cmp -s "$tmp/plain/model.safetensors" "$tmp/zero1/model.safetensors" || fail "zero1 weights differ from plain DP"
cmp -s "$tmp/plain/checkpoint-3/optimizer.safetensors" "$tmp/zero1/checkpoint-3/optimizer.safetensors" \
  || fail "zero1 checkpoint's optimizer state differs"
rm "$tmp/zero1/model.safetensors"
"${MPIRUN[@]}" "$RLHF" dpo "${zargs[@]}" --zero1 --out "$tmp/zero1" --resume > /dev/null 2>&1 || fail "zero1 resume"
cmp -s "$tmp/plain/model.safetensors" "$tmp/zero1/model.safetensors" || fail "resumed zero1 weights differ"

# A resume with a different number of ranks is refused, naming the setting.
"${MPIRUN[@]}" "$RLHF" dpo --model "$tmp/base" --data "$PREFS" --per-device-train-batch-size 2 --max-steps 4 \
  --save-steps 2 --max-length 64 --threads 1 --out "$tmp/ckpt" > /dev/null 2>&1 || fail "dpo with checkpoints"
rm "$tmp/ckpt/model.safetensors"
set +e
out=$("$RLHF" dpo --model "$tmp/base" --data "$PREFS" --per-device-train-batch-size 2 --max-steps 4 --save-steps 2 \
  --max-length 64 --threads 1 --out "$tmp/ckpt" --resume 2>&1); rc=$?
set -e
[[ $rc -eq 2 && $out == *"ranks"* ]] || fail "resume on 1 rank of a 2-rank run: rc=$rc $out"

# kill -9 of one rank mid-run ends the whole job with a non-zero exit; its last checkpoint is
# valid, and resuming it on 2 ranks ends with the same weights, byte for byte, as a run that was
# never interrupted (the reduction order is fixed).
long=(--model "$tmp/base" --data "$PREFS" --per-device-train-batch-size 2 --max-steps 300 --save-steps 20
      --learning-rate 1e-4 --max-length 64 --threads 1)
"${MPIRUN[@]}" "$RLHF" dpo "${long[@]}" --out "$tmp/whole" > /dev/null 2>&1 || fail "uninterrupted 2-rank run"
"${MPIRUN[@]}" "$RLHF" dpo "${long[@]}" --out "$tmp/killed" > /dev/null 2>&1 &
job=$!
for _ in $(seq 1 600); do [[ -d "$tmp/killed/checkpoint-20" ]] && break; sleep 0.05; done
victim=$(pgrep -f -n "^$RLHF dpo .*$tmp/killed" || true)  # a rank, not mpirun
[[ -n $victim ]] || fail "no rank process found to kill"
kill -9 "$victim"
set +e
timeout 60 tail --pid="$job" -f /dev/null; wait "$job"; rc=$?
set -e
[[ -d "$tmp/killed/checkpoint-20" && ! -f "$tmp/killed/model.safetensors" ]] \
  || fail "the 2-rank run was not killed after its first checkpoint; make it longer"
[[ $rc -ne 0 ]] || fail "killing one rank did not fail the job"
"${MPIRUN[@]}" "$RLHF" dpo "${long[@]}" --out "$tmp/killed" --resume > "$tmp/resumed.log" 2>&1 \
  || fail "resume on 2 ranks: $(cat "$tmp/resumed.log")"
cmp -s "$tmp/whole/model.safetensors" "$tmp/killed/model.safetensors" || fail "resumed 2-rank weights differ"

# A hung rank (SIGSTOP) stops the job after --dist-timeout: the waiting rank names itself and the
# step; no process is left behind, and the last checkpoint still resumes.
"${MPIRUN[@]}" "$RLHF" dpo "${long[@]}" --dist-timeout 3 --out "$tmp/hung" > "$tmp/hung.log" 2>&1 &
job=$!
for _ in $(seq 1 600); do [[ -d "$tmp/hung/checkpoint-20" ]] && break; sleep 0.05; done
victim=$(pgrep -f -n "^$RLHF dpo .*$tmp/hung" || true)
[[ -n $victim ]] || fail "no rank process found to stop"
kill -STOP "$victim"
set +e
timeout 60 tail --pid="$job" -f /dev/null; wait "$job"; rc=$?
set -e
pgrep -f "^$RLHF dpo .*$tmp/hung" > /dev/null && { pkill -9 -f "^$RLHF dpo .*$tmp/hung"; fail "ranks left after the hang"; }
[[ $rc -ne 0 ]] && grep -q "a collective did not complete in 3 s at step" "$tmp/hung.log" \
  || fail "hung rank: rc=$rc $(tail -5 "$tmp/hung.log")"
rm -rf "$tmp/hung/model.safetensors"
"${MPIRUN[@]}" "$RLHF" dpo "${long[@]}" --dist-timeout 3 --out "$tmp/hung" --resume > "$tmp/hung-resumed.log" 2>&1 \
  || fail "resume after the hang: $(tail -5 "$tmp/hung-resumed.log")"
cmp -s "$tmp/whole/model.safetensors" "$tmp/hung/model.safetensors" || fail "weights after resuming the hung run differ"

# An error on the ranks stops all of them with a non-zero exit, never a hang.
printf '{"prompt": "a", "chosen": 3, "rejected": "b"}\n' > "$tmp/bad.jsonl"
set +e
out=$(timeout 60 "${MPIRUN[@]}" "$RLHF" dpo --model "$tmp/base" --data "$tmp/bad.jsonl" --out "$tmp/bad" 2>&1); rc=$?
set -e
[[ $rc -ne 0 && $rc -ne 124 && $out == *"bad.jsonl:1"* ]] || fail "bad input under mpirun: rc=$rc $out"
set +e
out=$(timeout 60 "${MPIRUN[@]}" "$RLHF" grpo --model "$tmp/base" --data "$tmp/sft.jsonl" --reward eos --out "$tmp/bad2" 2>&1); rc=$?
set -e
[[ $rc -ne 0 && $rc -ne 124 && $out == *"does not run data-parallel yet"* ]] || fail "online under mpirun: rc=$rc $out"
echo "1 passed, 0 failed"
