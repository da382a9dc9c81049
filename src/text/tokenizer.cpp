// The encode / decode pipeline of tokenizer.h, the DecodeStream, and loading a model directory
// (tokenizer.json + tokenizer_config.json / special_tokens_map.json / chat_template.jinja).
//
// encode(text): invalid UTF-8 bytes -> U+FFFD each; added tokens matched on the raw text; each
// other segment normalized; added tokens matched on the normalized text; pre-tokenizers; the BPE
// or WordLevel model per pre-token; the post-processor's ids around the result when
// add_special_tokens.
// decode(ids): ids outside the vocabulary are dropped (as tokenizers does), special tokens too
// when asked, then the decoder chain; without a decoder the tokens are joined by spaces.
#include <algorithm>
#include <fstream>
#include <sstream>

#include "model/json_strict.h"
#include "tensor/error.h"
#include "text/tokenizer_internal.h"

namespace rlhf {
namespace tok {

// ---------------------------------------------------------------------------------------------
// UTF-8

size_t utf8_valid_len(std::string_view s, size_t i) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  const unsigned c = p[i];
  if (c < 0x80) return 1;
  size_t len;
  unsigned lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) len = 2;
  else if (c == 0xE0) { len = 3; lo = 0xA0; }
  else if (c == 0xED) { len = 3; hi = 0x9F; }
  else if (c >= 0xE1 && c <= 0xEF) len = 3;
  else if (c == 0xF0) { len = 4; lo = 0x90; }
  else if (c >= 0xF1 && c <= 0xF3) len = 4;
  else if (c == 0xF4) { len = 4; hi = 0x8F; }
  else return 0;
  if (i + len > n) return 0;
  if (p[i + 1] < lo || p[i + 1] > hi) return 0;
  for (size_t k = 2; k < len; ++k)
    if (p[i + k] < 0x80 || p[i + k] > 0xBF) return 0;
  return len;
}

namespace {
// Index of the first byte that does not begin a well-formed sequence, or s.size().
size_t first_invalid(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    if (i + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      if ((w & 0x8080808080808080ull) == 0) {
        i += 8;
        continue;
      }
    }
    const size_t len = utf8_valid_len(s, i);
    if (len == 0) return i;
    i += len;
  }
  return n;
}
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
}  // namespace

bool sanitize_per_byte(std::string_view s, std::string* out) {
  size_t i = first_invalid(s);
  if (i == s.size()) return false;
  out->assign(s.data(), i);
  while (i < s.size()) {
    const size_t len = utf8_valid_len(s, i);
    if (len == 0) {
      out->append(kReplacement);
      ++i;
    } else {
      out->append(s.data() + i, len);
      i += len;
    }
  }
  return true;
}

std::string utf8_lossy(std::string_view s) {
  size_t i = first_invalid(s);
  if (i == s.size()) return std::string(s);
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  std::string out(s.data(), i);
  while (i < s.size()) {
    const size_t len = utf8_valid_len(s, i);
    if (len > 0) {
      out.append(s.data() + i, len);
      i += len;
      continue;
    }
    // Maximal subpart: a valid lead byte followed by the continuation bytes it still accepts.
    const unsigned c = p[i];
    size_t need = 0;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c == 0xE0) { need = 2; lo = 0xA0; }
    else if (c == 0xED) { need = 2; hi = 0x9F; }
    else if (c >= 0xE1 && c <= 0xEF) need = 2;
    else if (c == 0xF0) { need = 3; lo = 0x90; }
    else if (c >= 0xF1 && c <= 0xF3) need = 3;
    else if (c == 0xF4) { need = 3; hi = 0x8F; }
    size_t j = i + 1;
    for (size_t k = 0; k < need && j < s.size(); ++k, ++j) {
      const unsigned b = p[j];
      const unsigned l = k == 0 ? lo : 0x80, h = k == 0 ? hi : 0xBF;
      if (b < l || b > h) break;
    }
    out.append(kReplacement);
    i = j;
  }
  return out;
}

bool is_word_char(char32_t c) {
  if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  if (c == 0x200C || c == 0x200D) return true;
  // Alphabetic symbols (So with Other_Alphabetic): circled, squared and negative circled /
  // squared Latin letters. Checked over every code point against tokenizers' Whitespace.
  if ((c >= 0x24B6 && c <= 0x24E9) || (c >= 0x1F130 && c <= 0x1F149) || (c >= 0x1F150 && c <= 0x1F169) ||
      (c >= 0x1F170 && c <= 0x1F189))
    return true;
  if (unicode::is_letter(c) || unicode::is_mark(c)) return true;
  const unicode::Category k = unicode::category(c);
  return k == unicode::Category::Nd || k == unicode::Category::Nl || k == unicode::Category::Pc;
}

}  // namespace tok

