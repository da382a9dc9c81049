// rlhf data <tool>: dataset tools (stats, clean, decontaminate, binarize, noise, pairs).
//
// Each tool streams its input, writes JSONL in TRL's preference layout (compressed when --out
// ends in .gz or .zst), writes a JSON summary (--summary FILE; default <out>.summary.json, or
// stdout for stats) and prints a short human summary (to stderr when the JSON goes to stdout).
#include <algorithm>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>

#include "cli/commands.h"
#include "cli/options.h"
#include "data/collate_text.h"
#include "data/tools.h"
#include "model/safetensors.h"
#include "tensor/error.h"

namespace rlhf::cli {

namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

// Options every tool shares: input, summary and how rows are read.
void add_read_options(Options& o, bool has_out) {
  o.add("in", "", "input JSONL (plain, .gz or .zst) (required)");
  if (has_out) o.add("out", "", "output JSONL; .gz / .zst compress (required)");
  o.add("summary", "", has_out ? "JSON summary file (default: <out>.summary.json; - for stdout)"
                               : "JSON summary file (default: - for stdout)")
      .add("columns", "", "column overrides: ours=theirs,... (e.g. prompt=question,chosen=good)")
      .flag("skip-bad-rows", "skip and count bad rows instead of failing on the first")
      .add("max-skipped", "1000", "fail anyway beyond this many skipped rows")
      .flag("hh-as-messages", "turn hh-rlhf transcripts into conversations (TRL's hh-rlhf script)");
}

ReadOptions read_options(const Options& o, const std::string& tool) {
  ReadOptions r;
  r.skip_bad_rows = o.boolean("skip-bad-rows");
  r.max_skipped = o.integer("max-skipped");
  r.hh_as_messages = o.boolean("hh-as-messages");
  const std::string cols = o.str("columns");
  size_t b = 0;
  while (b < cols.size()) {
    size_t e = cols.find(',', b);
    if (e == std::string::npos) e = cols.size();
    const std::string item = cols.substr(b, e - b);
    const size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == item.size())
      throw InputError("rlhf data " + tool + ": --columns expects ours=theirs pairs, got '" + item + "'");
    static const char* known[] = {"prompt", "chosen", "rejected", "completion", "completions", "messages",
                                  "text", "label", "margin", "scores", "ranking", "score_chosen", "score_rejected"};
    const std::string ours = item.substr(0, eq);
    if (std::find(std::begin(known), std::end(known), ours) == std::end(known))
      throw InputError("rlhf data " + tool + ": --columns: unknown field '" + ours +
                       "' (known: prompt, chosen, rejected, completion, completions, messages, text, label, margin, "
                       "scores, ranking, score_chosen, score_rejected)");
    r.columns[ours] = item.substr(eq + 1);
    b = e + 1;
  }
  return r;
}

fs::path required_path(const Options& o, const char* name) {
  o.require({name});
  return o.str(name);
}

// Words by default; tokens of the given tokenizer (no special tokens, conversations as their
// contents joined by newlines, not through the chat template) with --tokenizer.
LengthCounter length_counter(const Options& o) {
  LengthCounter lc;
  if (o.str("tokenizer").empty()) return lc;
  auto tok = std::make_shared<Tokenizer>(Tokenizer::load(o.str("tokenizer")));
  lc.unit = "tokens";
  lc.count = [tok](const std::string& text) { return token_length(*tok, text); };
  return lc;
}

// Writes the JSON summary and the human one.
int finish(const Options& o, ojson summary, const std::string& default_summary) {
  summary["version"] = RLHF_VERSION;
  summary["options"] = o.resolved();
  std::string dest = o.str("summary");
  if (dest.empty()) dest = default_summary;
  const std::string text = summary_text(summary);
  if (dest == "-") {
    std::cout << summary.dump(2) << "\n";
    std::cerr << text;
  } else {
    write_file_atomic(dest, summary.dump(2) + "\n");
    std::cout << text << "summary: " << dest << "\n";
  }
  return 0;
}

std::string summary_for(const fs::path& out) { return out.string() + ".summary.json"; }

int data_stats_cmd(int argc, char** argv) {
  Options o("data stats",
            "Counts, length distributions (min/mean/p50/p90/p99/max and ASCII histograms) of prompt, chosen and\n"
            "rejected, chosen-longer rate, duplicate prompts and pairs, contradicting pairs, score ties, and empty or\n"
            "identical pairs of a preference dataset. Lengths are whitespace-separated words unless --tokenizer.");
  add_read_options(o, false);
  o.add("tokenizer", "", "model directory or tokenizer.json: lengths in tokens as training sees them (chat "
                            "template for conversations, EOS on completions) instead of words")
      .add("bins", "10", "histogram bins");
  if (!o.parse(argc, argv)) return 0;
  StatsOptions so;
  so.read = read_options(o, "stats");
  // With a tokenizer: the token counts training sees (its chat template for conversations).
  std::optional<Tokenizer> tok;
  std::optional<ChatTemplate> tmpl;
  TextEncoder enc;
  if (!o.str("tokenizer").empty()) {
    tok.emplace(Tokenizer::load(o.str("tokenizer")));
    if (!tok->chat_template().empty()) {
      tmpl.emplace(ChatTemplate::parse(tok->chat_template(), o.str("tokenizer") + " chat_template"));
      enc = text_encoder(*tok, *tmpl);
    } else {
      enc = text_encoder(*tok);
    }
    so.encoder = &enc;
  }
  so.hist_bins = static_cast<int>(o.integer("bins"));
  if (so.hist_bins < 1 || so.hist_bins > 200) throw InputError("rlhf data stats: --bins must be in 1..200");
  return finish(o, data_stats(required_path(o, "in"), so), "-");
}

