#include "model/quantize.h"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <sys/mman.h>
#include <unistd.h>

#include "common/check.h"
#include "common/json-limits.h"
#include "common/quant.h"
#include "common/threadpool.h"

namespace herd {

namespace fs = std::filesystem;

namespace {

bool is_gguf(QuantFormat f) { return f != QuantFormat::fp8 && f != QuantFormat::awq && f != QuantFormat::gptq; }

bool path_exists(const fs::path& p) {
  std::error_code ec;
  return fs::symlink_status(p, ec).type() != fs::file_type::not_found;
}

// The input, checked before anything is written: a Hugging Face directory of unquantized weights.
QuantizeInput read_input(const std::string& dir) {
  std::error_code ec;
  const fs::file_status st = fs::status(dir, ec);
  if (st.type() == fs::file_type::not_found) throw Error(ErrorKind::not_found, dir + ": no such file or directory");
  HERD_REQUIRE(fs::is_directory(st), dir,
               ": not a model directory; herd quantize reads a Hugging Face directory (config.json and *.safetensors)");
  const fs::path config = fs::path(dir) / "config.json";
  HERD_REQUIRE(path_exists(config), dir, ": missing config.json; herd quantize reads Hugging Face model directories");
  QuantizeInput in;
  in.dir = dir;
  in.config_text = read_text_file(config.string());
  const std::optional<nlohmann::json> cfg = parse_json_limited(in.config_text, config.string());
  HERD_REQUIRE(cfg && cfg->is_object(), config.string(), ": not a JSON object");
  if (auto it = cfg->find("quantization_config"); it != cfg->end() && !it->is_null()) {
    const std::string method = it->is_object() && it->contains("quant_method") && (*it)["quant_method"].is_string()
                                   ? (*it)["quant_method"].get<std::string>()
                                   : "unknown";
    fail_input(config.string(), ": the model is already quantized (quantization_config.quant_method \"", method,
               "\"); herd quantize reads BF16, F16 or F32 weights");
  }
  in.files = load_model_files(dir);
  const ModelConfig& c = in.files.config;
  const HostWeights& w = in.files.weights;
  auto add = [&](std::string name, const TensorView& v, int64_t layer, std::string kind, bool linear) {
    HERD_REQUIRE(v.dtype == DType::bf16 || v.dtype == DType::f16 || v.dtype == DType::f32, dir, ": tensor \"", name,
                 "\" is ", dtype_name(v.dtype), "; herd quantize reads BF16, F16 or F32 weights");
    in.tensors.push_back({std::move(name), v, layer, std::move(kind), linear});
  };
  add("model.embed_tokens.weight", w.tok_embd, -1, "embed_tokens", false);
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const LayerWeights& lw = w.layers[size_t(l)];
    const std::string p = str_cat("model.layers.", l, ".");
    add(p + "input_layernorm.weight", lw.attn_norm, l, "input_layernorm", false);
    add(p + "self_attn.q_proj.weight", lw.wq, l, "q_proj", true);
    add(p + "self_attn.k_proj.weight", lw.wk, l, "k_proj", true);
    add(p + "self_attn.v_proj.weight", lw.wv, l, "v_proj", true);
    add(p + "self_attn.o_proj.weight", lw.wo, l, "o_proj", true);
    add(p + "post_attention_layernorm.weight", lw.ffn_norm, l, "post_attention_layernorm", false);
    add(p + "mlp.gate_proj.weight", lw.w_gate, l, "gate_proj", true);
    add(p + "mlp.up_proj.weight", lw.w_up, l, "up_proj", true);
    add(p + "mlp.down_proj.weight", lw.w_down, l, "down_proj", true);
  }
  add("model.norm.weight", w.output_norm, -1, "norm", false);
  if (!c.tied_embeddings) add("lm_head.weight", w.output, -1, "lm_head", false);
  return in;
}

// Removes a partly written output unless released.
class PartialOutput {
 public:
  explicit PartialOutput(fs::path p) : path_(std::move(p)) {}
  ~PartialOutput() {
    if (!released_) {
      std::error_code ec;
      fs::remove_all(path_, ec);
    }
  }
  void release() { released_ = true; }

 private:
  fs::path path_;
  bool released_ = false;
};

}  // namespace

