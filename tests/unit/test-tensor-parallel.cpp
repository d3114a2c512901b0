// Tensor parallelism on the CPU: the in-process group's collectives, the model split over 2 to 8
// ranks against the same model on one (the transformers comparison is in test-reference-logits),
// and a failing or missing rank ending every call with one clear error, never a hang.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <future>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/check.h"
#include "dist/launch-env.h"
#include "dist/thread-group.h"
#include "engine/tensor-parallel.h"
#include "herd/herd.h"
#include "model/model-dir.h"

namespace herd {
namespace {

using namespace std::chrono_literals;

const std::string kModels = std::string(HERD_TEST_DATA) + "/models/";

std::vector<int32_t> reference_ids(const std::string& name) {
  std::ifstream f(std::string(HERD_TEST_DATA) + "/reference/" + name + ".json");
  return nlohmann::json::parse(f)["input_ids"].get<std::vector<int32_t>>();
}

Tensor host_f32(std::vector<float>& v) {
  return Tensor{DType::f32, {int64_t(v.size())}, std::shared_ptr<void>(std::shared_ptr<void>{}, v.data())};
}

// Runs fn(rank, communicator) on one thread per rank; returns each rank's exception message ("" if none).
std::vector<std::string> on_ranks(std::vector<std::unique_ptr<Communicator>>& comms,
                                  const std::function<void(int, Communicator&)>& fn) {
  std::vector<std::string> errors(comms.size());
  std::vector<std::thread> threads;
  for (size_t r = 0; r < comms.size(); ++r)
    threads.emplace_back([&, r] {
      try {
        fn(int(r), *comms[r]);
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  for (std::thread& t : threads) t.join();
  return errors;
}

// A launcher's environment as a map, for launch_env_from.
std::optional<LaunchEnv> env_of(const std::map<std::string, std::string>& vars) {
  return launch_env_from([&](const char* name) -> const char* {
    const auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  });
}

std::string env_error(const std::map<std::string, std::string>& vars) {
  try {
    env_of(vars);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::invalid_input);
    return e.what();
  }
  return "";
}

TEST(LaunchEnv, TorchrunOpenMpiAndTheirMistakes) {
  EXPECT_FALSE(env_of({}).has_value());
  const std::map<std::string, std::string> torch = {{"WORLD_SIZE", "4"}, {"RANK", "2"}, {"LOCAL_RANK", "1"},
                                                    {"MASTER_ADDR", "node0"}, {"MASTER_PORT", "29500"}};
  std::optional<LaunchEnv> e = env_of(torch);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->world_size, 4);
  EXPECT_EQ(e->rank, 2);
  EXPECT_EQ(e->local_rank, 1);
  EXPECT_EQ(e->master_addr, "node0");
  EXPECT_EQ(e->master_port, 29500);
  // Under torchrun its own store holds MASTER_PORT: herd takes the next one, or HERD_TP_PORT.
  auto under_torchrun = torch;
  under_torchrun["TORCHELASTIC_RUN_ID"] = "none";
  EXPECT_EQ(env_of(under_torchrun)->master_port, 29501);
  under_torchrun["HERD_TP_PORT"] = "31000";
  EXPECT_EQ(env_of(under_torchrun)->master_port, 31000);
  // mpirun's variables, with the address and port exported.
  e = env_of({{"OMPI_COMM_WORLD_SIZE", "2"}, {"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
              {"MASTER_ADDR", "10.0.0.1"}, {"MASTER_PORT", "29500"}});
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->world_size, 2);
  EXPECT_EQ(e->rank, 1);
  EXPECT_EQ(e->local_rank, 1);
  // A world of one needs nothing else.
  EXPECT_EQ(env_of({{"WORLD_SIZE", "1"}})->world_size, 1);

  auto without = [&](const char* name) {
    auto v = torch;
    v.erase(name);
    return v;
  };
  EXPECT_NE(env_error(without("MASTER_ADDR")).find("needs MASTER_ADDR"), std::string::npos);
  EXPECT_NE(env_error(without("MASTER_PORT")).find("needs MASTER_PORT"), std::string::npos);
  EXPECT_NE(env_error(without("RANK")).find("needs RANK"), std::string::npos);
  for (const auto& [name, value] : {std::pair{"WORLD_SIZE", "0"}, {"WORLD_SIZE", "4x"}, {"RANK", "4"}, {"RANK", "-1"},
                                    {"MASTER_PORT", "65536"}, {"LOCAL_RANK", ""}}) {
    auto bad = torch;
    bad[name] = value;
    EXPECT_NE(env_error(bad).find(str_cat("environment variable ", name, "=\"", value, "\"")), std::string::npos)
        << name << "=" << value;
  }
}

TEST(ThreadGroup, CollectivesSumGatherAndBroadcast) {
  for (int size : {1, 2, 3, 8}) {
    auto comms = make_thread_group(size, 10s);
    const auto n = static_cast<size_t>(size);
    std::vector<std::vector<float>> sums(n), gathered(n);
    std::vector<std::vector<uint8_t>> received(n);
    const auto errors = on_ranks(comms, [&](int r, Communicator& c) {
      // 1001 elements: chunks of unequal size. Element i of rank r holds r + i / 1000.
      std::vector<float>& x = sums[size_t(r)];
      for (int i = 0; i < 1001; ++i) x.push_back(float(r) + float(i) / 1000.0f);
      Tensor t = host_f32(x);
      c.all_reduce_sum(t);
      std::vector<float> mine = {float(r), float(10 * r)};
      gathered[size_t(r)].resize(size_t(2 * size));
      Tensor in = host_f32(mine), out = host_f32(gathered[size_t(r)]);
      c.all_gather(in, out);
      if (r == size - 1) received[size_t(r)] = {1, 2, 3};
      c.broadcast_host(received[size_t(r)], size - 1);
    });
    for (int r = 0; r < size; ++r) {
      ASSERT_EQ(errors[size_t(r)], "");
      for (int i = 0; i < 1001; ++i) {
        float want = 0.0f;  // summed in rank order, as the group does
        for (int k = 0; k < size; ++k) want += float(k) + float(i) / 1000.0f;
        ASSERT_EQ(sums[size_t(r)][size_t(i)], want) << "size " << size << " rank " << r << " element " << i;
      }
      for (int k = 0; k < size; ++k) {
        EXPECT_EQ(gathered[size_t(r)][size_t(2 * k)], float(k));
        EXPECT_EQ(gathered[size_t(r)][size_t(2 * k + 1)], float(10 * k));
      }
      EXPECT_EQ(received[size_t(r)], (std::vector<uint8_t>{1, 2, 3}));
    }
  }
}

TEST(ThreadGroup, ARankThatNeverArrivesFailsTheGroupWithinTheTimeout) {
  auto comms = make_thread_group(3, 300ms);
  const auto start = std::chrono::steady_clock::now();
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::vector<std::string> errors;
  std::thread late([&] {
    errors = on_ranks(comms, [&](int r, Communicator& c) {
      if (r == 2) {
        released.wait();  // stuck until rank 0 has given up
        std::vector<uint8_t> none;
        c.broadcast_host(none, 0);
        return;
      }
      std::vector<uint8_t> data = {7};
      c.broadcast_host(data, 0);
    });
  });
  // Rank 0 gives up after the timeout; then rank 2 arrives, to a dead group.
  std::this_thread::sleep_for(1s);
  release.set_value();
  late.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  for (const std::string& e : errors) EXPECT_NE(e.find("rank 2 did not reach a collective"), std::string::npos) << e;
}

TEST(ThreadGroup, AbortWakesEveryWaitingRank) {
  auto comms = make_thread_group(4, 10s);
  const auto errors = on_ranks(comms, [&](int r, Communicator& c) {
    if (r == 3) {
      std::this_thread::sleep_for(100ms);
      c.abort("rank 3 failed: out of memory");
      return;
    }
    std::vector<uint8_t> data;
    c.broadcast_host(data, 0);
  });
  for (int r = 0; r < 3; ++r)
    EXPECT_NE(errors[size_t(r)].find("rank 3 failed: out of memory"), std::string::npos) << errors[size_t(r)];
}

// The logits of the model split over tp ranks equal those of one rank up to the order of the sums
// (1e-5 of the largest logit), and greedy decoding gives the same tokens.
void expect_split_equals_whole(const std::string& name, int tp) {
  ModelOptions o;
  o.device = "cpu";
  o.n_threads = 2;
  o.max_context = 128;
  o.exact = true;
  std::unique_ptr<Model> whole, split;
  ASSERT_TRUE(Model::load(kModels + name, o, &whole));
  o.tensor_parallel = tp;
  const Status loaded = Model::load(kModels + name, o, &split);
  ASSERT_TRUE(loaded) << loaded.message();
  EXPECT_EQ(split->info().tensor_parallel, tp);
  const std::vector<int32_t> ids = reference_ids(name);
  std::vector<float> a, b;
  ASSERT_TRUE(whole->logits(ids, true, &a));
  ASSERT_TRUE(split->logits(ids, true, &b));
  ASSERT_EQ(a.size(), b.size());
  float max_ref = 0.0f, max_diff = 0.0f;
  for (size_t i = 0; i < a.size(); ++i) {
    max_ref = std::max(max_ref, std::fabs(a[i]));
    max_diff = std::max(max_diff, std::fabs(a[i] - b[i]));
  }
  EXPECT_LE(max_diff, 1e-5f * max_ref) << name << " at tp " << tp;
  std::vector<int32_t> ga, gb;
  ASSERT_TRUE(whole->generate_greedy(ids, 24, &ga));
  ASSERT_TRUE(split->generate_greedy(ids, 24, &gb));
  EXPECT_EQ(ga, gb) << name << " at tp " << tp;
}

TEST(TensorParallel, SplitEqualsWholeWithKvHeadsSplitOrReplicated) {
  for (const char* name : {"gqa8x2-hd16-untied-llama3", "gqa8x4-hd16-untied-llama3", "mha8-hd16-tied"})
    for (int tp : {2, 4, 8}) expect_split_equals_whole(name, tp);
  for (int tp : {2, 4}) expect_split_equals_whole("gqa4-hd32-untied-llama3", tp);  // one KV head, replicated
}

TEST(TensorParallel, DegreesThatDoNotSplitTheModelAreRefused) {
  ModelOptions o;
  o.device = "cpu";
  std::unique_ptr<Model> m;
  o.tensor_parallel = 3;
  Status s = Model::load(kModels + "gqa8x4-hd16-untied-llama3", o, &m);
  EXPECT_EQ(s.code(), Status::Code::invalid_input);
  EXPECT_NE(s.message().find("cannot run at tensor-parallel degree 3: it must divide the 8 attention heads"),
            std::string::npos) << s.message();
  o.tensor_parallel = 16;  // a multiple of the KV heads, but more ranks than query heads
  s = Model::load(kModels + "gqa8x4-hd16-untied-llama3", o, &m);
  EXPECT_NE(s.message().find("it must divide the 8 attention heads"), std::string::npos) << s.message();
  o.tensor_parallel = 0;
  s = Model::load(kModels + "gqa8x4-hd16-untied-llama3", o, &m);
  EXPECT_EQ(s.code(), Status::Code::invalid_input) << s.message();
}

// A communicator that fails rank `bad`'s n-th all-reduce: after `delay`, by throwing.
class Failing final : public Communicator {
 public:
  Failing(std::unique_ptr<Communicator> c, int n, std::chrono::milliseconds delay)
      : c_(std::move(c)), left_(n), delay_(delay) {}
  int rank() const override { return c_->rank(); }
  int size() const override { return c_->size(); }
  void all_reduce_sum(Tensor& x) override {
    if (--left_ == 0) {
      std::this_thread::sleep_for(delay_);
      throw Error(ErrorKind::internal, "injected fault");
    }
    c_->all_reduce_sum(x);
  }
  void all_gather(const Tensor& in, Tensor& out) override { c_->all_gather(in, out); }
  void broadcast_host(std::vector<uint8_t>& data, int root) override { c_->broadcast_host(data, root); }
  void abort(const std::string& why) override { c_->abort(why); }

 private:
  std::unique_ptr<Communicator> c_;
  int left_;
  std::chrono::milliseconds delay_;
};

// One decode-free step: the first 8 reference ids of a sequence in blocks 1.., logits at the end.
Batch step(const std::string& name) {
  const auto ids = reference_ids(name);
  Batch b;
  b.add_sequence({ids.begin(), ids.begin() + 8}, 0, 8, {1, 2}, 16, 1);
  return b;
}

void expect_fault_stops_group(std::chrono::milliseconds delay, std::chrono::milliseconds timeout,
                              const std::string& want) {
  const std::string name = "gqa8x4-hd16-untied-llama3";
  const ModelFiles files = load_model_files(kModels + name);
  auto comms = make_thread_group(4, timeout);
  // A step all-reduces 5 times (the embedding, then 2 per layer): the 8th falls mid-way through the second.
  comms[2] = std::make_unique<Failing>(std::move(comms[2]), 8, delay);
  const std::unique_ptr<Backend> be = make_cpu_backend(1);
  const auto start = std::chrono::steady_clock::now();
  {
    TensorParallelModel m(files.config, files.weights, *be, [](int) { return make_cpu_backend(1); }, std::move(comms));
    m.allocate_kv(8, 16);
    EXPECT_EQ(m.forward(step(name)).size(), size_t(files.config.n_vocab));
    try {
      m.forward(step(name));
      ADD_FAILURE() << "the failed rank went unnoticed";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    }
    // The group is dead: later calls fail at once, with the same reason.
    try {
      m.forward(step(name));
      ADD_FAILURE() << "a dead group ran a step";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    }
  }  // and its destructor does not wait for ranks that will never answer
  EXPECT_LT(std::chrono::steady_clock::now() - start, delay + 5s);
}

TEST(TensorParallel, ARankThatFailsMidStepStopsTheGroup) {
  expect_fault_stops_group(0ms, 30s, "rank 2 failed: injected fault");
}

TEST(TensorParallel, ARankThatHangsMidStepStopsTheGroupAfterTheTimeout) {
  expect_fault_stops_group(1500ms, 300ms, "rank 2 did not reach a collective within 0.3 s");
}

}  // namespace
}  // namespace herd
