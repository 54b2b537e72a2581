// A child process as one stage of a byte stream: `age -r` / `age -d` in the blob pipeline,
// `ssh-keygen -Y sign/verify` for sidecars, and dump or restore tools (pg_dump, pg_restore)
// that only produce or only consume bytes. posix_spawn(3) with pipes; one poll(2) loop on the
// caller's thread feeds the child's stdin and drains its stdout and stderr together, so a
// child blocked on a full stdout pipe never deadlocks against us blocked on its full stdin
// pipe. Nothing goes through a temporary file.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <exception>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "util/byte_stream.hpp"
#include "util/cancel.hpp"

namespace bartl {

/// How to start a ChildStream.
struct ChildStreamSpec {
    std::vector<std::string> argv;           ///< argv[0]: a path, or a name looked up in PATH
    std::map<std::string, std::string> env;  ///< added to (overriding) our environment
    bool input = true;                       ///< stdin is a pipe we feed; else /dev/null
    bool output = true;                      ///< stdout is a pipe we drain; else /dev/null
    /// Extra descriptors for the child, {child fd, our fd}: e.g. {3, memfd} with "/dev/fd/3"
    /// in argv hands it an in-memory file. Our fds are not closed.
    std::vector<std::pair<int, int>> fds;
    /// Checked between poll rounds (at least every 100 ms): once cancelled, the call in
    /// progress kills the child and throws StopRequested.
    CancelToken cancel = CancelToken::process();
    std::string what;                        ///< names the child in messages ("age -d"); "" = argv[0]
    std::size_t stderr_limit = 16 * 1024;    ///< bytes of stderr kept for messages (the tail)
    /// read(): a thread of the stream's own pulls from `in` and feeds the child's stdin, so
    /// that pulling (a store read, hashing) overlaps with the child's work and with what the
    /// caller does with its output (restore: `age -d` beside SHA-256 and zstd -d), instead of
    /// taking turns on the caller's thread. `in` is then used by that thread alone, from the
    /// first read() until read() returns 0 or throws (or the stream is destroyed).
    bool feed_thread = false;
};

/// A child that did not exit with status 0, or stopped reading its input early. what() is
/// "WHAT exited with status 1: <its stderr>" (or "killed by signal 9 (SIGKILL)").
class ChildFailed : public RuntimeError {
public:
    ChildFailed(const std::string& message, int exit_status, int term_signal, std::string stderr_text)
        : RuntimeError(message), exit_status(exit_status), term_signal(term_signal), stderr_text(std::move(stderr_text)) {}
    int exit_status;          ///< exit code, -1 when killed by a signal
    int term_signal;          ///< signal number, 0 when it exited
    std::string stderr_text;  ///< the tail of its stderr, trailing newlines removed
};

/// One running child with its stdin, stdout and stderr connected to us. Used by one thread at
/// a time. The child gets its own process group, an empty signal mask, default signal
/// dispositions and no descriptors but 0, 1, 2 and `spec.fds`. Destroying it before finish()
/// or read() returned 0 (an exception, a cancelled stream) kills the process group with
/// SIGKILL and reaps the child: no child outlives its stream.
class ChildStream {
public:
    /// Starts the child. Throws RuntimeError "cannot start ARGV0: <strerror>" (not installed,
    /// not executable), naming WHAT.
    explicit ChildStream(ChildStreamSpec spec);
    ~ChildStream();
    ChildStream(const ChildStream&) = delete;
    ChildStream& operator=(const ChildStream&) = delete;

    /// Filter or sink: writes `n` bytes to the child's stdin, passing what it writes to its
    /// stdout to `out` meanwhile (nullptr without `spec.output`). Throws ChildFailed when the
    /// child exits or closes its stdin first, what `out` throws, StopRequested.
    void write(const void* data, std::size_t n, ByteSink* out);

    /// Filter or source: reads up to `n` (> 0) bytes of the child's stdout, feeding its stdin
    /// from `in` (nullptr without `spec.input`) while the child wants input; `in` at its end
    /// closes the child's stdin. With `spec.feed_thread` the first call starts the feeding
    /// thread with `in` (later calls pass the same `in`). Returns 0 only at the end of stdout,
    /// once the child has exited with status 0. Throws ChildFailed, what `in` throws (the
    /// child is then killed), StopRequested.
    std::size_t read(void* data, std::size_t n, ByteSource* in);

    /// Filter or sink: closes the child's stdin, passes the rest of its stdout to `out`, waits
    /// for it to exit. Throws ChildFailed unless it exited with status 0, StopRequested.
    void finish(ByteSink* out);

    /// The child's process ID (its process group ID too).
    pid_t pid() const noexcept { return pid_; }
    /// What the child wrote to stderr so far (the last `stderr_limit` bytes).
    const std::string& stderr_text() const noexcept { return err_text_; }
    /// What names it in messages.
    const std::string& what() const noexcept { return what_; }

private:
    struct Round;
    void poll_round(bool want_in, bool want_out, Round& r);
    void drain_stderr();
    void close_input();
    void wait_exit();
    [[noreturn]] void fail_stopped_reading();
    void kill_and_reap() noexcept;
    std::size_t read_fed(void* data, std::size_t n, ByteSource* in);
    void feed(ByteSource* in) noexcept;
    void join_feeder();

    ChildStreamSpec spec_;
    std::string what_;
    pid_t pid_ = -1;
    bool reaped_ = false;
    int in_ = -1;   // our end of the child's stdin
    int out_ = -1;  // our end of its stdout
    int err_ = -1;  // our end of its stderr
    std::string err_text_;
    std::vector<char> inbuf_;   // read(): input taken from `in`, not yet written
    std::size_t inpos_ = 0;
    bool in_done_ = false;      // read(): `in` reached its end
    std::vector<char> outbuf_;  // write()/finish(): stdout bytes on their way to `out`
    unsigned rounds_ = 0;
    // feed_thread: after the start of feeder_, in_ is the feeder's alone until it is joined.
    bool feeder_started_ = false;
    std::atomic<bool> feeder_stop_{false};
    std::exception_ptr feeder_error_;  // what `in` (or a write) threw, set before the thread ends
    std::thread feeder_;
};

/// What run_child() collected.
struct ChildOutput {
    std::string out;  ///< everything the child wrote to stdout
    std::string err;  ///< the tail of its stderr
};

/// Runs a child to completion with `input` on its stdin, collecting stdout (at most
/// `max_output` bytes, else RuntimeError) and stderr: for small jobs such as signing a
/// sidecar. Throws as ChildStream (ChildFailed for a non-zero exit).
ChildOutput run_child(ChildStreamSpec spec, const std::string& input, std::size_t max_output = 1 << 20);

/// An in-memory file (memfd_create(2)) holding `content`, positioned at its start, for
/// ChildStreamSpec::fds; the caller closes it. `name` shows in /proc. Throws RuntimeError.
int memory_file(const char* name, const std::string& content);

}  // namespace bartl