int data_clean_cmd(int argc, char** argv) {
  Options o("data clean",
            "Drops empty, identical and over-long pairs, and exact or near duplicates (normalized text: lowercase,\n"
            "collapsed whitespace, punctuation stripped; or MinHash on word shingles), counting each reason.");
  add_read_options(o, true);
  o.add("tokenizer", "", "model directory or tokenizer.json: --max-length in tokens instead of words")
      .add("max-length", "0", "drop rows whose prompt + longer completion exceeds this (0 = no limit)")
      .add("near", "none", "near-duplicate detection: none | normalized | minhash")
      .add("threshold", "0.8", "minhash: estimated Jaccard similarity at or above which rows are duplicates")
      .add("num-perm", "64", "minhash: number of hash permutations")
      .add("shingle", "5", "minhash: words per shingle")
      .add("dedupe-on", "pair", "pair (prompt + chosen + rejected) | prompt (one row per prompt)")
      .add("seed", "0", "minhash seed")
      .flag("keep-empty", "keep pairs with an empty or whitespace-only completion")
      .flag("keep-identical", "keep pairs whose chosen equals rejected")
      .flag("keep-duplicates", "no exact dedupe")
      .flag("keep-original", "write the input rows unchanged instead of TRL's layout");
  if (!o.parse(argc, argv)) return 0;
  CleanOptions co;
  co.read = read_options(o, "clean");
  co.length = length_counter(o);
  co.max_length = o.integer("max-length");
  co.near = o.str("near");
  co.threshold = o.number("threshold");
  co.num_perm = static_cast<int>(o.integer("num-perm"));
  co.shingle = static_cast<int>(o.integer("shingle"));
  co.dedupe_on = o.str("dedupe-on");
  co.seed = static_cast<uint64_t>(o.integer("seed"));
  co.drop_empty = !o.boolean("keep-empty");
  co.drop_identical = !o.boolean("keep-identical");
  co.dedupe_exact = !o.boolean("keep-duplicates");
  co.keep_original = o.boolean("keep-original");
  const fs::path out = required_path(o, "out");
  return finish(o, data_clean(required_path(o, "in"), out, co), summary_for(out));
}

int data_decontaminate_cmd(int argc, char** argv) {
  Options o("data decontaminate",
            "Removes rows whose prompt shares a word n-gram (default 13, on normalized words) with a benchmark\n"
            "prompt, or equals one after normalization; benchmark prompts shorter than n words must appear whole.\n"
            "Every match is reported with the benchmark line (--matches).");
  add_read_options(o, true);
  o.add("benchmark", "", "benchmark prompts: JSONL (see --field) or plain text, one prompt per line (required)")
      .add("field", "", "JSONL path of the prompt: question, instruction, prompt, turns[*], turns[*].content "
                        "(default: the first of prompt, question, instruction, turns, text)")
      .add("ngram", "13", "words per n-gram")
      .add("min-words", "6", "benchmark prompts with fewer words only match when equal after normalization")
      .add("check", "prompt", "prompt | all (completions too)")
      .add("kind", "preference", "input kind: preference | sft | prompt | ranked | unpaired")
      .add("matches", "", "JSONL report of every match (default: <out>.matches.jsonl)")
      .flag("keep-original", "preference data: write the input rows unchanged instead of TRL's layout");
  if (!o.parse(argc, argv)) return 0;
  DecontaminateOptions d;
  d.read = read_options(o, "decontaminate");
  d.benchmark = required_path(o, "benchmark");
  d.field = o.str("field");
  d.ngram = static_cast<int>(o.integer("ngram"));
  d.min_words = static_cast<int>(o.integer("min-words"));
  d.check = o.str("check");
  d.kind = o.str("kind");
  d.keep_original = o.boolean("keep-original") || d.kind != "preference";
  const fs::path out = required_path(o, "out");
  d.matches = o.str("matches").empty() ? fs::path(out.string() + ".matches.jsonl") : fs::path(o.str("matches"));
  return finish(o, data_decontaminate(required_path(o, "in"), out, d), summary_for(out));
}

