#!/usr/bin/env bash
# rlhf bench end to end on the miniature profile (every suite, tiny budgets, its two seeds): the
# results.json schema (docs/bench-results.md), finite metrics for every run, calibrated annotators,
# all twelve pattern verdicts over both seeds, pooling over seeds, the same results from the same
# seed (apart from timings) whichever seeds run beside it, resuming after a kill, and clear errors
# for bad options. The report's rendering is tests/testbed/report_render.sh.
set -euo pipefail
RLHF="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$RLHF" bench --profile mini --out "$tmp/a" > "$tmp/a.log" 2>&1 || fail "bench: $(tail -20 "$tmp/a.log")"
grep -q "predicted run time" "$tmp/a.log" || fail "no predicted run time"
grep -q "^The answer (docs/testbed.md §8)" "$tmp/a.log" || fail "no verdicts in the summary"
[[ -s "$tmp/a/report.html" ]] || fail "no report.html"

python3 - "$tmp/a/results.json" <<'PY'
import json, math, sys
r = json.load(open(sys.argv[1]))
def need(cond, what):
    if not cond:
        print("FAIL:", what); sys.exit(1)
need(r["schema"] == "rlhf-bench/1", "schema")
for k in ["version", "profile", "preset", "seeds", "world_seed", "machine", "wall_seconds", "stages", "tasks",
          "annotators", "runs", "suites", "verdicts", "untested", "checks"]:
    need(k in r, "top-level field " + k)
need(r["command"].startswith("rlhf bench --profile mini --out "), "command: " + r["command"])
need(set(r["suites"]) == {"rq1", "rq2", "rq3", "rq4", "rq5", "rq6", "length", "overopt", "bandits"}, "suites")
need(r["seeds"] == [1, 2], "the mini profile's seeds: %r" % r["seeds"])
need(0 < r["machine"]["busy_slots"] <= 1.01, "busy slots %r" % r["machine"]["busy_slots"])
rows = r["suites"]["rq6"]["pooled"]  # each suite pools its sweep points over seeds × prompts
need(len(r["suites"]["rq6"]["per_seed"]) == 2, "per-seed tables")
need({x["method"] for x in rows} == {"online-dpo", "offline-dpo", "iterative-dpo", "semi-online-dpo", "grpo"} and all(x["seeds"] == 2 for x in rows), rows)
need(all(x["ci"][0] <= x["final_gold"] <= x["ci"][1] for x in rows), rows)
methods = set()
for run in r["runs"]:
    methods.add(run["method"])
    for k in ["id", "suite", "task", "method", "params", "seed", "command", "manifest", "accounting", "checkpoints", "final"]:
        need(k in run, run.get("id", "?") + ": field " + k)
    need(run["command"].startswith("rlhf "), run["id"] + ": command")
    need(len(run["checkpoints"]) >= 2 and run["checkpoints"][0]["step"] == 0, run["id"] + ": checkpoints")
    need(run["accounting"]["flops"] > 0, run["id"] + ": flops")
    for c in run["checkpoints"]:
        for k in ["gold", "kl", "kl_k1", "kl_k3", "win_rate", "length", "distinct2", "entropy", "flops"]:
            need(isinstance(c[k], (int, float)) and math.isfinite(c[k]), "%s step %s: %s = %r" % (run["id"], c["step"], k, c[k]))
        need(c["kl"] >= -1e-6, run["id"] + ": exact KL negative")
        need(c["gold_ci"][0] <= c["gold"] <= c["gold_ci"][1], run["id"] + ": gold outside its CI")
    need(abs(run["checkpoints"][0]["kl"]) < 1e-6, run["id"] + ": the base policy's KL to itself is not 0")
for m in ["dpo", "ipo", "cdpo", "rm+ppo", "rm+rloo", "gold+ppo", "pl-rm+rloo", "listwise-dpo", "dpo-best-worst",
          "dpo+nll", "rloo", "grpo", "online-dpo", "offline-dpo", "r-dpo", "length-only-ppo", "rm+apa", "iterative-dpo", "simpo", "orpo", "kto", "rm+grpo", "raft", "semi-online-dpo"]:
    need(m in methods, "method " + m + " did not run")
