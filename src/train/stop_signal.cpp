#include "train/stop_signal.h"

#include <csignal>
#include <string>

namespace rlhf {

namespace {

volatile std::sig_atomic_t g_signal = 0;

extern "C" void on_stop_signal(int sig) {
  g_signal = sig;
  // The next signal takes the default action: a user who presses Ctrl-C twice means it.
  std::signal(SIGTERM, SIG_DFL);
  std::signal(SIGINT, SIG_DFL);
}

const char* signal_name(int sig) { return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal"; }

}  // namespace

StopRequested::StopRequested(int sig, int64_t at_step, const std::filesystem::path& checkpoint)
    : std::runtime_error(std::string("stopped by ") + signal_name(sig) + " after step " + std::to_string(at_step) +
                         "; its checkpoint is " + checkpoint.string() + " (rerun with --resume to continue)"),
      signal(sig),
      step(at_step) {}

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGTERM, SIGINT}) {
    struct sigaction old {};
    sigaction(sig, &sa, &old);
    // A signal ignored by the parent stays ignored (a shell's background job ignores SIGINT).
    if (old.sa_handler == SIG_IGN) sigaction(sig, &old, nullptr);
  }
}

int stop_after_step(dist::Communicator& comm) {
  const int own = g_signal;
  if (comm.size() == 1) return own;
  double any = own ? 1.0 : 0.0;
  comm.allreduce_sum(&any, 1);
  return own ? own : any > 0 ? SIGTERM : 0;
}

}  // namespace rlhf