void NonFinite::note(int64_t index) {
  for (int64_t cur = first_.load(); index < cur && !first_.compare_exchange_weak(cur, index);) {
  }
}

void NonFinite::check(const SourceTensor& t) const {
  const int64_t i = first_.load();
  if (i == INT64_MAX) return;
  const int64_t cols = t.view.shape.back();
  fail_input("tensor \"", t.name, "\" holds a non-finite value at row ", i / cols, ", column ", i % cols,
             "; it cannot be quantized");
}

void read_row_f32(const SourceTensor& t, int64_t r, float* dst, NonFinite& bad) {
  const int64_t cols = t.view.shape.back();
  const auto* src = static_cast<const uint8_t*>(t.view.data) + dtype_nbytes(t.view.dtype, r * cols);
  dequantize_row(t.view.dtype, src, dst, cols);
  for (int64_t c = 0; c < cols; ++c)
    if (!std::isfinite(dst[c])) {
      bad.note(r * cols + c);
      return;
    }
}

QuantizeTracker::QuantizeTracker(const QuantizeInput& in, const QuantizeCallback& cb) : cb_(cb) {
  for (const SourceTensor& t : in.tensors) step_.total_bytes += int64_t(t.view.nbytes());
  step_.total_tensors = int64_t(in.tensors.size());
}

void QuantizeTracker::start() {
  if (cb_) cb_(step_);  // nothing done yet
}

void QuantizeTracker::done(const SourceTensor& t, const std::string& written_as) {
  // The input is read once, in order: its pages need not stay resident (they are the mapped file's,
  // read back from it if touched again), so the process holds about one tensor at a time.
  const auto page = uintptr_t(::sysconf(_SC_PAGESIZE));
  const auto begin = (uintptr_t(t.view.data) + page - 1) / page * page;
  const auto end = (uintptr_t(t.view.data) + t.view.nbytes()) / page * page;
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
  step_.done_bytes += int64_t(t.view.nbytes());
  ++step_.done_tensors;
  step_.tensor = written_as;
  if (cb_) cb_(step_);
}

void quantize_model_dir(const std::string& in_dir, const std::string& out, const QuantizeSettings& s,
                        const QuantizeCallback& on_step) {
  HERD_REQUIRE(!out.empty(), "the output path is empty");
  fs::path out_path = fs::path(out).lexically_normal();
  if (!out_path.has_filename() && out_path.has_parent_path()) out_path = out_path.parent_path();  // "dir/"
  HERD_REQUIRE(out_path.has_filename() && out_path.filename() != "..", out, ": not a file or directory name");
  HERD_REQUIRE(!path_exists(out_path), out,
               ": already exists; herd quantize never overwrites (remove it or choose another path)");
  const fs::path parent = out_path.has_parent_path() ? out_path.parent_path() : fs::path(".");
  std::error_code ec;
  HERD_REQUIRE(fs::is_directory(parent, ec), out, ": the directory ", parent.string(), " does not exist");
  if (!is_gguf(s.format)) {
    HERD_REQUIRE(s.group_size > 0 && s.group_size % 32 == 0, "group size ", s.group_size,
                 " is not a positive multiple of 32");
  }

  const QuantizeInput in = read_input(in_dir);
  ThreadPool pool(s.n_threads);
  QuantizeTracker tracker(in, on_step);
  const fs::path tmp = parent / str_cat(".", out_path.filename().string(), ".partial-", ::getpid());
  HERD_REQUIRE(!path_exists(tmp), tmp.string(), ": already exists (a leftover of an interrupted run?); remove it");
  PartialOutput partial(tmp);
  if (is_gguf(s.format)) {
    write_quantized_gguf(in, tmp.string(), s, pool, tracker);
  } else {
    HERD_REQUIRE(fs::create_directory(tmp, ec), tmp.string(), ": cannot create: ", ec.message());
    write_quantized_checkpoint(in, tmp.string(), s, pool, tracker);
  }
  // RENAME_NOREPLACE: a path that appeared at out meanwhile is never replaced.
  if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, out_path.c_str(), RENAME_NOREPLACE) != 0) {
    const int err = errno;
    HERD_REQUIRE(err != EEXIST, out, ": already exists; herd quantize never overwrites");
    fail_input(out, ": cannot move the finished output into place: ", std::strerror(err));
  }
  partial.release();
}

}  // namespace herd
