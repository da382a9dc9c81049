// The BPE model of tokenizer.json (models/bpe in Hugging Face `tokenizers`), on ids.
//
// A word becomes one symbol per character (or per byte for byte-level input); characters missing
// from the vocabulary become "<0xNN>" byte tokens (byte_fallback, only when every byte has one)
// or the unknown token (fused when fuse_unk). Then the pair of adjacent symbols with the lowest
// merge rank is merged, the leftmost first on ties, until no adjacent pair has a merge. Short
// words use a rank array scanned per merge; long ones a binary heap over a linked list of
// symbols, O(n log n) — both pick the same pair each step, so they agree exactly.
#include <algorithm>
#include <climits>

#include "tensor/error.h"
#include "text/tokenizer_internal.h"

namespace rlhf::tok {

// ---------------------------------------------------------------------------------------------
// GPT-2 byte <-> character mapping: printable Latin-1 bytes map to themselves, the other 68 to
// U+0100 upwards in byte order.

const std::array<char32_t, 256>& byte_to_char() {
  static const std::array<char32_t, 256> table = [] {
    std::array<char32_t, 256> t{};
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      t[b] = printable ? static_cast<char32_t>(b) : next++;
    }
    return t;
  }();
  return table;
}

int byte_from_char(char32_t c) {
  static const std::array<int16_t, 324> table = [] {
    std::array<int16_t, 324> t;
    t.fill(-1);
    const auto& fwd = byte_to_char();
    for (int b = 0; b < 256; ++b) t[fwd[b]] = static_cast<int16_t>(b);
    return t;
  }();
  return c < table.size() ? table[c] : -1;
}

// ---------------------------------------------------------------------------------------------
// MergeTable

void MergeTable::reserve(size_t n) {
  size_t cap = 16;
  while (cap < 2 * n + 2) cap <<= 1;
  std::vector<Entry> old = std::move(slots_);
  slots_.assign(cap, Entry{kEmpty, 0, 0});
  mask_ = cap - 1;
  size_ = 0;
  for (const Entry& e : old)
    if (e.key != kEmpty) insert(static_cast<int32_t>(e.key >> 32), static_cast<int32_t>(e.key & 0xFFFFFFFF), e.rank, e.new_id);
}

void MergeTable::insert(int32_t a, int32_t b, int32_t rank, int32_t new_id) {
  if (slots_.empty() || 2 * (size_ + 1) > slots_.size()) reserve(std::max<size_t>(size_ + 1, slots_.size()));
  const uint64_t key = pack(a, b);
  size_t i = mix(key) & mask_;
  for (;;) {
    Entry& e = slots_[i];
    if (e.key == key) {  // a repeated merge: the later rank wins, as in tokenizers' HashMap
      e.rank = rank;
      e.new_id = new_id;
      return;
    }
    if (e.key == kEmpty) {
      e = Entry{key, rank, new_id};
      ++size_;
      return;
    }
    i = (i + 1) & mask_;
  }
}

// ---------------------------------------------------------------------------------------------
// WordCache

bool WordCache::lookup(std::string_view word, uint64_t h, std::vector<int32_t>& out) const {
  Shard& sh = shards_[h % kShards];
  std::lock_guard<std::mutex> lock(sh.mu);
  if (sh.slots.empty()) return false;
  size_t i = (h >> 8) & (kSlotsPerShard - 1);
  for (;;) {
    const Slot& s = sh.slots[i];
    if (!s.used) return false;
    if (s.hash == h && s.key_len == word.size() &&
        std::memcmp(sh.keys.data() + s.key_off, word.data(), word.size()) == 0) {
      out.insert(out.end(), sh.values.begin() + s.val_off, sh.values.begin() + s.val_off + s.val_len);
      return true;
    }
    i = (i + 1) & (kSlotsPerShard - 1);
  }
}

void WordCache::insert(std::string_view word, uint64_t h, const int32_t* ids, size_t n) const {
  Shard& sh = shards_[h % kShards];
  std::lock_guard<std::mutex> lock(sh.mu);
  if (sh.slots.empty() || sh.count * 2 >= kSlotsPerShard) {  // full: start over
    sh.slots.assign(kSlotsPerShard, Slot{});
    sh.keys.clear();
    sh.values.clear();
    sh.count = 0;
  }
  size_t i = (h >> 8) & (kSlotsPerShard - 1);
  for (;;) {
    Slot& s = sh.slots[i];
    if (!s.used) break;
    if (s.hash == h && s.key_len == word.size() &&
        std::memcmp(sh.keys.data() + s.key_off, word.data(), word.size()) == 0)
      return;  // another thread got there first
    i = (i + 1) & (kSlotsPerShard - 1);
  }
  Slot& s = sh.slots[i];
  s.used = true;
  s.hash = h;
  s.key_off = static_cast<uint32_t>(sh.keys.size());
  s.key_len = static_cast<uint32_t>(word.size());
  s.val_off = static_cast<uint32_t>(sh.values.size());
  s.val_len = static_cast<uint32_t>(n);
  sh.keys.append(word);
  sh.values.insert(sh.values.end(), ids, ids + n);
  ++sh.count;
}