using namespace tok;

// ---------------------------------------------------------------------------------------------
// Tables

void Tokenizer::Impl::build_tables() {
  size_t total = model.vocab_r.size();
  for (const AddedToken& a : added) total = std::max(total, static_cast<size_t>(a.id) + 1);
  id_token.assign(total, std::string());
  id_exists.assign(total, 0);
  id_special.assign(total, 0);
  for (size_t i = 0; i < model.vocab_r.size(); ++i)
    if (model.vocab_has[i]) {
      id_token[i] = model.vocab_r[i];
      id_exists[i] = 1;
    }
  std::vector<std::string> specials;
  for (const AddedToken& a : added) {
    // tokenizers decodes a normalized added token as its normalized form (normalized_cache).
    id_token[a.id] = a.normalized && !normalizers.empty() ? normalize(a.content) : a.content;
    id_exists[a.id] = 1;
    if (a.special) specials.push_back(a.content);
  }
  // tokenizers decides "special" by the token's text (as decoding spells it).
  for (size_t i = 0; i < total; ++i)
    if (id_exists[i] && std::find(specials.begin(), specials.end(), id_token[i]) != specials.end()) id_special[i] = 1;

  id_byte.assign(total, -1);
  for (size_t i = 0; i < total; ++i) {
    const std::string& t = id_token[i];
    if (id_exists[i] && t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' &&
        std::isxdigit(static_cast<unsigned char>(t[3])) && std::isxdigit(static_cast<unsigned char>(t[4])))
      id_byte[i] = static_cast<int16_t>(std::stoi(t.substr(3, 2), nullptr, 16));
  }

  byte_level_decode_only = decoders.size() == 1 && decoders[0].kind == Decoder::Kind::byte_level;
  id_bytes.clear();
  if (byte_level_decode_only) {
    id_bytes.assign(total, std::string());
    for (size_t i = 0; i < total; ++i) {
      if (!id_exists[i]) continue;
      const std::string& t = id_token[i];
      std::string raw;
      bool ok = true;
      for (size_t k = 0; k < t.size() && ok;) {
        const int b = byte_from_char(utf8_next(t, k));
        if (b < 0) ok = false;
        else raw += static_cast<char>(b);
      }
      id_bytes[i] = ok ? raw : t;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Normalizers

std::string Tokenizer::Impl::normalize(std::string_view s) const {
  std::string cur(s), next;
  for (const Normalizer& n : normalizers) {
    switch (n.kind) {
      case Normalizer::Kind::nfc: {
        // Text made only of characters below U+0300 (lead bytes < 0xCC) is already NFC.
        bool simple = true;
        for (unsigned char c : cur) simple = simple && c < 0xCC;
        if (!simple) cur = unicode::nfc(cur);
        break;
      }
      case Normalizer::Kind::nfkc: {
        bool ascii = true;
        for (unsigned char c : cur) ascii = ascii && c < 0x80;
        if (!ascii) cur = unicode::nfkc(cur);
        break;
      }
      case Normalizer::Kind::nfd:
      case Normalizer::Kind::nfkd: {
        bool ascii = true;
        for (unsigned char c : cur) ascii = ascii && c < 0x80;
        if (!ascii) cur = n.kind == Normalizer::Kind::nfd ? unicode::nfd(cur) : unicode::nfkd(cur);
        break;
      }
      case Normalizer::Kind::strip_accents: {  // drops every mark (Mn, Mc, Me), as tokenizers does
        next.clear();
        for (size_t i = 0; i < cur.size();) {
          const size_t b = i;
          if (!unicode::is_mark(utf8_next(cur, i))) next.append(cur, b, i - b);
        }
        cur.swap(next);
        break;
      }
      case Normalizer::Kind::lowercase: {
        next.clear();
        for (size_t i = 0; i < cur.size();) {
          const unsigned char c = static_cast<unsigned char>(cur[i]);
          if (c < 0x80) {
            next += static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
            ++i;
          } else {
            append_lowercase(next, utf8_next(cur, i));
          }
        }
        cur.swap(next);
        break;
      }
      case Normalizer::Kind::strip: {
        size_t b = 0, e = cur.size();
        if (n.left)
          while (b < e) {
            size_t j = b;
            if (!unicode::is_whitespace(utf8_next(cur, j))) break;
            b = j;
          }
        if (n.right)
          while (e > b) {
            size_t k = e - 1;
            while (k > b && (static_cast<unsigned char>(cur[k]) & 0xC0) == 0x80) --k;
            size_t j = k;
            if (!unicode::is_whitespace(utf8_next(cur, j))) break;
            e = k;
          }
        cur = cur.substr(b, e - b);
        break;
      }
      case Normalizer::Kind::prepend:
        if (!cur.empty()) cur.insert(0, n.a);
        break;
      case Normalizer::Kind::replace: {
        if (cur.find(n.a) == std::string::npos) break;
        next.clear();
        size_t i = 0;
        for (size_t f; (f = cur.find(n.a, i)) != std::string::npos; i = f + n.a.size()) {
          next.append(cur, i, f - i);
          next += n.b;
        }
        next.append(cur, i, std::string::npos);
        cur.swap(next);
        break;
      }
    }
  }
  return cur;
}

// ---------------------------------------------------------------------------------------------
// Pre-tokenizers and the model

namespace {

struct Piece {
  size_t off, len;
  bool origin;  // starts at offset 0 of the input (Metaspace prepend_scheme "first")
};

// Calls f(begin, end) for each piece of `v` by the WhitespaceSplit pre-tokenizer (maximal runs
// of non-whitespace) or, with `punct`, the Whitespace one (\w+|[^\w\s]+: maximal runs of word
// characters and maximal runs of other non-whitespace characters). Whitespace is dropped.
// Calls f(begin, end) on each piece until it returns false.
template <class F>
void for_each_whitespace_piece(std::string_view v, bool punct, F&& f) {
  enum { kSpace, kWord, kOther };
  auto cls = [&](char32_t c) { return unicode::is_whitespace(c) ? kSpace : !punct || is_word_char(c) ? kWord : kOther; };
  size_t start = 0;
  int run = kSpace;
  for (size_t i = 0; i < v.size();) {
    const size_t b = i;
    const int k = cls(utf8_next(v, i));
    if (k == run) continue;
    if (run != kSpace && !f(start, b)) return;
    start = b;
    run = k;
  }
  if (run != kSpace) f(start, v.size());
}

// tokenizers' SplitDelimiterBehavior (NormalizedString::split), streamed: the pieces of one text
// arrive in order as (begin, end, is_match) — matches, empty ones included, and the non-empty
// text between them — and the folded pieces leave through emit(begin, end) as soon as they are
// final; emit returns false to stop. Empty results are dropped, as tokenizers drops them.
template <class Emit>
class SplitFolder {
 public:
  SplitFolder(SplitBehavior behavior, bool invert, Emit& emit) : beh_(behavior), invert_(invert), emit_(emit) {}

  bool feed(size_t b, size_t e, bool is_match) {
    const bool m = is_match != invert_;
    switch (beh_) {
      case SplitBehavior::isolated: return out(b, e);
      case SplitBehavior::removed: return m || out(b, e);
      case SplitBehavior::contiguous:  // runs of matches (and of non-matches) become one piece
        if (pending_ && m == prev_) return extend(e, m);
        return replace(b, e, m);
      case SplitBehavior::merged_with_previous:  // a match joins the piece before it
        if (pending_ && m && !prev_) return extend(e, m);
        return replace(b, e, m);
      case SplitBehavior::merged_with_next:  // a match joins the non-match after it
        if (pending_) {
          pending_ = false;
          if (!m) return out(pb_, e);
          const bool ok = out(pb_, pe_);
          set(b, e, m);
          return ok;
        }
        if (m) {
          set(b, e, m);
          return true;
        }
        return out(b, e);
    }
    return true;
  }
  bool finish() {
    if (!pending_) return true;
    pending_ = false;
    return out(pb_, pe_);
  }

 private:
  bool out(size_t b, size_t e) { return e <= b || emit_(b, e); }
  bool extend(size_t e, bool m) {
    pe_ = e;
    prev_ = m;
    return true;
  }
  void set(size_t b, size_t e, bool m) {
    pending_ = true;
    pb_ = b;
    pe_ = e;
    prev_ = m;
  }
  bool replace(size_t b, size_t e, bool m) {
    const bool ok = !pending_ || out(pb_, pe_);
    set(b, e, m);
    return ok;
  }
  SplitBehavior beh_;
  bool invert_;
  Emit& emit_;
  bool pending_ = false, prev_ = false;
  size_t pb_ = 0, pe_ = 0;
};

// Feeds a folder with `matches` (sorted, disjoint, within [0, n)) and the gaps between them.
template <class Folder>
bool feed_matches(Folder& f, const std::vector<std::pair<size_t, size_t>>& matches, size_t n) {
  size_t last = 0;
  for (const auto& [b, e] : matches) {
    if (b > last && !f.feed(last, b, false)) return false;
    if (!f.feed(b, e, true)) return false;
    last = e;
  }
  if (last < n && !f.feed(last, n, false)) return false;
  return f.finish();
}

// Cuts piece p (text at arena[p.off..]) around `matches` (sorted, disjoint, relative to p) by
// tokenizers' SplitDelimiterBehavior.
void split_by(const Piece& p, const std::vector<std::pair<size_t, size_t>>& matches, SplitBehavior behavior,
              bool invert, std::vector<Piece>& out) {
  auto emit = [&](size_t b, size_t e) {
    out.push_back({p.off + b, e - b, p.origin && b == 0});
    return true;
  };
  SplitFolder<decltype(emit)> f(behavior, invert, emit);
  feed_matches(f, matches, p.len);
}

// The pieces of `v` by a Split pre-tokenizer (regex or string pattern), in order, through
// emit(begin, end) until it returns false. Matching runs a batch at a time, so that a caller that
// stops early (EncodeOptions::max_tokens) has matched only about as far as it read.
template <class Emit>
void for_each_split_piece(const PreTokenizer& p, std::string_view v, Emit&& emit) {
  if (v.empty()) return;
  if (p.kind == PreTokenizer::Kind::split_regex && !p.regex && p.behavior == SplitBehavior::isolated &&
      !p.invert) {
    // The hand-written matchers cover the text with matches: every match is a piece.
    thread_local std::vector<std::pair<size_t, size_t>> pieces;
    for (size_t at = 0; at < v.size();) {
      at = unicode::split_some(v, p.pattern, at, 1024, pieces);
      for (const auto& [b, e] : pieces)
        if (!emit(b, e)) return;
    }
    return;
  }
  SplitFolder<Emit> f(p.behavior, p.invert, emit);
  size_t last = 0;  // end of the last match fed
  auto feed = [&](size_t b, size_t e) {
    if (b > last && !f.feed(last, b, false)) return false;
    last = e;
    return f.feed(b, e, true);
  };
  if (p.kind == PreTokenizer::Kind::split_string) {
    for (size_t at = v.find(p.literal); at != std::string_view::npos; at = v.find(p.literal, at + p.literal.size()))
      if (!feed(at, at + p.literal.size())) return;
  } else if (p.regex) {
    OnigMatches it(*p.regex, v);
    size_t b, e;
    while (it.next(&b, &e))
      if (!feed(b, e)) return;
  } else {
    std::vector<std::pair<size_t, size_t>> pieces;
    for (size_t at = 0; at < v.size();) {
      at = unicode::split_some(v, p.pattern, at, 1024, pieces);
      for (const auto& [b, e] : pieces)
        if (!feed(b, e)) return;
    }
  }
  if (last < v.size() && !f.feed(last, v.size(), false)) return;
  f.finish();
}

}  // namespace

void Tokenizer::Impl::pre_tokenize_and_model(std::string_view text, bool at_origin, std::vector<int32_t>& out,
                                             size_t limit) const {
  if (text.empty()) return;
  // Pieces one at a time into the model, so that a limit also bounds the matching done.
  auto model_split = [&](const PreTokenizer& p) {
    for_each_split_piece(p, text, [&](size_t b, size_t e) {
      if (out.size() >= limit) return false;
      run_model(text.substr(b, e - b), out);
      return true;
    });
  };
  if (pre_tokenizers.empty()) {
    run_model(text, out);
    return;
  }
  // One pre-tokenizer splitting with a regex, a string or on whitespace and nothing else (GPT-2
  // style ByteLevel with use_regex, a lone Split, WhitespaceSplit, Whitespace): no copies at all.
  if (pre_tokenizers.size() == 1) {
    const PreTokenizer& p = pre_tokenizers[0];
    if (p.kind == PreTokenizer::Kind::whitespace_split || p.kind == PreTokenizer::Kind::whitespace) {
      for_each_whitespace_piece(text, p.kind == PreTokenizer::Kind::whitespace, [&](size_t b, size_t e) {
        run_model(text.substr(b, e - b), out);
        return out.size() < limit;
      });
      return;
    }
    if (p.kind == PreTokenizer::Kind::byte_level && p.use_regex && !p.add_prefix_space) {
      PreTokenizer gpt2;
      gpt2.kind = PreTokenizer::Kind::split_regex;
      gpt2.pattern = unicode::SplitPattern::gpt2;
      model_split(gpt2);
      return;
    }
    if (p.kind == PreTokenizer::Kind::split_regex || p.kind == PreTokenizer::Kind::split_string) {
      model_split(p);
      return;
    }
  }
  // Split followed by a ByteLevel without regex or prefix (Llama-3, Qwen2, OLMo 2, Phi-4).
  if (pre_tokenizers.size() == 2 &&
      (pre_tokenizers[0].kind == PreTokenizer::Kind::split_regex ||
       pre_tokenizers[0].kind == PreTokenizer::Kind::split_string) &&
      pre_tokenizers[1].kind == PreTokenizer::Kind::byte_level && !pre_tokenizers[1].use_regex &&
      !pre_tokenizers[1].add_prefix_space) {
    model_split(pre_tokenizers[0]);
    return;
  }

  thread_local std::string arena, tmp;
  thread_local std::vector<Piece> cur, nxt;
  thread_local std::vector<std::pair<size_t, size_t>> matches;
  arena.assign(text);
  cur.assign(1, Piece{0, text.size(), at_origin});
  for (const PreTokenizer& p : pre_tokenizers) {
    nxt.clear();
    for (const Piece& pc : cur) {
      switch (p.kind) {
        case PreTokenizer::Kind::split_regex:
        case PreTokenizer::Kind::split_string: {
          const std::string_view v(arena.data() + pc.off, pc.len);
          for_each_split_piece(p, v, [&](size_t b, size_t e) {
            nxt.push_back({pc.off + b, e - b, pc.origin && b == 0});
            return true;
          });
          break;
        }
        case PreTokenizer::Kind::digits:
        case PreTokenizer::Kind::whitespace_split: {
          const std::string_view v(arena.data() + pc.off, pc.len);
          matches.clear();
          for (size_t i = 0; i < v.size();) {
            const size_t b = i;
            const char32_t c = utf8_next(v, i);
            const bool hit = p.kind == PreTokenizer::Kind::digits ? unicode::is_number(c) : unicode::is_whitespace(c);
            if (hit) matches.emplace_back(b, i);
          }
          SplitBehavior beh = SplitBehavior::removed;
          if (p.kind == PreTokenizer::Kind::digits)
            beh = p.individual_digits ? SplitBehavior::isolated : SplitBehavior::contiguous;
          split_by(pc, matches, beh, false, nxt);
          break;
        }
        case PreTokenizer::Kind::whitespace: {
          const std::string_view v(arena.data() + pc.off, pc.len);
          for_each_whitespace_piece(v, true, [&](size_t b, size_t e) {
            nxt.push_back({pc.off + b, e - b, pc.origin && b == 0});
            return true;
          });
          break;
        }
        case PreTokenizer::Kind::metaspace: {
          tmp.clear();
          const std::string_view v(arena.data() + pc.off, pc.len);
          for (char c : v) {
            if (c == ' ') tmp += p.literal;
            else tmp += c;
          }
          const bool prepend = p.prepend == PreTokenizer::Prepend::always ||
                               (p.prepend == PreTokenizer::Prepend::first && pc.origin);
          if (prepend && tmp.compare(0, p.literal.size(), p.literal) != 0) tmp.insert(0, p.literal);
          const Piece np{arena.size(), tmp.size(), pc.origin};
          arena += tmp;
          if (!p.split) {
            nxt.push_back(np);
          } else {
            matches.clear();
            for (size_t f = tmp.find(p.literal); f != std::string::npos; f = tmp.find(p.literal, f + p.literal.size()))
              matches.emplace_back(f, f + p.literal.size());
            split_by(np, matches, SplitBehavior::merged_with_next, false, nxt);
          }
          break;
        }
        case PreTokenizer::Kind::byte_level: {
          Piece np = pc;
          if (p.add_prefix_space && arena[pc.off] != ' ') {
            tmp.assign(" ");
            tmp.append(arena, pc.off, pc.len);
            np = Piece{arena.size(), tmp.size(), pc.origin};
            arena += tmp;
          }
          if (!p.use_regex) {
            nxt.push_back(np);
          } else {
            const std::string_view v(arena.data() + np.off, np.len);
            for (const auto& [b, e] : unicode::split(v, unicode::SplitPattern::gpt2))
              if (e > b) nxt.push_back({np.off + b, e - b, np.origin && b == 0});
          }
          break;
        }
      }
    }
    cur.swap(nxt);
  }
  for (const Piece& pc : cur) run_model(std::string_view(arena.data() + pc.off, pc.len), out);
}

// ---------------------------------------------------------------------------------------------
// Decoders

std::string Tokenizer::Impl::decode_tokens(std::vector<std::string>& tokens) const {
  if (!has_decoder) {
    std::string s;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i) s += ' ';
      s += tokens[i];
    }
    return s;
  }
  std::vector<std::string> next;
  for (const Decoder& d : decoders) {
    switch (d.kind) {
      case Decoder::Kind::byte_level: {
        std::string bytes;
        for (const std::string& t : tokens) {
          const size_t mark = bytes.size();
          bool ok = true;
          for (size_t k = 0; k < t.size() && ok;) {
            const int b = byte_from_char(utf8_next(t, k));
            if (b < 0) ok = false;
            else bytes += static_cast<char>(b);
          }
          if (!ok) {
            bytes.resize(mark);
            bytes += t;
          }
        }
        tokens.assign(1, utf8_lossy(bytes));
        break;
      }
      case Decoder::Kind::byte_fallback: {
        next.clear();
        std::string run;
        size_t run_len = 0;
        auto flush = [&] {
          if (run_len == 0) return;
          if (utf8_lossy(run) == run) next.push_back(run);
          else
            for (size_t k = 0; k < run_len; ++k) next.emplace_back(kReplacement);
          run.clear();
          run_len = 0;
        };
        for (std::string& t : tokens) {
          if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' &&
              std::isxdigit(static_cast<unsigned char>(t[3])) && std::isxdigit(static_cast<unsigned char>(t[4]))) {
            run += static_cast<char>(std::stoi(t.substr(3, 2), nullptr, 16));
            ++run_len;
          } else {
            flush();
            next.push_back(std::move(t));
          }
        }
        flush();
        tokens.swap(next);
        break;
      }
      case Decoder::Kind::fuse: {
        std::string all;
        for (const std::string& t : tokens) all += t;
        tokens.assign(1, std::move(all));
        break;
      }
      case Decoder::Kind::strip: {
        for (std::string& t : tokens) {
          std::vector<size_t> starts;  // byte offset of each character
          for (size_t k = 0; k < t.size();) {
            starts.push_back(k);
            k += utf8_len(static_cast<unsigned char>(t[k]));
          }
          const size_t nch = starts.size();
          auto char_at = [&](size_t c) {
            const size_t e = c + 1 < nch ? starts[c + 1] : t.size();
            return std::string_view(t).substr(starts[c], e - starts[c]);
          };
          size_t cut_b = 0, cut_e = nch;
          for (size_t c = 0; c < std::min(d.start, nch) && char_at(c) == d.a; ++c) cut_b = c + 1;
          for (size_t c = 0; c < std::min(d.stop, nch) && char_at(nch - 1 - c) == d.a; ++c) cut_e = nch - 1 - c;
          if (cut_e < cut_b) cut_e = cut_b;
          const size_t bb = cut_b < nch ? starts[cut_b] : t.size();
          const size_t be = cut_e < nch ? starts[cut_e] : t.size();
          t = t.substr(bb, be - bb);
        }
        break;
      }
      case Decoder::Kind::replace: {
        for (std::string& t : tokens) {
          if (t.find(d.a) == std::string::npos) continue;
          std::string r;
          size_t i = 0;
          for (size_t f; (f = t.find(d.a, i)) != std::string::npos; i = f + d.a.size()) {
            r.append(t, i, f - i);
            r += d.b;
          }
          r.append(t, i, std::string::npos);
          t.swap(r);
        }
        break;
      }
      case Decoder::Kind::metaspace: {
        for (size_t i = 0; i < tokens.size(); ++i) {
          std::string& t = tokens[i];
          if (t.find(d.a) == std::string::npos) continue;
          std::string r;
          size_t k = 0;
          for (size_t f; (f = t.find(d.a, k)) != std::string::npos; k = f + d.a.size()) {
            r.append(t, k, f - k);
            if (!(i == 0 && !d.prepend_never)) r += ' ';
          }
          r.append(t, k, std::string::npos);
          t.swap(r);
        }
        break;
      }
    }
  }
  std::string s;
  for (const std::string& t : tokens) s += t;
  return s;
}

