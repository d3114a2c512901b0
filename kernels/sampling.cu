#include "kernels/sampling.cuh"

#include "kernels/sampling-kernel.cuh"

namespace herd::kernels {

cudaError_t sample(const float* logits, int64_t stride, int n_vocab, const SampleRow* rows, int n_rows,
                   const int32_t* penalty_ids, const int32_t* penalty_counts, float* work, SampleOut* out,
                   cudaStream_t stream) {
  if (n_rows == 0) return cudaSuccess;
  if (n_vocab <= 0 || n_vocab > kSampleMaxVocab) return cudaErrorInvalidValue;
  sampling::sample_kernel<<<unsigned(n_rows), sampling::kThreads, sizeof(sampling::Smem), stream>>>(
      logits, stride, n_vocab, rows, penalty_ids, penalty_counts, work, out);
  HERD_LAUNCH_CHECK();
}

}  // namespace herd::kernels
