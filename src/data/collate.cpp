// Collation: exact prompt/completion token boundaries, TRL's truncation, and group-preserving
// packing into engine batches. See collate.h for the guarantees.
#include "data/collate.h"

#include <algorithm>

#include "data/token_documents.h"
#include "tensor/error.h"

namespace rlhf {

using nlohmann::json;

nlohmann::json EncodeReport::to_json() const {
  return {{"examples", examples}, {"seam_mismatches", seam_mismatches}};
}

nlohmann::json CollateReport::to_json() const {
  return {{"examples", examples},
          {"kept", kept},
          {"dropped_prompt_too_long", dropped_prompt_too_long},
          {"dropped_no_completion", dropped_no_completion},
          {"truncated_prompts", truncated_prompts},
          {"truncated_sequences", truncated_sequences}};
}

TruncationMode parse_truncation_mode(const std::string& s) {
  if (s == "keep_start") return TruncationMode::keep_start;
  if (s == "keep_end") return TruncationMode::keep_end;
  throw InputError("truncation mode must be keep_start or keep_end, got '" + s + "'");
}

SeamPolicy parse_seam_policy(const std::string& s) {
  if (s == "common_prefix") return SeamPolicy::common_prefix;
  if (s == "split") return SeamPolicy::split;
  if (s == "error") return SeamPolicy::error;
  throw InputError("seam policy must be common_prefix, split or error, got '" + s + "'");
}

CompletionEos parse_completion_eos(const std::string& s) {
  if (s == "standard_layout") return CompletionEos::standard_layout;
  if (s == "always") return CompletionEos::always;
  if (s == "never") return CompletionEos::never;
  throw InputError("completion EOS must be standard_layout, always or never, got '" + s + "'");
}

bool completion_gets_eos(CompletionEos policy, bool conversational) {
  return policy == CompletionEos::always || (policy == CompletionEos::standard_layout && !conversational);
}

// ---------------------------------------------------------------------------------------------
// Text -> ids

namespace {

size_t first_difference(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

json messages_json(const std::vector<Message>& ms) {
  json a = json::array();
  for (const auto& m : ms) a.push_back({{"role", m.role}, {"content", m.content}});
  return a;
}

std::string quoted_window(const std::string& s, size_t at) {
  const size_t b = at > 20 ? at - 20 : 0;
  std::string w = s.substr(b, 60);
  // Do not cut a UTF-8 character (dump would replace it).
  while (!w.empty() && (static_cast<unsigned char>(w.back()) & 0xC0) == 0x80) w.pop_back();
  if (!w.empty() && (static_cast<unsigned char>(w.back()) & 0x80)) w.pop_back();
  return json(w).dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

TokenizedExample encode_example(const TextEncoder& enc, const Text& prompt, const std::vector<const Text*>& completions,
                                const ExampleEncodeOptions& opt, EncodeReport* report, int64_t line) {
  RLHF_CHECK(static_cast<bool>(enc.encode), "encode_example: TextEncoder without encode");
  const std::string where = line > 0 ? "line " + std::to_string(line) + ": " : "";
  if (report) ++report->examples;
  TokenizedExample ex;
  ex.line = line;
  const bool eos = enc.eos_id && completion_gets_eos(opt.eos, prompt.is_chat);
  // With budgets every encoding is a prefix (TextEncoder::encode): the prompt's holds at least
  // prompt_tokens ids or all of them, a full sequence's all ids up to completion_tokens past the
  // prompt's. A prompt cut by its budget is dropped by truncation whatever the seam.
  const size_t prompt_budget = static_cast<size_t>(opt.prompt_tokens);
  auto full_budget = [&] {
    return opt.completion_tokens > 0 ? ex.prompt.size() + static_cast<size_t>(opt.completion_tokens) + 1 : 0;
  };
  // The tokens of prompt + completion, and the completion's text alone (for SeamPolicy::split).
  std::vector<std::vector<int32_t>> fulls;
  std::vector<std::string> completion_texts;

  if (!prompt.is_chat) {
    ex.prompt = enc.encode(prompt.text, opt.add_special_tokens, prompt_budget);
    for (const Text* c : completions) {
      if (c->is_chat) throw InputError(where + "the prompt is a string but a completion is a list of messages");
      fulls.push_back(enc.encode(prompt.text + c->text, opt.add_special_tokens, full_budget()));
      completion_texts.push_back(c->text);
    }
  } else {
    if (!enc.render)
      throw InputError(where + "conversational data needs a chat template, and the tokenizer has none "
                               "(give one, or convert the data to the standard layout)");
    if (!prompt.messages.empty() && prompt.messages.back().role == "assistant")
      throw InputError(where + "the prompt ends with an assistant turn; continuing a final message is not supported");
    const json pj = messages_json(prompt.messages);
    const std::string ps = enc.render(pj, /*add_generation_prompt=*/true);
    ex.prompt = enc.encode(ps, false, prompt_budget);
    for (const Text* c : completions) {
      if (!c->is_chat) throw InputError(where + "the prompt is a list of messages but a completion is a string");
      json fj = pj;
      for (const auto& m : c->messages) fj.push_back({{"role", m.role}, {"content", m.content}});
      const std::string fs = enc.render(fj, /*add_generation_prompt=*/false);
      if (opt.seam != SeamPolicy::common_prefix && !fs.starts_with(ps)) {
        size_t k = 0;
        while (k < ps.size() && k < fs.size() && ps[k] == fs[k]) ++k;
        throw InputError(where + "the chat template renders prompt + completion so that it does not start with the "
                                 "rendered prompt (it rewrites earlier turns); first difference at byte " +
                         std::to_string(k) + ": prompt " + quoted_window(ps, k) + " vs full " +
                         quoted_window(fs, k) + "; the common_prefix seam policy trains on the full rendering");
      }
      fulls.push_back(enc.encode(fs, false, full_budget()));
      completion_texts.push_back(fs.size() >= ps.size() ? fs.substr(ps.size()) : std::string());
    }
  }

  // Where the completions start: after the prompt's ids, or (common_prefix) after the longest
  // prefix the prompt shares with every prompt + completion.
  size_t prompt_len = ex.prompt.size();
  for (const auto& full : fulls) prompt_len = std::min(prompt_len, first_difference(full, ex.prompt));
  const bool mismatch = prompt_len < ex.prompt.size();
  if (mismatch && report) ++report->seam_mismatches;
  if (mismatch && opt.seam == SeamPolicy::error)
    throw InputError(where + "the prompt's tokens are not a prefix of the tokens of prompt + completion (they " +
                     "differ at token " + std::to_string(prompt_len) + " of " + std::to_string(ex.prompt.size()) +
                     ": a merge crosses the seam); the common_prefix or split seam policy handles it");
  if (opt.seam != SeamPolicy::common_prefix) prompt_len = ex.prompt.size();
  for (size_t i = 0; i < fulls.size(); ++i) {
    std::vector<int32_t> c;
    if (first_difference(fulls[i], ex.prompt) >= prompt_len)
      c.assign(fulls[i].begin() + prompt_len, fulls[i].end());
    else  // SeamPolicy::split, and this completion's seam has a merge
      c = enc.encode(completion_texts[i], false, opt.completion_tokens > 0 ? opt.completion_tokens + 1 : 0);
    if (eos && (c.empty() || c.back() != *enc.eos_id)) c.push_back(*enc.eos_id);
    ex.completions.push_back(std::move(c));
  }
  ex.prompt.resize(prompt_len);
  return ex;
}

// ---------------------------------------------------------------------------------------------
// Truncation

ExampleEncodeOptions with_truncation_budget(ExampleEncodeOptions opt, const TruncateOptions& t) {
  const bool keep_start = t.mode == TruncationMode::keep_start;
  int64_t completion = t.max_completion_length;
  if (keep_start && t.max_length > 0) completion = completion > 0 ? std::min(completion, t.max_length) : t.max_length;
  opt.completion_tokens = completion;
  opt.prompt_tokens = keep_start && t.max_prompt_length == 0 ? t.max_length : 0;
  return opt;
}

bool truncate_example(const TokenizedExample& ex, int64_t group, const TruncateOptions& opt,
                      std::vector<Sequence>& out, CollateReport& report) {
  if (opt.max_length != 0 && opt.max_length < 2)
    throw InputError("max_length must be at least 2 (or 0 for no limit), got " + std::to_string(opt.max_length));
  if (opt.max_prompt_length < 0 || opt.max_completion_length < 0)
    throw InputError("max_prompt_length and max_completion_length must be >= 0");
  ++report.examples;
  const int64_t P = static_cast<int64_t>(ex.prompt.size());
  int64_t prompt_from = 0;  // first prompt token kept
  if (opt.max_prompt_length > 0 && P > opt.max_prompt_length) prompt_from = P - opt.max_prompt_length;
  const int64_t plen = P - prompt_from;
  if (opt.mode == TruncationMode::keep_start && opt.max_length > 0 && plen >= opt.max_length) {
    ++report.dropped_prompt_too_long;
    return false;
  }
  bool prompt_cut = prompt_from > 0;
  int64_t cut_sequences = 0;
  std::vector<Sequence> seqs;
  for (size_t i = 0; i < ex.completions.size(); ++i) {
    const auto& c = ex.completions[i];
    int64_t clen = static_cast<int64_t>(c.size());
    bool cut = false;
    if (opt.max_completion_length > 0 && clen > opt.max_completion_length) {
      clen = opt.max_completion_length;
      cut = true;
    }
    Sequence s;
    s.group = group;
    s.index = static_cast<int32_t>(i);
    s.tokens.reserve(plen + clen);
    s.tokens.insert(s.tokens.end(), ex.prompt.begin() + prompt_from, ex.prompt.end());
    s.tokens.insert(s.tokens.end(), c.begin(), c.begin() + clen);
    s.prompt_len = plen;
    if (opt.max_length > 0 && s.size() > opt.max_length) {
      cut = true;
      if (opt.mode == TruncationMode::keep_start) {
        s.tokens.resize(opt.max_length);  // plen < max_length: at least one completion token stays
      } else {
        const int64_t drop = s.size() - opt.max_length;
        s.tokens.erase(s.tokens.begin(), s.tokens.begin() + drop);
        if (drop > 0 && s.prompt_len > 0) prompt_cut = true;
        s.prompt_len = std::max<int64_t>(0, s.prompt_len - drop);
      }
    }
    if (s.n_scored() < 1) {
      ++report.dropped_no_completion;
      return false;
    }
    cut_sequences += cut;
    seqs.push_back(std::move(s));
  }
  if (seqs.empty()) {
    ++report.dropped_no_completion;
    return false;
  }
  report.truncated_prompts += prompt_cut;
  report.truncated_sequences += cut_sequences;
  ++report.kept;
  for (auto& s : seqs) out.push_back(std::move(s));
  return true;
}

// ---------------------------------------------------------------------------------------------
// Packing

namespace {

struct Placement {
  size_t seq;
  int64_t row, start;
};

CollatedBatch build_batch(const std::vector<Sequence>& seqs, const std::vector<Placement>& placed, int64_t n_rows,
                          int64_t T, const PackOptions& opt) {
  std::vector<PackedRow> rows(n_rows);
  CollatedBatch cb;
  // Placements are appended to their rows in order, so each row's segments follow placement order.
  for (const auto& p : placed) {
    const Sequence& s = seqs[p.seq];
    RLHF_CHECK(rows[p.row].size() == p.start, "pack_sequences: placement out of order");
    rows[p.row].append(s.tokens.data(), s.size(), s.prompt_len);
    cb.real_tokens += s.size();
  }
  std::vector<const PackedRow*> ptrs;
  for (auto& r : rows) {
    r.pad_to(T, opt.pad_id);
    ptrs.push_back(&r);
  }
  cb.batch = batch_from_rows(ptrs, T);
  // Scored indices are row-major: count, per row, the scored tokens before each segment.
  std::vector<std::vector<size_t>> by_row(n_rows);
  for (size_t k = 0; k < placed.size(); ++k) by_row[placed[k].row].push_back(k);
  std::vector<int64_t> scored_begin(placed.size());
  int64_t running = 0;
  for (int64_t r = 0; r < n_rows; ++r)
    for (size_t k : by_row[r]) {
      scored_begin[k] = running;
      running += seqs[placed[k].seq].n_scored();
    }
  RLHF_CHECK(running == cb.batch.n_scored(), "pack_sequences: scored count mismatch");
  // Spans in input order (placements are already in input order).
  for (size_t k = 0; k < placed.size(); ++k) {
    const Sequence& s = seqs[placed[k].seq];
    SequenceSpan sp;
    sp.group = s.group;
    sp.index = s.index;
    sp.row = placed[k].row;
    sp.start = placed[k].start;
    sp.length = s.size();
    sp.prompt_len = s.prompt_len;
    sp.scored_begin = scored_begin[k];
    sp.scored_end = scored_begin[k] + s.n_scored();
    if (opt.head_at_last) {
      sp.head = cb.batch.n_head();
      cb.batch.head_at.push_back(sp.row * T + sp.start + sp.length - 1);
    }
    cb.spans.push_back(sp);
  }
  return cb;
}

}  // namespace

std::vector<CollatedBatch> pack_sequences(const std::vector<Sequence>& seqs, const PackOptions& opt) {
  if (opt.seq_len < 2) throw InputError("pack: seq_len must be at least 2, got " + std::to_string(opt.seq_len));
  if (opt.max_rows < 1) throw InputError("pack: max_rows must be at least 1, got " + std::to_string(opt.max_rows));
  if (opt.pad_multiple < 1) throw InputError("pack: pad_multiple must be at least 1");
  for (const auto& s : seqs) {
    if (s.size() > opt.seq_len)
      throw InputError("pack: a sequence of " + std::to_string(s.size()) + " tokens (group " + std::to_string(s.group) +
                       ") is longer than the row length " + std::to_string(opt.seq_len) +
                       "; truncate with max_length <= seq_len");
    if (s.n_scored() < 1)
      throw InputError("pack: a sequence without scored completion tokens (group " + std::to_string(s.group) +
                       "); truncate_example drops these");
  }
  std::vector<CollatedBatch> out;
  std::vector<Placement> placed;
  std::vector<int64_t> used;  // tokens per open row (packing) / longest row (no packing)
  int64_t longest = 0;

  auto flush = [&] {
    if (placed.empty()) return;
    int64_t T = opt.seq_len;
    if (!opt.packing) T = std::min(opt.seq_len, (longest + opt.pad_multiple - 1) / opt.pad_multiple * opt.pad_multiple);
    if (!opt.packing) T = std::max<int64_t>(T, longest);
    out.push_back(build_batch(seqs, placed, static_cast<int64_t>(used.size()), T, opt));
    placed.clear();
    used.clear();
    longest = 0;
  };

  // Tries to place seqs[b, e) into the open batch; commits and returns true when all fit.
  auto try_place = [&](size_t b, size_t e) {
    std::vector<int64_t> u = used;
    std::vector<Placement> add;
    for (size_t i = b; i < e; ++i) {
      const int64_t len = seqs[i].size();
      int64_t row = -1;
      if (opt.packing)
        for (size_t r = 0; r < u.size(); ++r)
          if (u[r] + len <= opt.seq_len) {
            row = static_cast<int64_t>(r);
            break;
          }
      if (row < 0) {
        if (static_cast<int64_t>(u.size()) >= opt.max_rows) return false;
        row = static_cast<int64_t>(u.size());
        u.push_back(0);
      }
      add.push_back({i, row, u[row]});
      u[row] += len;
    }
    used = std::move(u);
    for (const auto& p : add) {
      longest = std::max(longest, seqs[p.seq].size());
      placed.push_back(p);
    }
    return true;
  };

  size_t b = 0;
  while (b < seqs.size()) {
    size_t e = b + 1;
    while (e < seqs.size() && seqs[e].group == seqs[b].group) ++e;
    if (!try_place(b, e)) {
      flush();
      if (!try_place(b, e))
        throw InputError("pack: group " + std::to_string(seqs[b].group) + " (" + std::to_string(e - b) +
                         " sequences) does not fit into one batch of " + std::to_string(opt.max_rows) + " rows of " +
                         std::to_string(opt.seq_len) + " tokens");
    }
    b = e;
  }
  flush();
  return out;
}

CollatedBatch collate_rows(const std::vector<const PackedRow*>& rows, const std::vector<int64_t>& groups, int64_t T) {
  RLHF_CHECK(rows.size() == groups.size(), "collate_rows: one group per row");
  CollatedBatch cb;
  cb.batch = batch_from_rows(rows, T);
  int64_t scored = 0;
  for (size_t r = 0; r < rows.size(); ++r) {
    if (rows[r]->size() != T)
      throw InputError("pack: a row of " + std::to_string(rows[r]->size()) + " tokens where " + std::to_string(T) +
                       " were expected");
    SequenceSpan sp;
    sp.group = groups[r];
    sp.row = static_cast<int64_t>(r);
    sp.length = T;
    sp.scored_begin = scored;
    for (uint8_t s : rows[r]->scored) scored += s;
    sp.scored_end = scored;
    cb.spans.push_back(sp);
    cb.real_tokens += T - rows[r]->padding;
  }
  return cb;
}

}  // namespace rlhf