// ---------------------------------------------------------------------------------------------
// Public API

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

std::vector<int32_t> Tokenizer::encode(std::string_view text, const EncodeOptions& opt) const {
  const Impl& im = *impl_;
  std::string clean;
  if (sanitize_per_byte(text, &clean)) text = clean;

  const size_t limit = opt.max_tokens > 0 ? opt.max_tokens : SIZE_MAX;
  std::vector<int32_t> out;
  out.reserve(std::min(text.size() / 3, limit) + 8);
  if (opt.add_special_tokens) out.insert(out.end(), im.post.before.begin(), im.post.before.end());

  std::vector<Segment> raw, norm;
  if (im.raw_matcher.empty()) raw.assign(1, Segment{0, text.size(), -1});
  else split_added_tokens(text, im.raw_matcher, im.added, opt.parse_special_tokens, raw);
  std::string normalized;
  for (const Segment& s : raw) {
    if (out.size() >= limit) return out;  // a prefix: the post-processor's tail is not reached
    if (s.token_id >= 0) {
      out.push_back(s.token_id);
      continue;
    }
    if (s.end <= s.begin) continue;
    std::string_view seg = text.substr(s.begin, s.end - s.begin);
    const bool origin = s.begin == 0;
    if (!im.normalizers.empty()) {
      normalized = im.normalize(seg);
      seg = normalized;
    }
    if (im.normalized_matcher.empty()) {
      im.pre_tokenize_and_model(seg, origin, out, limit);
      continue;
    }
    split_added_tokens(seg, im.normalized_matcher, im.added, opt.parse_special_tokens, norm);
    for (const Segment& n : norm) {
      if (out.size() >= limit) return out;
      if (n.token_id >= 0) out.push_back(n.token_id);
      else im.pre_tokenize_and_model(seg.substr(n.begin, n.end - n.begin), origin && n.begin == 0, out, limit);
    }
  }
  if (out.size() >= limit) return out;
  if (opt.add_special_tokens) out.insert(out.end(), im.post.after.begin(), im.post.after.end());
  return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, const DecodeOptions& opt) const {
  const Impl& im = *impl_;
  const size_t n = im.id_token.size();
  auto keep = [&](int32_t id) {
    return id >= 0 && static_cast<size_t>(id) < n && im.id_exists[id] && !(opt.skip_special_tokens && im.id_special[id]);
  };
  if (im.byte_level_decode_only) {
    std::string bytes;
    for (int32_t id : ids)
      if (keep(id)) bytes += im.id_bytes[id];
    return utf8_lossy(bytes);
  }
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids)
    if (keep(id)) tokens.push_back(im.id_token[id]);
  return im.decode_tokens(tokens);
}