for a in r["annotators"]:
    if a["target"] > 0:
        need(abs(a["measured"] - a["target"]) <= 0.02, "annotator %s: measured %.3f vs target %.2f" % (a["name"], a["measured"], a["target"]))
# Every verdict reads every seed of the run, states its statistic and carries its effect with a CI.
need(sorted({v["pattern"] for v in r["verdicts"]}) == list(range(1, 12)), "patterns 1-11 have verdicts")
for v in r["verdicts"]:
    need(v["verdict"] in ("reproduced", "not reproduced", "inconclusive"), "verdict " + v["id"])
    need(v["seeds"] == r["seeds"] and [s["seed"] for s in v["per_seed"]] == r["seeds"], "verdict %s: seeds" % v["id"])
    need(v["statistic"] and v["claim"] and v["rule"], "verdict %s: statistic" % v["id"])
    e = v["effect"]
    need(isinstance(e["estimate"], float) and e["ci"][0] <= e["estimate"] <= e["ci"][1], "verdict %s: effect %r" % (v["id"], e))
need(len(r["checks"]) == 3 and all(c["pattern"] == 12 for c in r["checks"]), "bandit checks")
# The built-in tuning record: tuned arms next to the vanilla ones, and verdicts of both configurations.
need(r["tuning"]["source"] == "built-in bench/tuned/quick.json" and r["tuning"]["chosen"], "tuning: %r" % r["tuning"])
tuned = [x for x in r["runs"] if x["params"].get("config") == "tuned"]
need(tuned and {x["suite"] for x in tuned} == {"rq1", "rq6"}, "tuned arms in rq1 and rq6")
confs = {v["id"]: v["configuration"] for v in r["verdicts"]}
need(confs.get("1a") == "vanilla" and confs.get("1a-tuned") == "tuned", "vanilla and tuned verdicts of 1a")
need(all(c == "tuned" for i, c in confs.items() if i.endswith("-tuned")), "tuned verdict ids")
need(all(u["missing"] for u in r["untested"]), "untested clauses name their missing arm")
need(len(r["suites"]["overopt"]["fits"]) >= 2, "over-optimization fits")
for row in r["suites"]["rq2"]["table"]:  # scores aligned with the gold gaps of their pairs
    if row["pairs"] >= 3:
        need(row["ece"] is not None and row["spearman_gold_gap"] is not None, "rq2 row %s/%s" % (row["scorer"], row["set"]))
need(all("ood_pass_at_1" in row for row in r["suites"]["rq5"]["table"]), "rq5 out-of-distribution pass@1")
pak = r["suites"]["rq5"]["pass_at_k"]
need({(x["method"], x["k"]) for x in pak} == {(m, k) for m in ["base", "dpo", "dpo+nll", "rloo", "grpo", "raft"]
                                              for k in [1, 2, 4, 8, 16, 32, 64]}, "rq5 pass@k rows")
for m in {x["method"] for x in pak}:  # pass@k never falls as k grows
    ps = [x["pass"] for x in sorted((x for x in pak if x["method"] == m), key=lambda x: x["k"])]
    need(all(a <= b + 1e-12 for a, b in zip(ps, ps[1:])) and all(x["ci"][0] <= x["pass"] <= x["ci"][1] for x in pak),
         "rq5 pass@k of " + m)
need([x["round"] for x in r["suites"]["rq5"]["raft_rounds"]] == [1, 2], "rq5 RAFT rounds")
cad = r["suites"]["rq6"]["cadence"]
need([x["method"] for x in cad] == ["online-dpo", "semi-online-dpo", "grpo"] and cad[0]["resample_every"] == 1
     and cad[1]["resample_every"] > 1 and all(abs(x["labels"] / cad[0]["labels"] - 1) < 0.05 for x in cad),
     "rq6 cadence table (online DPO's labels, up to whole rounds): %r" % cad)
print("schema ok: %d runs, %d annotators" % (len(r["runs"]), len(r["annotators"])))
PY

# The bench's own report as headless Chromium draws it (skipped where chromium is missing).
render="$(dirname "$0")/../testbed/report_render.sh"
set +e
"$render" none "$tmp/a/report.html" 20 24000 > "$tmp/render.log" 2>&1; code=$?
set -e
[[ $code -eq 0 || $code -eq 77 ]] || fail "report rendering: $(tail -15 "$tmp/render.log")"
grep -E "plots|OK|SKIP" "$tmp/render.log" | head -3

