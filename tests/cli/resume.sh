#!/usr/bin/env bash
# Exact resume across a kill -9 (docs/reliability.md test 34): a run killed mid-training and resumed
# with --resume ends with the same weights (byte-identical model.safetensors) and the same
# per-step losses and gradient norms as the same run uninterrupted; the same after SIGTERM or
# SIGINT, which write a checkpoint before stopping. And a bench stage ends with its killed bench.
set -euo pipefail
RLHF="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$RLHF" init-model --family gpt2 --preset tiny --out "$tmp/init" >/dev/null
args=(--model "$tmp/init" --synthetic --seq-len 32 --batch-size 4 --grad-accum 2 --max-steps 400
      --learning-rate 3e-3 --warmup-steps 20 --weight-decay 0.01 --save-steps 50 --save-total-limit 3
      --log-every 1000 --threads 1)
"$RLHF" lm "${args[@]}" --out "$tmp/straight" >/dev/null

# The same run, killed as soon as its second checkpoint is committed.
"$RLHF" lm "${args[@]}" --out "$tmp/killed" >/dev/null &
pid=$!
for _ in $(seq 1 600); do
  [[ -d "$tmp/killed/checkpoint-100" ]] && break
  sleep 0.05
done
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
[[ -d "$tmp/killed/checkpoint-100" ]] || fail "no checkpoint was written before the kill"
[[ ! -f "$tmp/killed/model.safetensors" ]] || fail "the run finished before it could be killed; make it longer"
"$RLHF" lm "${args[@]}" --out "$tmp/killed" --resume > "$tmp/resume.log"
grep -q "resumed from" "$tmp/resume.log" || fail "did not resume"

cmp -s "$tmp/straight/model.safetensors" "$tmp/killed/model.safetensors" || fail "final weights differ"
cmp -s "$tmp/straight/metrics.jsonl" "$tmp/killed/metrics.jsonl" || fail "metrics differ"
[[ $(ls -d "$tmp/killed"/checkpoint-* | wc -l) -le 3 ]] || fail "save_total_limit not honoured"

# SIGTERM and SIGINT stop a run gracefully (docs/reliability.md test 34b): the step ends, its
# checkpoint is written and named, the exit code is 128 + the signal, and --resume ends with the
# uninterrupted run's weights and metrics. (Job control on, so that the background run does not
# start with SIGINT ignored.)
set -m
for sig in TERM INT; do
  run=(lm "${args[@]}" --save-steps 1000 --out "$tmp/sig$sig")
  "$RLHF" "${run[@]}" > "$tmp/sig$sig.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 600); do
    [[ $(cat "$tmp/sig$sig/metrics.jsonl" 2>/dev/null | wc -l) -ge 30 ]] && break
    sleep 0.05
  done
  kill -s "$sig" "$pid"
  set +e; wait "$pid"; rc=$?; set -e
  expect=$([[ $sig == TERM ]] && echo 143 || echo 130)
  [[ $rc -eq $expect ]] || fail "SIG$sig: exit $rc, expected $expect: $(cat "$tmp/sig$sig.log")"
  step=$(sed -n "s/^stopped by SIG$sig after step \([0-9]*\);.*checkpoint-\1 .*/\1/p" "$tmp/sig$sig.log")
  [[ -n $step && -d "$tmp/sig$sig/checkpoint-$step" ]] || fail "SIG$sig: no checkpoint named: $(cat "$tmp/sig$sig.log")"
  [[ $step -lt 400 && ! -f "$tmp/sig$sig/model.safetensors" ]] || fail "SIG$sig: the run did not stop early"
  "$RLHF" "${run[@]}" --resume > /dev/null
  cmp -s "$tmp/straight/model.safetensors" "$tmp/sig$sig/model.safetensors" || fail "SIG$sig: final weights differ"
  cmp -s "$tmp/straight/metrics.jsonl" "$tmp/sig$sig/metrics.jsonl" || fail "SIG$sig: metrics differ"
done
set +m

# A resume with different settings is refused with a message naming them.
set +e
out=$("$RLHF" lm "${args[@]}" --out "$tmp/straight" --resume --seed 5 2>&1); rc=$?
set -e
[[ $rc -eq 2 && $out == *"cannot resume with different settings"*"seed"* ]] || fail "fingerprint check: rc=$rc $out"
echo "1 passed, 0 failed"

# A bench stage ends with the bench that started it: a command whose RLHF_BENCH_PID names its
# parent gets SIGTERM when that parent is killed (cli/main.cpp); without the variable it runs on.
stage_of_killed_parent() {  # $1: "bench" to set the variable; prints whether the command survived
  local parent stage env=""
  [[ $1 == bench ]] && env='export RLHF_BENCH_PID=$$;'
  bash -c "$env"' "$@" & wait' _ "$RLHF" lm "${args[@]}" --max-steps 100000 --out "$tmp/stage-$1" &>/dev/null &
  parent=$!
  for _ in $(seq 1 200); do
    stage=$(pgrep -P "$parent" || true)
    [[ -n "$stage" ]] && break
    sleep 0.05
  done
  [[ -n "$stage" ]] || fail "the stage command did not start"
  sleep 0.5
  kill -9 "$parent"
  wait "$parent" 2>/dev/null || true
  sleep 1
  if [[ -e /proc/$stage ]] && [[ "$(awk '{print $3}' "/proc/$stage/stat")" != Z ]]; then
    echo survived
    kill -9 "$stage"
  else
    echo ended
  fi
}
[[ $(stage_of_killed_parent plain) == survived ]] || fail "a plain command should outlive its killed parent"
[[ $(stage_of_killed_parent bench) == ended ]] || fail "a bench stage outlived its killed bench"