void WordCache::clear() const {
  for (Shard& sh : shards_) {
    std::lock_guard<std::mutex> lock(sh.mu);
    sh.slots.clear();
    sh.keys.clear();
    sh.values.clear();
    sh.count = 0;
  }
}

// ---------------------------------------------------------------------------------------------
// BpeModel

void BpeModel::finalize() {
  byte_token.fill(-1);
  static const char* hex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    const char name[7] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>', 0};
    if (auto it = vocab.find(std::string_view(name, 6)); it != vocab.end()) byte_token[b] = it->second;
  }
  ascii_token.fill(-1);
  for (int c = 0; c < 128; ++c) {
    const char ch = static_cast<char>(c);
    if (auto it = vocab.find(std::string_view(&ch, 1)); it != vocab.end()) ascii_token[c] = it->second;
  }
  unk_id = -1;
  if (!unk_token.empty())
    if (auto it = vocab.find(unk_token); it != vocab.end()) unk_id = it->second;

  byte_char_token.fill(-1);
  raw_vocab.clear();
  byte_fast = false;
  if (byte_level_input) {
    bool all = true;
    const auto& fwd = byte_to_char();
    for (int b = 0; b < 256; ++b) {
      std::string ch;
      utf8_append(ch, fwd[b]);
      if (auto it = vocab.find(ch); it != vocab.end()) byte_char_token[b] = it->second;
      else all = false;
    }
    byte_fast = all && prefix.empty() && suffix.empty();
    if (ignore_merges) {
      for (const auto& [token, id] : vocab) {
        std::string raw;
        bool ok = true;
        for (size_t i = 0; i < token.size() && ok;) {
          const int b = byte_from_char(utf8_next(token, i));
          if (b < 0) ok = false;
          else raw += static_cast<char>(b);
        }
        if (ok) raw_vocab.emplace(std::move(raw), id);
      }
    }
  }
  cache.clear();
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges) {
    const StringIdMap& m = byte_level_input ? raw_vocab : vocab;
    if (auto it = m.find(word); it != m.end()) {
      out.push_back(it->second);
      return;
    }
  }
  const bool cacheable = word.size() < WordCache::kMaxWordBytes;
  uint64_t h = 0;
  if (cacheable) {
    h = hash_bytes(word.data(), word.size());
    if (cache.lookup(word, h, out)) return;
  }
  const size_t start = out.size();
  merge_word(word, out);
  if (cacheable) cache.insert(word, h, out.data() + start, out.size() - start);
}

void BpeModel::merge_word(std::string_view word, std::vector<int32_t>& out) const {
  if (byte_level_input) {
    if (byte_fast) {
      thread_local std::vector<int32_t> ids;
      ids.clear();
      for (unsigned char b : word) ids.push_back(byte_char_token[b]);
      merge_ids(ids);
      out.insert(out.end(), ids.begin(), ids.end());
      return;
    }
    std::string mapped;
    mapped.reserve(word.size() * 2);
    const auto& fwd = byte_to_char();
    for (unsigned char b : word) utf8_append(mapped, fwd[b]);
    merge_word_chars(mapped, out);
    return;
  }
  merge_word_chars(word, out);
}

// BPE::merge_word of tokenizers: one symbol per character, with the subword prefix on all but the
// first, the word suffix on the last, byte fallback and unk handling in its exact order.
void BpeModel::merge_word_chars(std::string_view word, std::vector<int32_t>& out) const {
  thread_local std::vector<int32_t> ids;
  thread_local std::string key;
  ids.clear();
  bool pending_unk = false;
  size_t i = 0;
  while (i < word.size()) {
    const size_t b = i;
    i += utf8_len(static_cast<unsigned char>(word[i]));
    if (i > word.size()) i = word.size();
    const bool first = b == 0, last = i == word.size();
    const bool affixed = (!first && !prefix.empty()) || (last && !suffix.empty());
    const unsigned char c0 = static_cast<unsigned char>(word[b]);
    if (c0 < 0x80 && !affixed && ascii_token[c0] >= 0) {  // the common case, without hashing
      if (pending_unk) {
        ids.push_back(unk_id);
        pending_unk = false;
      }
      ids.push_back(ascii_token[c0]);
      continue;
    }
    std::string_view piece = word.substr(b, i - b);
    if (affixed) {
      key.clear();
      if (!first) key += prefix;
      key += piece;
      if (last) key += suffix;
      piece = key;
    }
    if (auto it = vocab.find(piece); it != vocab.end()) {
      if (pending_unk) {
        ids.push_back(unk_id);
        pending_unk = false;
      }
      ids.push_back(it->second);
      continue;
    }
    if (byte_fallback) {
      bool all = true;
      for (unsigned char c : piece) all = all && byte_token[c] >= 0;
      if (all) {  // tokenizers pushes these before a pending unk (it flushes unk only on a hit)
        for (unsigned char c : piece) ids.push_back(byte_token[c]);
        continue;
      }
    }
    if (unk_id >= 0) {
      if (pending_unk && !fuse_unk) ids.push_back(unk_id);
      pending_unk = true;
    }
  }
  if (pending_unk) ids.push_back(unk_id);
  merge_ids(ids);
  out.insert(out.end(), ids.begin(), ids.end());
}

