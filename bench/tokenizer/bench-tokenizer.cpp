// Tokenizer throughput: encode one file (the corpus run.py assembles) with the public API,
// single thread, several times; print MB/s as JSON. --ids FILE also writes the ids (one per
// line) so that run.py can check them against tiktoken's.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "herd/tokenizer.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: bench-tokenizer TOKENIZER CORPUS [REPS] [--ids FILE]\n";
    return 2;
  }
  const int reps = argc > 3 && argv[3][0] != '-' ? std::stoi(argv[3]) : 5;
  std::string ids_path;
  for (int i = 3; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--ids") ids_path = argv[i + 1];

  std::unique_ptr<herd::Tokenizer> tok;
  if (herd::Status s = herd::Tokenizer::load(argv[1], &tok); !s) {
    std::cerr << "bench-tokenizer: " << s.message() << "\n";
    return 2;
  }
  std::ifstream in(argv[2], std::ios::binary);
  std::stringstream buf;
  buf << in.rdbuf();
  const std::string text = buf.str();

  std::vector<double> mb_s;
  std::vector<int32_t> ids;
  for (int r = 0; r < reps; ++r) {
    ids.clear();
    const auto t0 = std::chrono::steady_clock::now();
    (void)tok->encode(text, false, false, &ids);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    mb_s.push_back(text.size() / 1e6 / s);
  }
  if (!ids_path.empty()) {
    std::ofstream out(ids_path);
    for (int32_t id : ids) out << id << '\n';
  }
  std::vector<double> sorted = mb_s;
  std::sort(sorted.begin(), sorted.end());
  std::printf("{\"bytes\": %zu, \"tokens\": %zu, \"mb_s_median\": %.2f, \"mb_s_min\": %.2f, \"mb_s_max\": %.2f}\n",
              text.size(), ids.size(), sorted[sorted.size() / 2], sorted.front(), sorted.back());
  return 0;
}