int64_t Tokenizer::vocab_size() const { return static_cast<int64_t>(impl_->id_token.size()); }

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (auto it = impl_->added_ids.find(token); it != impl_->added_ids.end()) return it->second;
  if (auto it = impl_->model.vocab.find(token); it != impl_->model.vocab.end()) return it->second;
  return std::nullopt;
}

std::string Tokenizer::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= impl_->id_token.size() || !impl_->id_exists[id])
    throw InputError(impl_->source + ": token id " + std::to_string(id) + " is not in the vocabulary (size " +
                     std::to_string(impl_->id_token.size()) + ")");
  return impl_->id_token[id];
}

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < impl_->id_special.size() && impl_->id_special[id];
}

std::optional<int32_t> Tokenizer::bos_id() const {
  return impl_->bos.empty() ? std::nullopt : token_to_id(impl_->bos);
}
std::optional<int32_t> Tokenizer::eos_id() const {
  return impl_->eos.empty() ? std::nullopt : token_to_id(impl_->eos);
}
std::optional<int32_t> Tokenizer::pad_id() const {
  return impl_->pad.empty() ? std::nullopt : token_to_id(impl_->pad);
}
std::string Tokenizer::bos_token() const { return impl_->bos; }
std::string Tokenizer::eos_token() const { return impl_->eos; }
const std::string& Tokenizer::chat_template() const { return impl_->chat_template; }

