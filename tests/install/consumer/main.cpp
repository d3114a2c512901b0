// A program built only against the installed herd package: load a model, run it, handle errors.
#include <herd/herd.h>

#include <iostream>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  std::unique_ptr<herd::Model> model;
  herd::ModelOptions options;
  options.device = "cpu";
  if (herd::Model::load("/no/such/model", options, &model).code() != herd::Status::Code::invalid_input) return 1;
  if (auto s = herd::Model::load(argv[1], options, &model); !s) {
    std::cerr << s.message() << "\n";
    return 1;
  }
  std::vector<int32_t> out;
  if (!model->generate_greedy({1, 2, 3}, 4, &out)) return 1;
  std::cout << "consumer: n_vocab " << model->info().n_vocab << ", generated " << out.size() << " tokens\n";
  return out.empty() ? 1 : 0;
}
