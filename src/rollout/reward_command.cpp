// The external-command source: `cmd(timeout=S,on_error=fail|skip):COMMAND LINE`.
//
// The command runs under /bin/sh -c, once per batch: it reads one JSON object per sample on stdin
// (the prompt row's extra fields, plus "prompt" — a string or a list of messages — and
// "completion", the decoded text; these two win over extra fields of the same name) and writes
// one score per line on stdout, in order: a number, or nan / null for an undefined score.
// Once per batch rather than one persistent process: end of input is plain EOF, a scorer's crash
// or leaked state cannot spill into the next batch, and the process start is small next to
// sampling the batch it scores.
//
// The process gets its own process group; stdin is written while stdout and stderr are drained
// (poll over the three pipes, so no size of input or output can deadlock); at the timeout
// (default 60 s) the whole group is killed. When the command exits, whatever it left running in
// its group is killed too. A timeout, a non-zero exit, a signal, a wrong number of lines or a
// line that is not a number is an InputError naming the command, the line and the tail of its
// stderr; with on_error=skip it is counted instead (metrics failed_batches, bad_lines) and the
// scores concerned are NaN.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "rollout/reward_sources.h"
#include "tensor/error.h"

extern char** environ;

namespace rlhf::rollout {

namespace {

constexpr size_t kMaxStdout = size_t{256} << 20;  // a scorer printing more is broken
constexpr size_t kStderrTail = 2000;              // bytes of stderr quoted in errors

struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { close(); }
  void close() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

void make_pipe(Fd& r, Fd& w) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) throw IoError(std::string("pipe: ") + std::strerror(errno));
  r.fd = p[0];
  w.fd = p[1];
}

// Blocks SIGPIPE in this thread while it writes to a child that may have stopped reading (the
// write then fails with EPIPE), and discards the SIGPIPE that this caused.
class SigpipeBlock {
 public:
  SigpipeBlock() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~SigpipeBlock() {
    sigset_t pending;
    sigpending(&pending);
    if (!was_pending_ && sigismember(&pending, SIGPIPE) == 1) {
      const timespec zero{0, 0};
      while (sigtimedwait(&pipe_, nullptr, &zero) == -1 && errno == EINTR) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }

 private:
  sigset_t pipe_, old_;
  bool was_pending_ = false;
};

// A spawned child: killed with its process group and reaped if still there when destroyed.
struct Child {
  pid_t pid = -1;
  bool reaped = false;
  int status = 0;
  ~Child() {
    if (pid > 0 && !reaped) {
      ::kill(-pid, SIGKILL);
      while (waitpid(pid, &status, 0) == -1 && errno == EINTR) {
      }
    }
  }
  // Non-blocking: true once the child has exited. Kills what it left in its group first (the
  // unreaped zombie keeps its pid, hence the group id, from being reused), then reaps it.
  bool try_reap() {
    siginfo_t info{};
    if (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0)
      return false;
    ::kill(-pid, SIGKILL);
    while (waitpid(pid, &status, 0) == -1 && errno == EINTR) {
    }
    reaped = true;
    return true;
  }
};

struct RunOutcome {
  std::string out, err;
  std::string failure;  // empty when the command exited with status 0 in time
};

std::string tail(const std::string& s) {
  return s.size() <= kStderrTail ? s : "..." + s.substr(s.size() - kStderrTail);
}

RunOutcome run_command(const std::string& command, const std::string& input, double timeout_s) {
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(timeout_s));
  Fd in_r, in_w, out_r, out_w, err_r, err_w;
  make_pipe(in_r, in_w);
  make_pipe(out_r, out_w);
  make_pipe(err_r, err_w);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in_r.fd, 0);
  posix_spawn_file_actions_adddup2(&fa, out_w.fd, 1);
  posix_spawn_file_actions_adddup2(&fa, err_w.fd, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t none, defaults;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);  // an ignored SIGPIPE here must not be inherited by the scorer
  posix_spawnattr_setsigdefault(&attr, &defaults);
  std::string sh = "/bin/sh", dash_c = "-c", cmd = command;
  char* argv[] = {sh.data(), dash_c.data(), cmd.data(), nullptr};

  Child child;
  const int rc = posix_spawn(&child.pid, "/bin/sh", &fa, &attr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    child.pid = -1;
    throw IoError("cannot start `" + command + "`: " + std::strerror(rc));
  }
  in_r.close();
  out_w.close();
  err_w.close();
  for (int fd : {in_w.fd, out_r.fd, err_r.fd}) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);

  SigpipeBlock no_sigpipe;
  RunOutcome o;
  size_t written = 0;
  if (input.empty()) in_w.close();
  auto remaining_ms = [&] {
    return static_cast<int>(std::max<int64_t>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count()));
  };
  auto timed_out = [&] {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%g", timeout_s);
    o.failure = std::string("timed out after ") + buf + " s (its process group was killed)";
    return o;  // ~Child kills the group and reaps
  };
  char buf[65536];
  while (in_w.fd >= 0 || out_r.fd >= 0 || err_r.fd >= 0) {
    pollfd fds[3];
    int n = 0;
    if (in_w.fd >= 0) fds[n++] = {in_w.fd, POLLOUT, 0};
    if (out_r.fd >= 0) fds[n++] = {out_r.fd, POLLIN, 0};
    if (err_r.fd >= 0) fds[n++] = {err_r.fd, POLLIN, 0};
    const int wait = remaining_ms();
    if (wait == 0) return timed_out();
    const int ready = poll(fds, static_cast<nfds_t>(n), wait);
    if (ready < 0 && errno != EINTR) throw IoError(std::string("poll: ") + std::strerror(errno));
    for (int k = 0; ready > 0 && k < n; ++k) {
      if (fds[k].revents == 0) continue;
      if (fds[k].fd == in_w.fd) {
        const ssize_t w = ::write(in_w.fd, input.data() + written, std::min<size_t>(input.size() - written, sizeof buf));
        if (w > 0) written += static_cast<size_t>(w);
        // EPIPE: the command stopped reading; what it prints and how it exits decide.
        if ((w < 0 && errno != EAGAIN && errno != EINTR) || written == input.size()) in_w.close();
      } else {
        Fd& f = fds[k].fd == out_r.fd ? out_r : err_r;
        std::string& dst = &f == &out_r ? o.out : o.err;
        const ssize_t r = ::read(f.fd, buf, sizeof buf);
        if (r > 0) {
          dst.append(buf, static_cast<size_t>(r));
          if (&f == &err_r && o.err.size() > 4 * kStderrTail) o.err.erase(0, o.err.size() - kStderrTail);
          if (o.out.size() > kMaxStdout) {
            o.failure = "printed more than " + std::to_string(kMaxStdout >> 20) + " MiB on stdout";
            return o;
          }
        } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
          f.close();
        }
      }
    }
  }
  // Both outputs are closed: the command is exiting (or closed them and went on running).
  while (!child.try_reap()) {
    if (remaining_ms() == 0) return timed_out();
    usleep(1000);
  }
  if (WIFSIGNALED(child.status)) {
    const int sig = WTERMSIG(child.status);
    o.failure = "was killed by signal " + std::to_string(sig) + " (" + strsignal(sig) + ")";
  } else if (WIFEXITED(child.status) && WEXITSTATUS(child.status) != 0) {
    const int code = WEXITSTATUS(child.status);
    o.failure = "exited with status " + std::to_string(code);
    // sh -c runs the command as its child and reports a crash as 128 + the signal.
    if (code > 128 && code - 128 < NSIG)
      o.failure += " (the shell's code for a command killed by signal " + std::to_string(code - 128) + " (" +
                   strsignal(code - 128) + "))";
  }
  return o;
}

