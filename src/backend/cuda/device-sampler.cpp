#include "backend/cuda/device-sampler.h"

namespace herd {

namespace k = herd::kernels;

std::vector<SampledToken> DeviceSampler::run(const float* logits, int64_t n_rows, int64_t n_vocab,
                                             std::span<const SampleSpec> specs) {
  if (specs.empty()) return {};
  HERD_CHECK(n_vocab > 0 && n_vocab <= k::kSampleMaxVocab, "device sampling: a vocabulary of ", n_vocab,
             " tokens (at most ", k::kSampleMaxVocab, ")");
  size_t n_penalty = 0;
  for (const SampleSpec& s : specs) n_penalty += s.penalty_ids.size();
  host_rows_.clear();
  host_penalties_.assign(2 * n_penalty, 0);
  size_t at = 0;
  for (const SampleSpec& s : specs) {
    HERD_CHECK(s.row >= 0 && s.row < n_rows, "device sampling: row ", s.row, " of ", n_rows);
    HERD_CHECK(s.n_top >= 0 && s.n_top <= k::kSampleMaxTop, "device sampling: ", s.n_top, " logprobs");
    HERD_CHECK(s.penalty_ids.size() == s.penalty_counts.size(), "device sampling: penalty ids and counts differ");
    HERD_CHECK(s.u >= 0.0 && s.u < 1.0, "device sampling: draw ", s.u, " outside [0, 1)");
    HERD_CHECK(s.score_token < n_vocab, "device sampling: scored token ", s.score_token);
    for (int32_t id : s.penalty_ids) HERD_CHECK(id >= 0 && id < n_vocab, "device sampling: penalty token ", id);
    const SamplingParams& p = s.params;
    const bool penalised = p.penalised();
    k::SampleRow r{};
    r.row = s.row;
    r.temperature = p.temperature;
    r.top_k = p.top_k;
    r.top_p = p.top_p;
    r.min_p = p.min_p;
    r.repetition_penalty = p.repetition_penalty;
    r.frequency_penalty = p.frequency_penalty;
    r.presence_penalty = p.presence_penalty;
    r.penalty_begin = int32_t(at);
    if (penalised) {
      std::copy(s.penalty_ids.begin(), s.penalty_ids.end(), host_penalties_.begin() + ptrdiff_t(at));
      std::copy(s.penalty_counts.begin(), s.penalty_counts.end(),
                host_penalties_.begin() + ptrdiff_t(n_penalty + at));
      at += s.penalty_ids.size();
    }
    r.penalty_end = int32_t(at);
    r.n_top = s.n_top;
    r.score_token = s.score_token;
    r.u = s.u;
    host_rows_.push_back(r);
  }
  const size_t n = specs.size();
  auto* rows = static_cast<k::SampleRow*>(rows_.get(n * sizeof(k::SampleRow), stream_));
  // At least one word, so that the pointers are valid with no penalties.
  auto* pen = static_cast<int32_t*>(penalties_.get(std::max<size_t>(1, 2 * n_penalty) * sizeof(int32_t), stream_));
  auto* work = static_cast<float*>(work_.get(n * size_t(n_vocab) * sizeof(float), stream_));
  auto* out = static_cast<k::SampleOut*>(out_.get(n * sizeof(k::SampleOut), stream_));
  HERD_CUDA_CHECK(cudaMemcpyAsync(rows, host_rows_.data(), n * sizeof(k::SampleRow), cudaMemcpyHostToDevice, stream_));
  if (n_penalty > 0)
    HERD_CUDA_CHECK(cudaMemcpyAsync(pen, host_penalties_.data(), host_penalties_.size() * sizeof(int32_t),
                                    cudaMemcpyHostToDevice, stream_));
  HERD_CUDA_CHECK(k::sample(logits, n_vocab, int(n_vocab), rows, int(n), pen, pen + n_penalty, work, out, stream_));
  host_out_.resize(n);
  HERD_CUDA_CHECK(cudaMemcpyAsync(host_out_.data(), out, n * sizeof(k::SampleOut), cudaMemcpyDeviceToHost, stream_));
  HERD_CUDA_CHECK(cudaStreamSynchronize(stream_));

  std::vector<SampledToken> result(n);
  for (size_t i = 0; i < n; ++i) {
    const k::SampleOut& o = host_out_[i];
    result[i].id = o.id;
    if (o.id < 0 || (specs[i].n_top == 0 && specs[i].score_token < 0)) continue;
    result[i].logprob = o.logprob;
    const int n_top = int(std::min<int64_t>(specs[i].n_top, n_vocab));
    for (int j = 0; j < n_top; ++j) result[i].top.emplace_back(o.top_id[j], o.top_logprob[j]);
  }
  return result;
}

}  // namespace herd
