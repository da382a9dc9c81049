// Chat templates: renders a conversation the way transformers' apply_chat_template does, by
// interpreting the Jinja template string a model ships (tokenizer_config.json "chat_template"
// or chat_template.jinja). A Jinja subset sufficient for the templates real models ship
// (ChatML/Qwen, Llama-3, Llama-2, Mistral, Zephyr/Tulu, Gemma, ...): text, {{ }}, {% %},
// whitespace control (-), if/elif/else, for (loop.index0, loop.first, loop.last, loop.length),
// set, macros where used, filters (trim, length, tojson, upper, lower, ...), tests (defined,
// none, string, ...), string/list/dict literals, indexing, slicing, methods (strip, startswith,
// items, ...), `in`, `~`, arithmetic, comparisons, raise_exception(). A template using anything
// else fails with an InputError naming the construct and its line in the template.
//
// A template is untrusted input: parsing and rendering stay within `limits` (nesting, recursion,
// output size, work, memory; jinja_limits.h), and passing one is an InputError naming the limit.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "text/jinja_limits.h"

namespace rlhf {

class ChatTemplate {
 public:
  // Parses once; render many times.
  static ChatTemplate parse(const std::string& source, const std::string& name = "chat_template",
                            const jinja::Limits& limits = {});
  ChatTemplate(ChatTemplate&&) noexcept;
  ChatTemplate& operator=(ChatTemplate&&) noexcept;
  ~ChatTemplate();

  // messages: [{"role": ..., "content": ...}, ...]. `extra` holds further template variables
  // (bos_token, eos_token, tools, ...), as apply_chat_template passes them.
  std::string render(const nlohmann::json& messages, bool add_generation_prompt,
                     const nlohmann::json& extra = nlohmann::json::object()) const;

  struct Impl;

 private:
  explicit ChatTemplate(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rlhf
