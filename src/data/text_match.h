// Text matching for the dataset tools: normalisation, words, stable hashes, MinHash.
//
// normalize_text: Unicode NFKC, ASCII lower-casing (other letters are kept as they are), every
// punctuation character (ASCII punctuation and Unicode P* categories) replaced by a space,
// whitespace runs collapsed to one space, no leading/trailing space.
// Hashes are FNV-1a + splitmix64 finalisation: stable across machines and runs, so seeds give
// the same output everywhere.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rlhf {

std::string normalize_text(std::string_view s);
std::vector<std::string_view> split_words(std::string_view normalized);  // views into the argument
int64_t count_words(std::string_view s);  // whitespace-separated words of raw text

uint64_t hash64(std::string_view s, uint64_t seed = 0);
uint64_t mix64(uint64_t x);  // splitmix64 finaliser
// Hash of words[b, b + n) joined by single spaces (without building the string).
uint64_t hash_words(const std::vector<std::string_view>& words, size_t b, size_t n);

// MinHash signature over word shingles (n-grams of `shingle` words; a text with fewer words is
// one shingle; an empty text gives an empty signature).
std::vector<uint32_t> minhash_signature(const std::vector<std::string_view>& words, int shingle, int num_perm,
                                        uint64_t seed);
double minhash_similarity(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b);
// LSH banding for a Jaccard threshold: the (bands, rows) with bands * rows == num_perm whose
// S-curve threshold (1/bands)^(1/rows) is the largest not above `threshold`.
void minhash_bands(int num_perm, double threshold, int* bands, int* rows);

}  // namespace rlhf
