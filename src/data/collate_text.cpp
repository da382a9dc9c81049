// TextEncoder over a Tokenizer (kept apart from collate.cpp so that collation links without the
// tokenizer).
#include "data/collate_text.h"

namespace rlhf {

TextEncoder text_encoder(const Tokenizer& tok) {
  TextEncoder e;
  e.encode = [&tok](const std::string& text, bool add_special_tokens, size_t max_tokens) {
    EncodeOptions o;
    o.add_special_tokens = add_special_tokens;
    o.max_tokens = max_tokens;
    return tok.encode(text, o);
  };
  e.eos_id = tok.eos_id();
  return e;
}

TextEncoder text_encoder(const Tokenizer& tok, const ChatTemplate& tmpl) {
  TextEncoder e = text_encoder(tok);
  const nlohmann::json extra = {{"bos_token", tok.bos_token()}, {"eos_token", tok.eos_token()}};
  e.render = [&tmpl, extra](const nlohmann::json& messages, bool add_generation_prompt) {
    return tmpl.render(messages, add_generation_prompt, extra);
  };
  return e;
}

int64_t token_length(const Tokenizer& tok, const std::string& text) {
  return static_cast<int64_t>(tok.encode(text, EncodeOptions{.add_special_tokens = false}).size());
}

std::unique_ptr<TextSide> load_text_side(const std::filesystem::path& model_dir) {
  auto side = std::make_unique<TextSide>(TextSide{Tokenizer::load(model_dir), std::nullopt, {}});
  if (!side->tok.chat_template().empty()) side->tmpl = ChatTemplate::parse(side->tok.chat_template());
  side->enc = side->tmpl ? text_encoder(side->tok, *side->tmpl) : text_encoder(side->tok);
  return side;
}

}  // namespace rlhf
