#include "sampling/sampler.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <string>

#include "common/check.h"

namespace herd {

namespace {

// Descending by value, ties by lower id: one total order, so every step is deterministic.
bool before(const TokenProb& a, const TokenProb& b) {
  return a.p > b.p || (a.p == b.p && a.id < b.id);
}

// A first block of this many candidates usually holds the whole nucleus, so top-p without top-k
// rarely sorts more than a sliver of the vocabulary.
constexpr size_t k_nucleus_first_block = 256;

}  // namespace

void validate(const SamplingParams& s) {
  std::string problems;
  auto add = [&](const std::string& what) { problems += (problems.empty() ? "" : "; ") + what; };
  if (!(s.temperature >= 0.0f) || !std::isfinite(s.temperature))
    add(str_cat("temperature must be >= 0 and finite, got ", s.temperature));
  if (s.top_k < 0) add(str_cat("top_k must be >= 0 (0: off), got ", s.top_k));
  if (!(s.top_p > 0.0f && s.top_p <= 1.0f)) add(str_cat("top_p must be in (0, 1], got ", s.top_p));
  if (!(s.min_p >= 0.0f && s.min_p <= 1.0f)) add(str_cat("min_p must be in [0, 1], got ", s.min_p));
  if (!(s.repetition_penalty > 0.0f) || !std::isfinite(s.repetition_penalty))
    add(str_cat("repetition_penalty must be > 0 and finite (1: off), got ", s.repetition_penalty));
  if (!std::isfinite(s.frequency_penalty))
    add(str_cat("frequency_penalty must be finite, got ", s.frequency_penalty));
  if (!std::isfinite(s.presence_penalty))
    add(str_cat("presence_penalty must be finite, got ", s.presence_penalty));
  if (!problems.empty()) fail_input("sampling parameters: ", problems);
}

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {
  validate(params_);
}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> prompt,
                        std::span<const int32_t> generated) {
  std::span<const TokenProb> dist = distribution(logits, prompt, generated);
  if (params_.greedy()) return dist[0].id;
  return pick(dist, draw());
}

int32_t Sampler::pick(std::span<const TokenProb> dist, double u) {
  // Inverse CDF over the kept tokens, in double so that the tail is reachable.
  double cum = 0.0;
  for (const TokenProb& t : dist) {
    cum += t.p;
    if (u < cum) return t.id;
  }
  return dist.back().id;  // u beyond a cumulative sum that rounding left just under 1
}

std::span<const TokenProb> Sampler::distribution(std::span<const float> logits,
                                                 std::span<const int32_t> prompt,
                                                 std::span<const int32_t> generated) {
  if (!params_.penalised()) return distribution(logits, PenaltyList{});
  // Every id checked before anything changes.
  for (std::span<const int32_t> ids : {prompt, generated})
    for (int32_t id : ids)
      HERD_CHECK(id >= 0 && size_t(id) < logits.size(), "token id ", id, " outside [0, ", logits.size(), ")");
  penalties_.reset(prompt);
  penalties_.update(generated);
  return distribution(logits, penalties_.list());
}

std::span<const TokenProb> Sampler::distribution(std::span<const float> logits, PenaltyList penalties) {
  HERD_CHECK(!logits.empty(), "empty logits row");
  // Penalties need a writable copy of the row; without them the caller's row is read in place.
  std::span<const float> row = logits;
  if (params_.penalised()) {
    logits_.assign(logits.begin(), logits.end());
    apply_penalties(penalties);
    row = logits_;
  }

  cands_.clear();
  if (params_.greedy()) {
    // The first maximum, as torch.argmax and HF's greedy search pick it.
    cands_.push_back({int32_t(std::max_element(row.begin(), row.end()) - row.begin()), 1.0f});
    return cands_;
  }

  // Until the softmax below, cands_[i].p holds the penalised logit: top-k orders by logit, which
  // a positive temperature does not change.
  cands_.resize(row.size());
  for (size_t i = 0; i < row.size(); ++i) cands_[i] = {int32_t(i), row[i]};
  sorted_ = false;
  keep_top_k();

  // Temperature inside the softmax: (logit - max) / T <= 0, so exp never overflows, and a scale
  // capped at FLT_MAX turns a tiny T into a one-hot row (0 * scale = 0, negative * scale = -inf)
  // instead of inf - inf = NaN.
  const float max_logit =
      sorted_ ? cands_[0].p
              : std::max_element(cands_.begin(), cands_.end(),
                                 [](const TokenProb& a, const TokenProb& b) { return a.p < b.p; })
                    ->p;
  HERD_CHECK(std::isfinite(max_logit), "the logits row has no finite maximum");
  const float scale = float(std::min(1.0 / double(params_.temperature), double(FLT_MAX)));
  for (TokenProb& t : cands_) t.p = std::exp((t.p - max_logit) * scale);
  normalise();

  keep_top_p();
  keep_min_p();
  if (params_.top_p < 1.0f || params_.min_p > 0.0f) normalise();  // over what they kept
  return cands_;
}