# Resume: a second call finds every stage cached and writes the same results.
"$RLHF" bench --profile mini --out "$tmp/a" > "$tmp/a2.log" 2>&1 || fail "rerun: $(tail -5 "$tmp/a2.log")"
! grep -q "^  done " "$tmp/a2.log" || fail "rerun trained again: $(grep '^  done ' "$tmp/a2.log" | head -3)"

# An interrupted bench resumes where it stopped, and a seed gives the same results whichever
# seeds run beside it: seed 2 alone matches seed 2 of the two-seed bench.
set +e
timeout -s KILL 6 "$RLHF" bench --profile mini --seeds 2 --out "$tmp/b" > "$tmp/b1.log" 2>&1
set -e
"$RLHF" bench --profile mini --seeds 2 --out "$tmp/b" > "$tmp/b2.log" 2>&1 || fail "resume after kill: $(tail -20 "$tmp/b2.log")"
python3 - "$tmp/a/results-full.json" "$tmp/b/results-full.json" <<'PY'
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
x, y = [r for r in a["runs"] if r["seed"] == 2], [r for r in b["runs"] if r["seed"] == 2]
if not x or x != y:
    for p, q in zip(x, y):
        if p != q:
            print("FAIL: first differing run", p["id"]); break
    print("FAIL: seed 2 differs between the two-seed bench and seed 2 alone"); sys.exit(1)
for name, suite in b["suites"].items():
    if "per_seed" in suite and suite["per_seed"][0] != a["suites"][name]["per_seed"][1]:
        print("FAIL: suite %s: seed 2's tables differ" % name); sys.exit(1)
print("seed 2 alone, same results as beside seed 1 (%d runs)" % len(y))
PY

[[ $("$RLHF" bench --profile quick --out "$tmp/a" 2>&1) == *"holds stages of another bench"* ]] || fail "a profile change reused the stages"

# The tuning search: every family's grid on validation prompts, one choice per family by the rule.
"$RLHF" bench --profile mini --tune --out "$tmp/t" > "$tmp/t.log" 2>&1 || fail "tune: $(tail -20 "$tmp/t.log")"
python3 - "$tmp/t/tuned.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
assert t["schema"] == "rlhf-bench-tuning/1" and t["split"]["name"] == "val", t["split"]
fams = {f["family"]: f for f in t["families"]}
assert set(fams) == {"dpo", "ipo", "kto", "rm+ppo", "rm+rloo", "rm+grpo", "online-dpo"}, set(fams)
for name, f in fams.items():
    assert len(f["candidates"]) == 9, name  # the same budget for every family
    ok = [c for c in f["candidates"] if c["passed"]]
    if ok:
        best = max(c["val_gold"] for c in ok)
        assert f["chosen"]["val_gold"] == best, name
    assert all(c["passed"] or c["rejected"] for c in f["candidates"]), name
print("tuning:", {n: (f["chosen"] or {}).get("lr") for n, f in fams.items()})
PY
ls "$tmp/t/stages/runs/tune/valence" > /dev/null || fail "no tuning runs"
[[ ! -e "$tmp/t/stages/runs/rq1" ]] || fail "--tune ran the suites"
echo '{"schema": "rlhf-bench-tuning/1", "profile": "quick", "families": []}' > "$tmp/quick-tuned.json"
set +e
out=$("$RLHF" bench --profile mini --tuned "$tmp/quick-tuned.json" --out "$tmp/t" 2>&1); code=$?
set -e
[[ $code -eq 2 && $out == *"\"profile\" is 'quick'"* ]] || fail "a record of another profile: exit $code ($out)"

# Bad options: exit 2 with the reason.
for bad in "--profile huge" "--suites rq1,rq9" "--seeds 1,x" "--jobs -1"; do
  set +e
  out=$("$RLHF" bench $bad --out "$tmp/bad" 2>&1); code=$?
  set -e
  [[ $code -eq 2 ]] || fail "bench $bad: exit $code ($out)"
  [[ $out == *error:* ]] || fail "bench $bad: no error message"
done
echo "bench: passed"
