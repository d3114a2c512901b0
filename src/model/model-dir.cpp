#include "model/model-dir.h"

#include <filesystem>

#include "common/check.h"
#include "common/gguf-file.h"
#include "model/load-gguf.h"
#include "model/load-meta-pth.h"

namespace herd {

namespace fs = std::filesystem;

namespace {

// Whether the directory may have an entry of that name, whatever it is: a FIFO, a dangling link,
// a symlink loop or an unsearchable path named config.json is read, and refused with its reason,
// rather than taken for a missing file.
bool has_entry(const fs::path& p) {
  std::error_code ec;
  return fs::symlink_status(p, ec).type() != fs::file_type::not_found;
}

}  // namespace

ModelFiles load_model_files(const std::string& path, float meta_rope_factor, const std::optional<Shard>& only_rank) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (st.type() == fs::file_type::not_found) throw Error(ErrorKind::not_found, path + ": no such file or directory");
  HERD_REQUIRE(!ec, path, ": ", ec.message());
  if (is_gguf_file(path)) return load_gguf_model(path, only_rank);
  HERD_REQUIRE(fs::is_directory(st), path,
               ": not a model directory (expected config.json and *.safetensors) or a GGUF file");
  ModelFiles m;
  m.dir = path;
  const fs::path hf = fs::path(path) / "config.json", meta = fs::path(path) / "params.json";
  NameScheme scheme;
  if (has_entry(hf)) {
    m.config = parse_hf_config(read_text_file(hf.string()), hf.string());
    scheme = NameScheme::hf;
  } else if (has_entry(meta)) {
    m.config = parse_meta_params(read_text_file(meta.string()), meta.string(), meta_rope_factor);
    scheme = NameScheme::meta;
  } else {
    fail_input(path, ": missing config.json (Hugging Face) or params.json (Meta)");
  }
  const fs::path gen = fs::path(path) / "generation_config.json";
  if (has_entry(gen)) {
    m.generation = parse_generation_config(read_text_file(gen.string()), gen.string(), &m.config.eos_ids);
    validate_config(m.config, gen.string());
  }
  const std::vector<std::string> pth =
      scheme == NameScheme::meta ? find_meta_pth_shards(path) : std::vector<std::string>{};
  m.weights = pth.empty() ? load_safetensors_weights(path, m.config, scheme, only_rank)
                          : load_meta_pth_weights(pth, m.config, path, only_rank);
  return m;
}

}  // namespace herd
