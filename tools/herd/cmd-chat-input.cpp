// Ctrl-C and line input for `herd chat`. At the prompt, libedit gets Ctrl-C as a key (the
// terminal's ISIG is off while it edits), so no signal interrupts it; during a reply the
// terminal is back in cooked mode and Ctrl-C arrives as SIGINT, which the watcher turns into
// Engine::cancel. While a prompt waits, a terminal on both ends is asked for bracketed paste.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "cmd-chat.h"

#ifdef HERD_HAVE_LIBEDIT
#include <histedit.h>
#endif

namespace herd_cli::chat {
namespace {

int g_signal_fd = -1;  // the write end of Interrupts' pipe, for the handler
struct sigaction g_old_action;

void on_sigint(int) {
  const int saved = errno;
  const char byte = 'i';
  [[maybe_unused]] ssize_t n = write(g_signal_fd, &byte, 1);
  errno = saved;
}

void drain(int fd) {
  char buf[64];
  while (read(fd, buf, sizeof buf) > 0) {
  }
}

// Bracketed paste on for the time a prompt waits: replies and tool prompts see plain input.
class PasteMode {
 public:
  explicit PasteMode(bool interactive) : on_(interactive && isatty(STDOUT_FILENO)) {
    if (on_) write_out("\x1b[?2004h");
  }
  ~PasteMode() {
    if (on_) write_out("\x1b[?2004l");
  }
  PasteMode(const PasteMode&) = delete;
  PasteMode& operator=(const PasteMode&) = delete;

 private:
  static void write_out(const char* s) {
    std::fputs(s, stdout);
    std::fflush(stdout);
  }
  bool on_;
};

// Plain reads of fd 0 (buffered here, not by stdio, so that poll() sees the truth). Used for
// piped input and as the interactive fallback without libedit.
class PlainReader : public LineReader {
 public:
  PlainReader(bool interactive, Interrupts* interrupts) : interactive_(interactive), interrupts_(interrupts) {}

  ReadStatus read(const std::string& prompt, std::string* line) override {
    if (interactive_ && interrupts_) drain(interrupts_->wake_fd());  // a Ctrl-C that stopped a reply
    // The terminal's line discipline passes the paste markers through; read_message joins the lines.
    const PasteMode paste(interactive_);
    if (interactive_) {
      std::fwrite(prompt.data(), 1, prompt.size(), stdout);
      std::fflush(stdout);
    }
    for (;;) {
      if (const size_t nl = buffer_.find('\n'); nl != std::string::npos) {
        *line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return ReadStatus::line;
      }
      if (eof_) {
        if (buffer_.empty()) return ReadStatus::eof;
        *line = std::move(buffer_);  // a last line without its newline
        buffer_.clear();
        return ReadStatus::line;
      }
      pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {interrupts_ ? interrupts_->wake_fd() : -1, POLLIN, 0}};
      if (poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        return ReadStatus::eof;
      }
      if (fds[1].revents & POLLIN) {
        drain(fds[1].fd);
        interrupts_->flag() = false;
        line->clear();  // what was typed stays in the terminal's buffer, out of reach
        std::fputc('\n', stdout);
        return ReadStatus::interrupted;
      }
      char buf[4096];
      const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
      if (n > 0) buffer_.append(buf, size_t(n));
      else if (n == 0 || errno != EINTR) eof_ = true;
    }
  }
  void remember(const std::string&) override {}  // the terminal's own line discipline only

 private:
  bool interactive_;
  Interrupts* interrupts_;
  std::string buffer_;
  bool eof_ = false;
};

#ifdef HERD_HAVE_LIBEDIT
class EditLineReader : public LineReader {
 public:
  explicit EditLineReader(std::string history_file) : history_file_(std::move(history_file)) {
    el_ = el_init("herd", stdin, stdout, stderr);
    history_ = history_init();
    HistEvent ev;
    history(history_, &ev, H_SETSIZE, 1000);
    history(history_, &ev, H_SETUNIQUE, 1);
    if (!history_file_.empty()) history(history_, &ev, H_LOAD, history_file_.c_str());  // absent at first
    el_set(el_, EL_CLIENTDATA, this);
    el_set(el_, EL_EDITOR, "emacs");
    el_set(el_, EL_PROMPT, &EditLineReader::prompt_of);
    el_set(el_, EL_HIST, history, history_);
    // Ctrl-C as a key while editing: it ends the line as interrupted instead of raising SIGINT.
    el_set(el_, EL_SETTY, "-d", "-isig", nullptr);
    el_set(el_, EL_ADDFN, "herd-interrupt", "Drop the line (twice at an empty prompt: quit)", &EditLineReader::on_ctrl_c);
    el_set(el_, EL_BIND, "^C", "herd-interrupt", nullptr);
    el_set(el_, EL_ADDFN, "herd-paste", "Insert a bracketed paste as it is, newlines included", &EditLineReader::on_paste);
    el_set(el_, EL_BIND, std::string(kPasteStart).c_str(), "herd-paste", nullptr);
    el_source(el_, nullptr);  // the user's ~/.editrc
  }
  ~EditLineReader() override {
    el_end(el_);
    history_end(history_);
  }

