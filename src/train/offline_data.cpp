#include "train/offline_data.h"

#include <zlib.h>

#include <algorithm>
#include <numeric>
#include <ostream>

#include "model/config.h"
#include "tensor/error.h"

namespace rlhf {

namespace {

// Encodes one example and truncates it into the next group; false when truncation dropped it.
struct GroupAdder {
  const TextEncoder& enc;
  const ExampleEncodeOptions encode;  // with the truncation's token budget
  const TruncateOptions& truncate;
  OfflineData& out;
  int64_t group = 0;

  void add(const TokenizedExample& ex) {
    if (truncate_example(ex, group, truncate, out.data.seqs, out.collate)) ++group;
  }
  void add(const Text& prompt, const std::vector<const Text*>& completions, int64_t line) {
    add(encode_example(enc, prompt, completions, encode, &out.encode, line));
  }
  // Whether the last add() kept a group whose per-group label is not yet recorded in `labels`.
  template <class T>
  bool kept_new_group(const std::vector<T>& labels) const {
    return static_cast<int64_t>(labels.size()) < group;
  }
};

void add_sft(GroupAdder& g, const std::filesystem::path& path, const OfflineDataOptions& opt) {
  for (const SftRecord& r : read_sft(path, opt.read, &g.out.read)) {
    if (r.prompt) {
      g.add(*r.prompt, {&r.completion}, r.line);
      continue;
    }
    // "text" or "messages": every token after the first is trained on.
    const size_t whole_budget = g.encode.completion_tokens > 0 ? g.encode.completion_tokens + 1 : 0;
    TokenizedExample ex;
    ex.line = r.line;
    std::vector<int32_t> ids;
    if (r.completion.is_chat) {
      if (!g.enc.render) throw InputError(path.string() + ": conversational data needs a chat template");
      nlohmann::json msgs = nlohmann::json::array();
      for (const auto& m : r.completion.messages) msgs.push_back({{"role", m.role}, {"content", m.content}});
      ids = g.enc.encode(g.enc.render(msgs, false), false, whole_budget);
    } else {
      ids = g.enc.encode(r.completion.text, true, whole_budget);
    }
    if (g.enc.eos_id && completion_gets_eos(g.encode.eos, r.completion.is_chat) &&
        (ids.empty() || ids.back() != *g.enc.eos_id))
      ids.push_back(*g.enc.eos_id);
    ex.completions.push_back(std::move(ids));
    g.add(ex);
  }
}

void add_pairs(GroupAdder& g, const std::filesystem::path& path, const OfflineDataOptions& opt) {
  for (const PreferenceRecord& r : read_preferences(path, opt.read, &g.out.read)) {
    g.add(r.prompt, {&r.chosen, &r.rejected}, r.line);
    if (g.kept_new_group(g.out.data.group_margin)) g.out.data.group_margin.push_back(r.margin.value_or(0.0));
  }
}

void add_unpaired(GroupAdder& g, const std::filesystem::path& path, const OfflineDataOptions& opt) {
  const std::vector<UnpairedRecord> rows = read_unpaired(path, opt.read, &g.out.read);
  const size_t chunk = static_cast<size_t>(std::max<int64_t>(1, opt.kto_chunk));
  for (size_t i = 0; i < rows.size(); ++i) {
    const size_t start = i / chunk * chunk, end = std::min(rows.size(), start + chunk);
    const UnpairedRecord& other = rows[i == start ? end - 1 : i - 1];
    std::vector<const Text*> completions = {&rows[i].completion};
    if (opt.kto_mismatched) completions.push_back(&other.completion);
    g.add(rows[i].prompt, completions, rows[i].line);
    if (g.kept_new_group(g.out.data.group_desirable)) g.out.data.group_desirable.push_back(rows[i].label);
  }
}

void add_ranked(GroupAdder& g, const std::filesystem::path& path, const OfflineDataOptions& opt) {
  for (const RankedRecord& r : read_ranked(path, opt.read, &g.out.read)) {
    std::vector<int64_t> order = r.ranking;
    std::vector<double> values(r.completions.size());
    if (order.empty()) {  // ranked by score, ties kept as equal values in file order
      order.resize(r.completions.size());
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t c) { return r.scores[a] > r.scores[c]; });
      for (size_t k = 0; k < order.size(); ++k) values[k] = r.scores[order[k]];
    } else {
      for (size_t k = 0; k < order.size(); ++k) values[k] = -static_cast<double>(k);
    }
    std::vector<const Text*> completions;
    for (int64_t i : order) completions.push_back(&r.completions[i]);
    g.add(r.prompt, completions, r.line);
    if (g.kept_new_group(g.out.data.group_rank_values)) {
      g.out.ties += std::adjacent_find(values.begin(), values.end()) != values.end();
      g.out.data.group_rank_values.push_back(std::move(values));
    }
  }
}

}  // namespace