int data_binarize_cmd(int argc, char** argv) {
  Options o("data binarize",
            "Turns ranked or scored multi-completion rows (raw UltraFeedback, Nectar, or prompt + completions +\n"
            "scores | ranking) into preference pairs. Ties are never paired and are counted.");
  add_read_options(o, true);
  o.add("strategy", "best-vs-random", "best-vs-random | best-vs-worst | all-pairs")
      .add("min-gap", "0", "minimum score difference between chosen and rejected")
      .add("score-field", "overall_score",
           "UltraFeedback: overall_score | fine-grained_score | mean (of the aspect ratings, N/A excluded); "
           "other rows: the scores column")
      .add("max-pairs-per-prompt", "0", "all-pairs: keep a seeded subset of at most this many (0 = all)")
      .add("seed", "0", "seed for the random choices")
      .flag("conversational", "write prompt/chosen/rejected as message lists");
  if (!o.parse(argc, argv)) return 0;
  BinarizeOptions b;
  b.read = read_options(o, "binarize");
  b.read.score_field = o.str("score-field");
  b.strategy = o.str("strategy");
  b.min_gap = o.number("min-gap");
  b.max_pairs_per_prompt = o.integer("max-pairs-per-prompt");
  b.seed = static_cast<uint64_t>(o.integer("seed"));
  b.conversational = o.boolean("conversational");
  const fs::path out = required_path(o, "out");
  return finish(o, data_binarize(required_path(o, "in"), out, b), summary_for(out));
}

int data_noise_cmd(int argc, char** argv) {
  Options o("data noise",
            "Swaps chosen and rejected on exactly round(fraction * pairs) pairs chosen by --seed, simulating\n"
            "annotator disagreement; reports the flipped count and the implied agreement.");
  add_read_options(o, true);
  o.add("fraction", "0.1", "fraction of pairs to flip, in [0, 1]")
      .add("seed", "0", "seed for the choice of pairs")
      .flag("mark", "add \"label_flipped\": true/false to every row");
  if (!o.parse(argc, argv)) return 0;
  NoiseOptions n;
  n.read = read_options(o, "noise");
  n.fraction = o.number("fraction");
  n.seed = static_cast<uint64_t>(o.integer("seed"));
  n.mark = o.boolean("mark");
  const fs::path out = required_path(o, "out");
  return finish(o, data_noise(required_path(o, "in"), out, n), summary_for(out));
}

int data_pairs_cmd(int argc, char** argv) {
  Options o("data pairs",
            "Builds preference pairs from sampled completions with scalar scores (e.g. verifier rewards): rows\n"
            "{prompt, completion, score|reward} grouped by prompt, or {prompt, completions, scores|rewards}.");
  add_read_options(o, true);
  o.add("strategy", "best-vs-worst", "best-vs-worst | all-pairs | best-vs-random")
      .add("min-gap", "0", "minimum score difference between chosen and rejected")
      .add("score-field", "", "score column of per-sample rows (default: score, then reward)")
      .add("max-pairs-per-prompt", "0", "all-pairs: keep a seeded subset of at most this many (0 = all)")
      .add("seed", "0", "seed for the random choices");
  if (!o.parse(argc, argv)) return 0;
  PairsOptions p;
  p.read = read_options(o, "pairs");
  p.read.score_field = o.str("score-field");
  p.strategy = o.str("strategy");
  p.min_gap = o.number("min-gap");
  p.max_pairs_per_prompt = o.integer("max-pairs-per-prompt");
  p.seed = static_cast<uint64_t>(o.integer("seed"));
  const fs::path out = required_path(o, "out");
  return finish(o, data_pairs(required_path(o, "in"), out, p), summary_for(out));
}

struct Tool {
  const char* name;
  const char* summary;
  int (*run)(int, char**);
};

const Tool kTools[] = {
    {"stats", "length distributions, duplicates, ties, empty or identical pairs", data_stats_cmd},
    {"clean", "drop empty / identical / over-long rows and exact or near duplicates", data_clean_cmd},
    {"decontaminate", "remove rows overlapping benchmark prompts (n-grams), reporting each match", data_decontaminate_cmd},
    {"binarize", "ranked or scored multi-completion rows -> preference pairs", data_binarize_cmd},
    {"noise", "flip a seeded fraction of preference labels", data_noise_cmd},
    {"pairs", "preference pairs from sampled completions with scalar scores", data_pairs_cmd},
};

void print_tools() {
  std::cout << "usage: rlhf data <tool> [options]\n       rlhf data <tool> --help\n\n"
               "Dataset tools; inputs are JSONL (plain, .gz, .zst) in TRL's layouts or the public exports\n"
               "(UltraFeedback, hh-rlhf, SHP, HelpSteer2, Nectar, TL;DR).\n\ntools:\n";
  for (const auto& t : kTools) {
    std::string n = t.name;
    n.resize(15, ' ');
    std::cout << "  " << n << t.summary << "\n";
  }
}

}  // namespace

int cmd_data(int argc, char** argv) {
  if (argc < 1 || !std::strcmp(argv[0], "--help") || !std::strcmp(argv[0], "-h")) {
    print_tools();
    return argc < 1 ? 2 : 0;
  }
  for (const auto& t : kTools)
    if (!std::strcmp(argv[0], t.name)) return t.run(argc - 1, argv + 1);
  throw InputError(std::string("rlhf data: unknown tool '") + argv[0] +
                   "' (tools: stats, clean, decontaminate, binarize, noise, pairs)");
}

}  // namespace rlhf::cli