  ReadStatus read(const std::string& prompt, std::string* line) override {
    prompt_ = prompt;
    interrupted_ = false;
    int count = 0;
    const PasteMode paste(true);
    const char* text = el_gets(el_, &count);
    line->assign(text && count > 0 ? text : "", text && count > 0 ? size_t(count) : 0);
    if (!line->empty() && line->back() == '\n') line->pop_back();
    if (interrupted_) return ReadStatus::interrupted;
    if (!text || count <= 0) return ReadStatus::eof;
    return ReadStatus::line;
  }
  void remember(const std::string& entry) override {
    HistEvent ev;
    history(history_, &ev, H_ENTER, entry.c_str());
    if (history_file_.empty()) return;
    // Saved at once, so that a chat that ends any way keeps what was typed.
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(history_file_).parent_path(), ec);
    if (history(history_, &ev, H_SAVE, history_file_.c_str()) < 0) {
      std::cerr << "herd: warning: cannot write the history file " << history_file_ << " (--no-history keeps none)\n";
      history_file_.clear();
    }
  }

 private:
  static EditLineReader* self(EditLine* el) {
    EditLineReader* r = nullptr;
    el_get(el, EL_CLIENTDATA, &r);
    return r;
  }
  static char* prompt_of(EditLine* el) { return self(el)->prompt_.data(); }
  static unsigned char on_ctrl_c(EditLine* el, int) {
    self(el)->interrupted_ = true;
    return CC_NEWLINE;
  }
  // After the paste-start marker: everything up to the end marker goes into the line, the
  // terminal's carriage returns as newlines, so that Enter sends the block as one message.
  static unsigned char on_paste(EditLine* el, int) {
    static const std::wstring end(kPasteEnd.begin(), kPasteEnd.end());
    std::wstring text;
    wchar_t c = 0;
    while (el_wgetc(el, &c) == 1) {
      text += c == L'\r' ? L'\n' : c;
      if (text.ends_with(end)) {
        text.resize(text.size() - end.size());
        break;
      }
    }
    if (!text.empty()) el_winsertstr(el, text.c_str());
    return CC_REFRESH;
  }

  std::string history_file_;
  EditLine* el_ = nullptr;
  History* history_ = nullptr;
  std::string prompt_;
  bool interrupted_ = false;
};
#endif

}  // namespace

Interrupts::Interrupts() {
  int sig[2];
  if (pipe2(sig, O_CLOEXEC) != 0 || pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) {
    std::cerr << "herd: warning: Ctrl-C handling is unavailable (no pipe)\n";
    return;
  }
  g_signal_fd = sig[1];
  watcher_ = std::thread([this, read_fd = sig[0]] {
    for (;;) {
      char byte = 0;
      const ssize_t got = ::read(read_fd, &byte, 1);
      if (got < 0 && errno == EINTR) continue;
      if (got != 1 || byte == 'q') break;
      if (byte != 'i') continue;
      flag_ = true;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (engine_) engine_->cancel(id_);
      }
      const char wake = 'w';
      [[maybe_unused]] ssize_t n = write(wake_[1], &wake, 1);
    }
    close(read_fd);
  });
  struct sigaction sa = {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, &g_old_action);
}

Interrupts::~Interrupts() {
  if (!watcher_.joinable()) return;
  sigaction(SIGINT, &g_old_action, nullptr);
  const char quit = 'q';
  [[maybe_unused]] ssize_t n = write(g_signal_fd, &quit, 1);
  watcher_.join();
  close(g_signal_fd);
  g_signal_fd = -1;
  close(wake_[0]);
  close(wake_[1]);
}

void Interrupts::watch(herd::Engine* engine, herd::RequestId id) {
  std::lock_guard<std::mutex> lock(mu_);
  engine_ = engine;
  id_ = id;
}

void Interrupts::clear() {
  std::lock_guard<std::mutex> lock(mu_);
  engine_ = nullptr;
}

bool have_line_editing() {
#ifdef HERD_HAVE_LIBEDIT
  return true;
#else
  return false;
#endif
}

std::unique_ptr<LineReader> make_line_reader(bool interactive, Interrupts* interrupts, const std::string& history_file) {
#ifdef HERD_HAVE_LIBEDIT
  if (interactive) return std::make_unique<EditLineReader>(history_file);
#else
  (void)history_file;  // plain reads keep no history
#endif
  return std::make_unique<PlainReader>(interactive, interrupts);
}

std::string default_history_file() {
  const char* data = std::getenv("XDG_DATA_HOME");
  const char* home = std::getenv("HOME");
  // The XDG base directory spec ignores a relative XDG_DATA_HOME.
  if (data && data[0] == '/') return std::string(data) + "/herd/history";
  if (home && home[0]) return std::string(home) + "/.local/share/herd/history";
  return "";
}

}  // namespace herd_cli::chat