namespace {

struct HeapItem {
  int32_t rank;
  int32_t pos;
  int32_t new_id;
};
// std heap functions build a max-heap; "greater" puts the lowest (rank, pos) on top.
struct HeapAfter {
  bool operator()(const HeapItem& x, const HeapItem& y) const {
    return x.rank != y.rank ? x.rank > y.rank : x.pos > y.pos;
  }
};

}  // namespace

void BpeModel::merge_ids(std::vector<int32_t>& ids) const {
  const size_t n = ids.size();
  if (n < 2 || merges.size() == 0) return;

  if (n <= 48) {
    // Rank of each adjacent pair; per step find the lowest (leftmost on ties), merge, and look
    // up only the two pairs that changed.
    int32_t rank[48], merged[48];
    size_t m = n;
    for (size_t k = 0; k + 1 < m; ++k) {
      const MergeTable::Entry* e = merges.find(ids[k], ids[k + 1]);
      rank[k] = e ? e->rank : INT32_MAX;
      merged[k] = e ? e->new_id : -1;
    }
    for (;;) {
      size_t best = 0;
      int32_t best_rank = INT32_MAX;
      for (size_t k = 0; k + 1 < m; ++k)
        if (rank[k] < best_rank) {
          best_rank = rank[k];
          best = k;
        }
      if (best_rank == INT32_MAX) break;
      ids[best] = merged[best];
      for (size_t k = best + 1; k + 1 < m; ++k) {
        ids[k] = ids[k + 1];
        rank[k] = rank[k + 1];
        merged[k] = merged[k + 1];
      }
      --m;
      if (best + 1 < m) {
        const MergeTable::Entry* e = merges.find(ids[best], ids[best + 1]);
        rank[best] = e ? e->rank : INT32_MAX;
        merged[best] = e ? e->new_id : -1;
      }
      if (best > 0) {
        const MergeTable::Entry* e = merges.find(ids[best - 1], ids[best]);
        rank[best - 1] = e ? e->rank : INT32_MAX;
        merged[best - 1] = e ? e->new_id : -1;
      }
    }
    ids.resize(m);
    return;
  }

  // Long words: a doubly linked list of symbols and a heap of candidate merges. A heap entry is
  // stale when its left symbol was absorbed or its pair no longer merges into `new_id` (any
  // change makes the pair's text longer, so the merged id differs).
  thread_local std::vector<int32_t> prev, next;
  thread_local std::vector<uint8_t> alive;
  thread_local std::vector<HeapItem> heap;
  prev.resize(n);
  next.resize(n);
  alive.assign(n, 1);
  heap.clear();
  for (size_t k = 0; k < n; ++k) {
    prev[k] = static_cast<int32_t>(k) - 1;
    next[k] = k + 1 < n ? static_cast<int32_t>(k + 1) : -1;
  }
  for (size_t k = 0; k + 1 < n; ++k)
    if (const MergeTable::Entry* e = merges.find(ids[k], ids[k + 1]))
      heap.push_back({e->rank, static_cast<int32_t>(k), e->new_id});
  std::make_heap(heap.begin(), heap.end(), HeapAfter{});
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), HeapAfter{});
    const HeapItem top = heap.back();
    heap.pop_back();
    const int32_t p = top.pos;
    if (!alive[p] || next[p] < 0) continue;
    const int32_t q = next[p];
    const MergeTable::Entry* cur = merges.find(ids[p], ids[q]);
    if (!cur || cur->new_id != top.new_id) continue;
    ids[p] = top.new_id;
    alive[q] = 0;
    next[p] = next[q];
    if (next[q] >= 0) prev[next[q]] = p;
    if (prev[p] >= 0)
      if (const MergeTable::Entry* e = merges.find(ids[prev[p]], ids[p])) {
        heap.push_back({e->rank, prev[p], e->new_id});
        std::push_heap(heap.begin(), heap.end(), HeapAfter{});
      }
    if (next[p] >= 0)
      if (const MergeTable::Entry* e = merges.find(ids[p], ids[next[p]])) {
        heap.push_back({e->rank, p, e->new_id});
        std::push_heap(heap.begin(), heap.end(), HeapAfter{});
      }
  }
  size_t w = 0;
  for (int32_t k = 0; k >= 0; k = next[k]) ids[w++] = ids[k];
  ids.resize(w);
}

}  // namespace rlhf::tok
