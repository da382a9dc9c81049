// A TextEncoder (collate.h) over a Hugging Face tokenizer: encode() calls Tokenizer::encode with
// special-token parsing on (chat templates write BOS/EOS as text), eos_id from the tokenizer's
// config. `render` is left empty here: set it from a ChatTemplate for conversational data.
#pragma once

#include "data/collate.h"
#include "text/tokenizer.h"

namespace rlhf {

// The tokenizer must outlive the encoder.
TextEncoder text_encoder(const Tokenizer& tok);

// Length in tokens of plain text (no special tokens): for the data tools' LengthCounter.
int64_t token_length(const Tokenizer& tok, const std::string& text);

}  // namespace rlhf