const char* offline_group_noun(OfflineDataKind kind) {
  switch (kind) {
    case OfflineDataKind::pairs: return "pairs";
    case OfflineDataKind::ranked: return "rankings";
    case OfflineDataKind::documents: return "rows";
    default: return "examples";
  }
}

OfflineData build_offline_data(OfflineDataKind kind, const std::filesystem::path& path, const TextEncoder& enc,
                               const OfflineDataOptions& opt) {
  OfflineData out;
  GroupAdder g{enc, with_truncation_budget(opt.encode, opt.truncate), opt.truncate, out, 0};
  switch (kind) {
    case OfflineDataKind::sft: add_sft(g, path, opt); break;
    case OfflineDataKind::pairs: add_pairs(g, path, opt); break;
    case OfflineDataKind::unpaired: add_unpaired(g, path, opt); break;
    case OfflineDataKind::ranked: add_ranked(g, path, opt); break;
    case OfflineDataKind::documents: throw LogicError("token documents are built by document_rows_data");
  }
  if (out.data.seqs.empty()) throw InputError(path.string() + ": no usable rows after reading and truncation");
  return out;
}

OfflineData document_rows_data(const std::vector<TokenDocument>& docs, int64_t seq_len, int64_t min_rows) {
  OfflineData out;
  out.data.rows = pack_documents(docs, seq_len);
  out.read.rows = out.read.kept = static_cast<int64_t>(docs.size());
  if (static_cast<int64_t>(out.data.rows.size()) < min_rows)
    throw InputError("training data packs into " + std::to_string(out.data.rows.size()) + " rows of " +
                     std::to_string(seq_len) + " tokens, fewer than the batch size " + std::to_string(min_rows));
  return out;
}

SequenceLimit model_sequence_limit(const std::vector<std::filesystem::path>& model_dirs) {
  SequenceLimit limit;
  for (const auto& dir : model_dirs) {
    if (dir.empty()) continue;
    const std::filesystem::path config = dir / "config.json";
    const int64_t tokens = ModelConfig::load(config).max_sequence_length();
    if (tokens < limit.tokens) limit = {tokens, config.string()};
  }
  return limit;
}

void cap_sequence_length(TruncateOptions& truncate, PackOptions& pack, const SequenceLimit& limit, std::ostream& log) {
  const bool truncate_over = truncate.max_length == 0 || truncate.max_length > limit.tokens;
  if (!truncate_over && pack.seq_len <= limit.tokens) return;
  log << "note: sequences are capped at " << limit.tokens << " tokens, the position table of " << limit.source
      << " (max_position_embeddings; --max-length asked for "
      << (truncate.max_length ? std::to_string(std::max(truncate.max_length, pack.seq_len)) : "no limit") << ")\n";
  if (truncate_over) truncate.max_length = limit.tokens;
  pack.seq_len = std::min(pack.seq_len, limit.tokens);
}

uint32_t offline_data_fingerprint(const OfflineDataset& data) {
  uLong crc = 0;
  for (const Sequence& s : data.seqs) {
    crc = crc32_z(crc, reinterpret_cast<const Bytef*>(s.tokens.data()), s.tokens.size() * sizeof(int32_t));
    crc = crc32_z(crc, reinterpret_cast<const Bytef*>(&s.prompt_len), sizeof(s.prompt_len));
  }
  for (const PackedRow& r : data.rows) {  // positions mark where each document starts
    crc = crc32_z(crc, reinterpret_cast<const Bytef*>(r.tokens.data()), r.tokens.size() * sizeof(int32_t));
    crc = crc32_z(crc, reinterpret_cast<const Bytef*>(r.positions.data()), r.positions.size() * sizeof(int32_t));
  }
  return static_cast<uint32_t>(crc);
}

}  // namespace rlhf
