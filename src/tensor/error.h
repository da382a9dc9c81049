// Error types of rlhf.cpp, chosen by cause so callers can tell bad input from misuse.
//
//   InputError   — a file or value the user supplied is wrong (bad safetensors, bad config.json,
//                  bad CLI flag). The message names the file/field and what was expected.
//   IoError      — the environment failed us (cannot open, short write, ENOSPC, rename failed).
//   NumericError — training produced a non-finite loss or gradient; the message names the step.
//   LogicError   — a bug or API misuse inside the program (shape mismatch between our own buffers).
//
// Library code throws; the CLI catches at its boundary and prints "error: <message>".
#pragma once

#include <stdexcept>
#include <string>

namespace rlhf {

struct InputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct IoError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct NumericError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct LogicError : std::logic_error {
  using std::logic_error::logic_error;
};

// Throws LogicError with file:line when an internal invariant does not hold.
#define RLHF_CHECK(cond, msg)                                                                     \
  do {                                                                                            \
    if (!(cond))                                                                                  \
      throw ::rlhf::LogicError(std::string(__FILE__) + ":" + std::to_string(__LINE__) + ": " +   \
                               (msg));                                                            \
  } while (0)

}  // namespace rlhf