Tokenizer Tokenizer::from_json_text(const std::string& tokenizer_json, const std::string& source) {
  auto impl = std::make_unique<Impl>();
  load_tokenizer_json(*impl, tokenizer_json, source);
  return Tokenizer(std::move(impl));
}

namespace {

std::string read_file(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw IoError(p.string() + ": cannot open");
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) throw IoError(p.string() + ": read failed");
  return ss.str();
}

// bos_token etc.: a string, {"content": ...} (a serialized AddedToken) or null.
std::string token_name(const nlohmann::json& cfg, const char* key, const std::string& source) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) {
    auto c = it->find("content");
    if (c != it->end() && c->is_string()) return c->get<std::string>();
  }
  throw InputError(source + ": " + key + ": expected a string, {\"content\": ...} or null, got " +
                   detail::json_excerpt(*it));
}

}  // namespace

Tokenizer Tokenizer::load(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  fs::path file = path, dir;
  if (fs::is_directory(path)) {
    file = path / "tokenizer.json";
    dir = path;
    if (!fs::exists(file)) throw InputError(path.string() + ": no tokenizer.json in this directory");
  } else {
    if (!fs::exists(path)) throw InputError(path.string() + ": no such file");
    dir = path.parent_path();
  }
  Tokenizer tok = from_json_text(read_file(file), file.string());
  Impl& im = *tok.impl_;

  // tokenizer_config.json (bos/eos/pad, chat_template), then special_tokens_map.json for what
  // it leaves out, then chat_template.jinja, which transformers prefers when present.
  auto check_name = [&](const std::string& name, const std::string& source, const char* key) {
    if (!name.empty() && !tok.token_to_id(name))
      throw InputError(source + ": " + key + ": '" + name + "' is not in the vocabulary of " + file.string());
  };
  const fs::path cfg_path = dir.empty() ? fs::path("tokenizer_config.json") : dir / "tokenizer_config.json";
  if (fs::exists(cfg_path)) {
    const std::string src = cfg_path.string();
    const nlohmann::json cfg = detail::parse_json_strict(read_file(cfg_path), src);
    if (!cfg.is_object()) throw InputError(src + ": expected a JSON object");
    im.bos = token_name(cfg, "bos_token", src);
    im.eos = token_name(cfg, "eos_token", src);
    im.pad = token_name(cfg, "pad_token", src);
    check_name(im.bos, src, "bos_token");
    check_name(im.eos, src, "eos_token");
    // pad_token is not checked: transformers adds an unknown one as a new token; pad_id() is
    // then empty here.
    if (auto it = cfg.find("chat_template"); it != cfg.end() && !it->is_null()) {
      if (it->is_string()) {
        im.chat_template = it->get<std::string>();
      } else if (it->is_array()) {
        for (size_t i = 0; i < it->size(); ++i) {
          const auto& e = (*it)[i];
          if (!e.is_object() || !e.contains("name") || !e.contains("template") || !e["name"].is_string() ||
              !e["template"].is_string())
            throw InputError(src + ": chat_template[" + std::to_string(i) + "]: expected {\"name\": ..., \"template\": ...}");
          if (e["name"] == "default") im.chat_template = e["template"].get<std::string>();
        }
      } else {
        throw InputError(src + ": chat_template: expected a string or a list of {name, template}");
      }
    }
  }
  const fs::path map_path = dir.empty() ? fs::path("special_tokens_map.json") : dir / "special_tokens_map.json";
  if (fs::exists(map_path) && (im.bos.empty() || im.eos.empty() || im.pad.empty())) {
    const std::string src = map_path.string();
    const nlohmann::json m = detail::parse_json_strict(read_file(map_path), src);
    if (!m.is_object()) throw InputError(src + ": expected a JSON object");
    if (im.bos.empty()) im.bos = token_name(m, "bos_token", src), check_name(im.bos, src, "bos_token");
    if (im.eos.empty()) im.eos = token_name(m, "eos_token", src), check_name(im.eos, src, "eos_token");
    if (im.pad.empty()) im.pad = token_name(m, "pad_token", src);
  }
  const fs::path jinja = dir.empty() ? fs::path("chat_template.jinja") : dir / "chat_template.jinja";
  if (fs::exists(jinja)) im.chat_template = read_file(jinja);
  return tok;
}

