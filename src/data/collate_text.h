// A TextEncoder (collate.h) over a Hugging Face tokenizer: encode() calls Tokenizer::encode with
// special-token parsing on (chat templates write BOS/EOS as text), eos_id from the tokenizer's
// config; with a ChatTemplate, render() applies it with the tokenizer's bos_token / eos_token
// as apply_chat_template passes them.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>

#include "data/collate.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

namespace rlhf {

// The tokenizer (and template) must outlive the encoder.
TextEncoder text_encoder(const Tokenizer& tok);
TextEncoder text_encoder(const Tokenizer& tok, const ChatTemplate& tmpl);

// Length in tokens of plain text (no special tokens): for the data tools' LengthCounter.
int64_t token_length(const Tokenizer& tok, const std::string& text);

// A model directory's text side: its tokenizer, its chat template (if any) and an encoder over
// both. Heap-held because the encoder refers to the tokenizer and the template.
struct TextSide {
  Tokenizer tok;
  std::optional<ChatTemplate> tmpl;
  TextEncoder enc;
};
std::unique_ptr<TextSide> load_text_side(const std::filesystem::path& model_dir);

}  // namespace rlhf
