#include "tokenizer-fixture.h"

#include <nlohmann/json.hpp>

namespace herd_test {

std::vector<Vector> load_vectors(const std::string& name) {
  std::vector<Vector> out;
  std::istringstream in(read_file(data_path(name)));
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line);
    out.push_back({j.at("text").get<std::string>(), j.at("ids").get<std::vector<int32_t>>()});
  }
  return out;
}

std::vector<Vector> load_llamacpp_vectors() {
  const std::string inp = read_file(data_path("llamacpp-llama-bpe.inp"));
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<Vector> out;
  for (size_t pos = 0, end; (end = inp.find(sep, pos)) != std::string::npos; pos = end + sep.size())
    out.push_back({inp.substr(pos, end - pos), {}});
  std::istringstream lines(read_file(data_path("llamacpp-llama-bpe.out")));
  std::string line;
  for (Vector& v : out) {
    if (!std::getline(lines, line)) break;
    std::istringstream ids(line);
    for (int32_t id; ids >> id;) v.ids.push_back(id);
  }
  return out;
}

}  // namespace herd_test