// ---------------------------------------------------------------------------------------------
// DecodeStream: decode a short window of ids, return what it adds past the text already
// returned, hold the step back while the text ends in U+FFFD (an incomplete character so far),
// and after each emission keep only the last token as context (plus the byte-fallback tokens
// of its character, so that a run of byte tokens is never cut inside a character).

DecodeStream::DecodeStream(const Tokenizer& tok, DecodeOptions opt) : tok_(tok), opt_(opt) {}

std::string DecodeStream::step(int32_t id) {
  ids_.push_back(id);
  const std::string s = tok_.decode(ids_, opt_);
  if (s.size() <= emitted_ || (s.size() >= 3 && s.compare(s.size() - 3, 3, kReplacement) == 0)) return {};
  std::string out = s.substr(emitted_);
  auto byte_value = [&](int32_t t) -> int {
    if (t < 0 || t >= tok_.vocab_size()) return -1;
    std::string name;
    try {
      name = tok_.id_to_token(t);
    } catch (const InputError&) {  // an id the vocabulary skips
      return -1;
    }
    if (name.size() != 6 || name.compare(0, 3, "<0x") != 0 || name[5] != '>' ||
        !std::isxdigit(static_cast<unsigned char>(name[3])) || !std::isxdigit(static_cast<unsigned char>(name[4])))
      return -1;
    return std::stoi(name.substr(3, 2), nullptr, 16);
  };
  size_t k = ids_.size() - 1;
  while (k > 0) {
    const int b = byte_value(ids_[k]);
    if (b < 0x80 || b > 0xBF) break;  // not a continuation byte: the character starts here
    --k;
  }
  if (k > 0) {
    ids_.erase(ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(k));
    emitted_ = tok_.decode(ids_, opt_).size();
  } else {
    emitted_ = s.size();
  }
  return out;
}

std::string DecodeStream::finish() {
  const std::string s = tok_.decode(ids_, opt_);
  std::string out = s.size() > emitted_ ? s.substr(emitted_) : std::string();
  ids_.clear();
  emitted_ = 0;
  return out;
}

}  // namespace rlhf