void Sampler::normalise() {
  double sum = 0.0;
  for (const TokenProb& t : cands_) sum += t.p;
  const float inv = float(1.0 / sum);
  for (TokenProb& t : cands_) t.p *= inv;
}

void Sampler::apply_penalties(PenaltyList penalties) {
  const std::span<const int32_t> ids = penalties.ids, counts = penalties.counts;
  HERD_CHECK(ids.size() == counts.size(), ids.size(), " penalised ids with ", counts.size(), " counts");
  const size_t n_vocab = logits_.size();
  for (int32_t id : ids) HERD_CHECK(id >= 0 && size_t(id) < n_vocab, "token id ", id, " outside [0, ", n_vocab, ")");
  // Each distinct token once however often it occurs: repetition over prompt and output, then
  // frequency (per occurrence) and presence (once) over the output alone.
  const float rp = params_.repetition_penalty;
  for (size_t j = 0; j < ids.size(); ++j) {
    float& l = logits_[size_t(ids[j])];
    if (rp != 1.0f) l = l < 0.0f ? l * rp : l / rp;
    if (counts[j] > 0) l -= float(counts[j]) * params_.frequency_penalty + params_.presence_penalty;
  }
}

void Sampler::keep_top_k() {
  const size_t k = size_t(params_.top_k);
  if (k == 0 || k >= cands_.size()) return;
  // O(n_vocab log k), and leaves the kept tokens sorted for top-p.
  std::partial_sort(cands_.begin(), cands_.begin() + ptrdiff_t(k), cands_.end(), before);
  cands_.resize(k);
  sorted_ = true;
}

void Sampler::keep_top_p() {
  if (params_.top_p >= 1.0f) return;
  const double top_p = params_.top_p;
  // The last token kept is the first whose cumulative probability reaches top_p (HF: a token is
  // dropped when the mass before it is >= top_p). Unsorted, the row is ordered in growing blocks
  // (select the next block with nth_element, sort only it), which usually stops at the first.
  const size_t n = cands_.size();
  size_t done = 0;  // cands_[0, done) is sorted and ranks above every later candidate
  size_t block_end = sorted_ ? n : std::min(n, k_nucleus_first_block);
  double cum = 0.0;
  for (;;) {
    if (!sorted_) {
      auto first = cands_.begin() + ptrdiff_t(done), last = cands_.begin() + ptrdiff_t(block_end);
      std::nth_element(first, last - 1, cands_.end(), before);
      std::sort(first, last, before);
    }
    for (size_t i = done; i < block_end; ++i) {
      cum += cands_[i].p;
      if (cum >= top_p) {
        cands_.resize(i + 1);
        sorted_ = true;
        return;
      }
    }
    if (block_end == n) {
      sorted_ = true;  // the whole row sums to just under top_p through rounding: keep it all
      return;
    }
    done = block_end;
    block_end = std::min(n, block_end * 4);
  }
}

void Sampler::keep_min_p() {
  if (params_.min_p <= 0.0f) return;
  float p_max = 0.0f;
  for (const TokenProb& t : cands_) p_max = std::max(p_max, t.p);
  // The largest token always survives (p_max >= min_p * p_max), so the set is never empty.
  const float threshold = params_.min_p * p_max;
  std::erase_if(cands_, [&](const TokenProb& t) { return t.p < threshold; });
}

double Sampler::draw() {
  // The top 53 bits as a double in [0, 1): specified exactly, unlike
  // std::uniform_real_distribution, whose output differs between standard libraries.
  return double(rng_() >> 11) * 0x1.0p-53;
}

}  // namespace herd