// A whole line as a score: a finite number, or nan / null (undefined). False when it is neither.
bool parse_score(std::string line, double* v) {
  while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
  size_t b = 0;
  while (b < line.size() && std::isspace(static_cast<unsigned char>(line[b]))) ++b;
  line.erase(0, b);
  if (line == "nan" || line == "NaN" || line == "null") {
    *v = std::nan("");
    return true;
  }
  if (line.empty()) return false;
  char* end = nullptr;
  *v = std::strtod(line.c_str(), &end);
  return end == line.c_str() + line.size() && std::isfinite(*v);
}

class CommandReward : public RewardSource {
 public:
  CommandReward(std::string spec, std::string command, double timeout_s, bool skip)
      : spec_(std::move(spec)), command_(std::move(command)), timeout_s_(timeout_s), skip_(skip) {}

  RewardResult score(const std::vector<RewardSample>& batch) override {
    const auto t0 = std::chrono::steady_clock::now();
    std::string input;
    for (const RewardSample& s : batch) {
      nlohmann::json row = s.extra.is_object() ? s.extra : nlohmann::json::object();
      row["prompt"] = text_to_json(s.prompt);
      row["completion"] = s.completion;
      input += row.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      input += '\n';
    }
    RunOutcome run = run_command(command_, input, timeout_s_);
    RewardResult r;
    r.scores.assign(batch.size(), std::nan(""));
    int64_t bad_lines = 0;
    std::string failure = run.failure;
    std::vector<std::string> lines;
    if (failure.empty()) {
      size_t b = 0;
      while (b < run.out.size()) {
        size_t e = run.out.find('\n', b);
        if (e == std::string::npos) e = run.out.size();
        lines.push_back(run.out.substr(b, e - b));
        b = e + 1;
      }
      if (lines.size() != batch.size())
        failure = "printed " + std::to_string(lines.size()) + " lines for " + std::to_string(batch.size()) +
                  " samples (one score per line expected)";
    }
    if (!failure.empty() && !skip_) fail(failure, run.err);
    if (failure.empty()) {
      for (size_t i = 0; i < lines.size(); ++i) {
        if (parse_score(lines[i], &r.scores[i])) continue;
        if (!skip_) {
          const std::string shown = lines[i].substr(0, 200);
          fail("printed '" + shown + "' on stdout line " + std::to_string(i + 1) + ", which is not a number (nor nan / null)",
               run.err);
        }
        r.scores[i] = std::nan("");
        ++bad_lines;
      }
    }
    r.metrics.emplace_back("failed_batches", failure.empty() ? 0.0 : 1.0);
    r.metrics.emplace_back("bad_lines", static_cast<double>(bad_lines));
    r.metrics.emplace_back("seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    return r;
  }

 private:
  [[noreturn]] void fail(const std::string& what, const std::string& err) const {
    std::string msg = "reward '" + spec_ + "': command `" + command_ + "` " + what;
    if (!err.empty()) msg += "; its stderr ends with:\n" + tail(err);
    throw InputError(msg);
  }

  std::string spec_, command_;
  double timeout_s_;
  bool skip_;
};

}  // namespace

std::unique_ptr<RewardSource> make_command_reward(const RewardSpec& spec, SpecOptions& opt) {
  if (spec.arg.empty()) opt.fail("cmd needs a command line after ':'");
  const double timeout = opt.number("timeout", 60);
  if (!(timeout > 0)) opt.fail("timeout must be positive (seconds)");
  const std::string on_error = opt.str("on_error", "fail");
  if (on_error != "fail" && on_error != "skip") opt.fail("on_error must be fail or skip, got '" + on_error + "'");
  return std::make_unique<CommandReward>(spec.text, spec.arg, timeout, on_error == "skip");
}

}  // namespace rlhf::rollout
