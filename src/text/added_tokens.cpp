// Added and special tokens (tokenizer/added_vocabulary.rs of Hugging Face `tokenizers`).
//
// Matching is leftmost-longest over all patterns at once, whatever order the tokens were added
// in (an Aho-Corasick automaton with MatchKind::LeftmostLongest there, a byte trie walked from
// each candidate start here: the first start with any match wins, then its longest pattern).
// Matches do not overlap: after a match, the search resumes at its end — also when the match
// is then discarded (a single_word token inside a word, a special token while special tokens
// are plain text), so a discarded match hides any shorter pattern inside it, as there.
#include <algorithm>

#include "text/tokenizer_internal.h"

namespace rlhf::tok {

int32_t AddedTokenMatcher::child(int32_t node, unsigned char c) const {
  const auto& nx = nodes_[node].next;
  auto it = std::lower_bound(nx.begin(), nx.end(), c,
                             [](const std::pair<unsigned char, int32_t>& e, unsigned char v) { return e.first < v; });
  return it != nx.end() && it->first == c ? it->second : -1;
}

void AddedTokenMatcher::add(std::string_view pattern, int32_t token_index) {
  if (pattern.empty()) return;
  int32_t node = 0;
  for (unsigned char c : pattern) {
    int32_t nx = child(node, c);
    if (nx < 0) {
      nx = static_cast<int32_t>(nodes_.size());
      nodes_.emplace_back();
      auto& v = nodes_[node].next;
      v.insert(std::lower_bound(v.begin(), v.end(), std::make_pair(c, int32_t{-1})), {c, nx});
    }
    node = nx;
  }
  if (nodes_[node].token_index < 0) nodes_[node].token_index = token_index;
  first_[static_cast<unsigned char>(pattern[0])] = true;
}

bool AddedTokenMatcher::find(std::string_view text, size_t from, size_t* start, size_t* end,
                             int32_t* token_index) const {
  if (empty()) return false;
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  for (size_t s = from; s < text.size(); ++s) {
    if (!first_[p[s]]) continue;
    int32_t node = 0, best = -1;
    size_t best_end = 0;
    for (size_t k = s; k < text.size(); ++k) {
      node = child(node, p[k]);
      if (node < 0) break;
      if (nodes_[node].token_index >= 0) {
        best = nodes_[node].token_index;
        best_end = k + 1;
      }
    }
    if (best >= 0) {
      *start = s;
      *end = best_end;
      *token_index = best;
      return true;
    }
  }
  return false;
}

namespace {

// Regex `\s*$` / `^\s*` of tokenizers: where the trailing whitespace of s starts, and how long
// the leading whitespace is.
size_t trailing_space_start(std::string_view s) {
  size_t e = s.size();
  while (e > 0) {
    size_t b = e - 1;
    while (b > 0 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
    size_t i = b;
    if (!unicode::is_whitespace(utf8_next(s, i))) break;
    e = b;
  }
  return e;
}
size_t leading_space_len(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t j = i;
    if (!unicode::is_whitespace(utf8_next(s, j))) break;
    i = j;
  }
  return i;
}

}  // namespace

void split_added_tokens(std::string_view text, const AddedTokenMatcher& m,
                        const std::vector<AddedToken>& tokens, bool parse_special,
                        std::vector<Segment>& out) {
  out.clear();
  size_t start_offset = 0, from = 0;
  size_t ms, me;
  int32_t ti;
  while (m.find(text, from, &ms, &me, &ti)) {
    from = me;
    const AddedToken& t = tokens[ti];
    if (t.special && !parse_special) continue;
    size_t start = ms, stop = me;
    if (start < start_offset) continue;  // inside what an rstrip already took
    if (t.single_word) {
      const bool start_space = start == 0 || !is_word_char(utf8_last(text.substr(0, start)));
      size_t j = stop;
      const bool stop_space = stop == text.size() || !is_word_char(utf8_next(text, j));
      if (!start_space || !stop_space) continue;
    }
    if (t.lstrip) start = std::max(trailing_space_start(text.substr(0, start)), start_offset);
    if (t.rstrip) {
      stop += leading_space_len(text.substr(stop));
      from = std::max(from, stop);
    }
    if (start_offset < start) out.push_back({start_offset, start, -1});
    out.push_back({start, stop, t.id});
    start_offset = stop;
  }
  if (start_offset != text.size()) out.push_back({start_offset, text.size(), -1});
}

}  // namespace rlhf::tok
