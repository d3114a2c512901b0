#include "model/llama.h"

#include "common/check.h"
#include "model/decode-shape.h"
#include "model/rope.h"

namespace herd {

namespace {

// Elements [offset, offset + numel(shape)) of t, as their own tensor sharing t's memory.
Tensor slice(const Tensor& t, int64_t offset, Shape shape) {
  void* p = static_cast<char*>(t.data()) + offset * int64_t(dtype_size(t.dtype));
  return Tensor{t.dtype, std::move(shape), std::shared_ptr<void>(t.storage, p)};
}

}  // namespace

LlamaModel::LlamaModel(const ModelConfig& c, const HostWeights& w, Backend& backend, Communicator* comm)
    : c_(c), be_(backend), comm_(comm && comm->size() > 1 ? comm : nullptr), record_decode_(backend.can_capture()) {
  const Shard shard = comm_ ? Shard{comm_->rank(), comm_->size()} : Shard{};
  if (comm_ && !w.layers.empty())
    check_tensor_parallel(c, shard.size, w.layers[0].wo.dtype, w.layers[0].w_down.dtype);
  d_ = shard_dims(c, shard);
  const int64_t hd = c.head_dim;
  tok_embd_ = upload_rows(w.tok_embd, d_.vocab0, d_.n_vocab);
  output_norm_ = be_.upload_weight(w.output_norm);
  output_ = c.tied_embeddings ? tok_embd_ : upload_rows(w.output, d_.vocab0, d_.n_vocab);
  const std::vector<float> inv_freq = rope_inv_freq(c);
  inv_freq_ = be_.alloc(DType::f32, {int64_t(inv_freq.size())});
  be_.write(inv_freq_, inv_freq.data(), inv_freq.size() * sizeof(float));
  for (const LayerWeights& lw : w.layers) {
    Layer l;
    l.attn_norm = be_.upload_weight(lw.attn_norm);
    l.wq = upload_rows(lw.wq, d_.head0 * hd, d_.n_head * hd);
    l.wk = upload_rows(lw.wk, d_.head_kv0 * hd, d_.n_head_kv * hd);
    l.wv = upload_rows(lw.wv, d_.head_kv0 * hd, d_.n_head_kv * hd);
    l.wo = upload_cols(lw.wo, d_.head0 * hd, d_.n_head * hd);
    l.ffn_norm = be_.upload_weight(lw.ffn_norm);
    l.w_gate = upload_rows(lw.w_gate, d_.ff0, d_.n_ff);
    l.w_up = upload_rows(lw.w_up, d_.ff0, d_.n_ff);
    l.w_down = upload_cols(lw.w_down, d_.ff0, d_.n_ff);
    l.kv_scales = {lw.k_scale, lw.v_scale};
    layers_.push_back(std::move(l));
  }
}

Tensor LlamaModel::upload_rows(const TensorView& t, int64_t first, int64_t count) {
  return be_.upload_weight(comm_ ? slice_rows(t, first, count) : t);
}

Tensor LlamaModel::upload_cols(const TensorView& t, int64_t first, int64_t count) {
  if (!comm_) return be_.upload_weight(t);
  std::vector<uint8_t>& copy = owned_.emplace_back();
  Tensor w = be_.upload_weight(slice_cols(t, first, count, copy));
  // A backend that copied the slice (a GPU's) no longer needs it; the CPU backend aliases it.
  if (w.data() != copy.data()) owned_.pop_back();
  return w;
}

void LlamaModel::all_reduce(Tensor& x) {
  if (comm_) comm_->all_reduce_sum(x);
}

void LlamaModel::allocate_kv(int32_t n_blocks, int32_t block_size) {
  block_size_ = block_size;
  ++model_epoch_;
  for (Layer& l : layers_) {
    l.k_cache = be_.alloc(be_.kv_dtype(), {n_blocks, d_.n_head_kv, block_size, c_.head_dim});
    l.v_cache = be_.alloc(be_.kv_dtype(), {n_blocks, d_.n_head_kv, block_size, c_.head_dim});
  }
}

void LlamaModel::copy_blocks(const std::vector<std::pair<int32_t, int32_t>>& from_to) {
  if (from_to.empty()) return;
  for (Layer& l : layers_) {
    be_.copy_blocks(l.k_cache, from_to);
    be_.copy_blocks(l.v_cache, from_to);
  }
}

Tensor LlamaModel::reuse(Tensor& buf, DType dtype, Shape shape) {
  if (buf.storage == nullptr || buf.numel() < shape_numel(shape)) {
    buf = be_.alloc(dtype, {shape_numel(shape)});
    ++model_epoch_;
  }
  return view_as(buf, std::move(shape));
}

void LlamaModel::ensure_scratch(int64_t n) {
  if (n <= s_.cap) return;
  ++model_epoch_;
  const int64_t q_dim = d_.n_head * c_.head_dim, kv_dim = d_.n_head_kv * c_.head_dim;
  s_.x = be_.alloc(DType::f32, {n, c_.n_embd});
  s_.xn = be_.alloc(DType::f32, {n, c_.n_embd});
  s_.q = be_.alloc(DType::f32, {n, q_dim});
  s_.attn = be_.alloc(DType::f32, {n, q_dim});
  s_.k = be_.alloc(DType::f32, {n, kv_dim});
  s_.v = be_.alloc(DType::f32, {n, kv_dim});
  s_.gate = be_.alloc(DType::f32, {n, d_.n_ff});
  s_.up = be_.alloc(DType::f32, {n, d_.n_ff});
  s_.cap = n;
}

Tensor LlamaModel::run(const Batch& b) {
  HERD_CHECK(b.n_tokens() > 0 && b.logits_rows.size() <= size_t(b.n_tokens()) &&
             int64_t(b.query_start_loc.size()) == b.n_seqs() + 1);
  HERD_CHECK(block_size_ > 0, "forward before allocate_kv");
  if (record_decode_ && !comm_)
    if (const auto shape = decode_shape(b)) return run_recorded(b, *shape);
  const std::vector<int32_t> host = step_ints(b);
  Tensor ints = reuse(ints_, DType::i32, {int64_t(host.size())});
  be_.write(ints, host.data(), host.size() * sizeof(int32_t));
  return compute(b, ints);
}

Tensor LlamaModel::run_recorded(const Batch& b, const DecodeShape& shape) {
  const Batch p = pad_decode(b, shape);
  // Recordings of shapes not seen for the longest are dropped past kMaxRecordings: a server's mix of
  // batch sizes and context lengths could otherwise keep hundreds of graphs alive.
  if (!recorded_.contains(shape) && recorded_.size() >= kMaxRecordings) {
    auto oldest = recorded_.begin();
    for (auto it = recorded_.begin(); it != recorded_.end(); ++it)
      if (it->second.last_used < oldest->second.last_used) oldest = it;
    recorded_.erase(oldest);
  }
  Recorded& r = recorded_[shape];
  r.last_used = ++n_decode_steps_;
  // The step's inputs go where the recording reads them: the shape's own buffer, allocated once (it
  // is no other recording's, so making it leaves them valid).
  const std::vector<int32_t> host = step_ints(p);
  if (r.ints.numel() != int64_t(host.size())) {
    r.ints = be_.alloc(DType::i32, {int64_t(host.size())});
    r.graph.reset();
  }
  be_.write(r.ints, host.data(), host.size() * sizeof(int32_t));
  const Tensor& ints = r.ints;
  if (r.graph && (r.backend_epoch != be_.memory_epoch() || r.model_epoch != model_epoch_)) r.graph.reset();
  if (r.graph) {
    r.graph->replay();
    return r.logits;
  }
  // The first step of a shape runs as it is, sizing every buffer it needs: recording allocates nothing.
  if (!r.warm) {
    r.warm = true;
    return compute(p, ints);
  }
  if (!be_.begin_capture()) {
    record_decode_ = false;  // a backend that does not record (the CPU's)
    return compute(p, ints);
  }
  try {
    r.logits = compute(p, ints);
  } catch (...) {
    be_.end_capture();  // nothing ran: run it
    record_decode_ = false;
    return compute(p, ints);
  }
  r.graph = be_.end_capture();
  if (!r.graph) {
    record_decode_ = false;
    return compute(p, ints);
  }
  r.backend_epoch = be_.memory_epoch();
  r.model_epoch = model_epoch_;
  r.graph->replay();
  return r.logits;
}

std::vector<int32_t> LlamaModel::step_ints(const Batch& b) const {
  const int64_t n = b.n_tokens(), n_rows = int64_t(b.logits_rows.size()), n_ranks = comm_ ? comm_->size() : 1;
  // Every int32 array of the step in one upload: ids, positions, slots, qsl, seq_lens, rows, table,
  // and with several ranks the order that interleaves their logits slices (compute()).
  std::vector<int32_t> host;
  for (const auto* a : {&b.ids, &b.positions, &b.slot_mapping, &b.query_start_loc, &b.seq_lens, &b.logits_rows,
                        &b.block_table})
    host.insert(host.end(), a->begin(), a->end());
  if (comm_) {
    // This rank's vocabulary rows of the embedding: an id another rank holds reads as a zero row,
    // so that the sum over the ranks is the embedding.
    for (int64_t i = 0; i < n; ++i) {
      const int64_t local = b.ids[size_t(i)] - d_.vocab0;
      host[size_t(i)] = local >= 0 && local < d_.n_vocab ? int32_t(local) : -1;
    }
    for (int64_t row = 0; row < n_rows; ++row)
      for (int64_t r = 0; r < n_ranks; ++r) host.push_back(int32_t(r * n_rows + row));
  }
  return host;
}

Tensor LlamaModel::compute(const Batch& b, const Tensor& ints) {
  const int64_t n = b.n_tokens(), n_seqs = b.n_seqs(), n_rows = int64_t(b.logits_rows.size());
  // n_rows may be 0: a prefill chunk that ends before its prompt does needs no logits.
  ensure_scratch(n);
  const int64_t hd = c_.head_dim, n_head = d_.n_head, n_head_kv = d_.n_head_kv, n_ff = d_.n_ff;
  const int64_t q_dim = n_head * hd, kv_dim = n_head_kv * hd, n_ranks = comm_ ? comm_->size() : 1;
  int64_t at = 0;
  auto next = [&](Shape shape) {
    Tensor t = slice(ints, at, shape);
    at += shape_numel(shape);
    return t;
  };
  const Tensor ids = next({n});                            // i32[n_tokens]
  const Tensor pos = next({n});                            // i32[n_tokens]
  const Tensor slots = next({n});                          // i32[n_tokens]
  const Tensor qsl = next({n_seqs + 1});                   // i32[n_seqs + 1]
  const Tensor seq_lens = next({n_seqs});                  // i32[n_seqs]
  const Tensor rows = next({n_rows});                      // i32[n_rows]
  const Tensor table = next({n_seqs, b.max_blocks});       // i32[n_seqs, max_blocks]
  const Tensor interleave = next({comm_ ? n_rows * n_ranks : 0});  // i32[n_rows * n_ranks]

  Tensor x = view_as(s_.x, {n, c_.n_embd});          // [n_tokens, n_embd]: the residual stream
  Tensor xn = view_as(s_.xn, {n, c_.n_embd});        // [n_tokens, n_embd]: a norm of x, or a block's output
  Tensor q = view_as(s_.q, {n, n_head, hd});         // [n_tokens, n_head, head_dim]
  Tensor k = view_as(s_.k, {n, n_head_kv, hd});      // [n_tokens, n_head_kv, head_dim]
  Tensor v = view_as(s_.v, {n, n_head_kv, hd});      // [n_tokens, n_head_kv, head_dim]
  Tensor attn = view_as(s_.attn, {n, q_dim});        // [n_tokens, n_head * head_dim]
  Tensor gate = view_as(s_.gate, {n, n_ff});         // [n_tokens, n_ff]
  Tensor up = view_as(s_.up, {n, n_ff});             // [n_tokens, n_ff]
  // q, k, v as the projections write them: [n_tokens, n_head * head_dim], [n_tokens, n_head_kv * head_dim]
  Tensor q_flat = view_as(s_.q, {n, q_dim}), k_flat = view_as(s_.k, {n, kv_dim}), v_flat = view_as(s_.v, {n, kv_dim});

  // Each residual add runs fused with the norm that reads its result: the attention output's with
  // ffn_norm, the FFN output's with the next layer's attn_norm. Only the first norm stands alone,
  // and the last FFN output's add is fused with the output norm on the picked rows (below).
  be_.embed(tok_embd_, ids, x);
  all_reduce(x);
  be_.rms_norm(x, layers_.front().attn_norm, c_.norm_eps, xn);
  for (size_t il = 0; il < layers_.size(); ++il) {
    Layer& l = layers_[il];
    // attention block; on entry xn = attn_norm(x)
    const MatmulOut qkv[] = {{l.wq, q_flat}, {l.wk, k_flat}, {l.wv, v_flat}};
    be_.matmul_shared(xn, qkv);
    be_.rope_kv_write(q, k, v, pos, inv_freq_, slots, l.k_cache, l.v_cache, l.kv_scales);
    be_.attention(q, l.k_cache, l.v_cache, qsl, seq_lens, table, attn, l.kv_scales);
    be_.matmul(attn, l.wo, xn);                              // xn is free again: the output projection
    all_reduce(xn);
    be_.add_rms_norm(x, xn, l.ffn_norm, c_.norm_eps, xn);    // x += attention; xn = ffn_norm(x)
    // feed-forward block (SwiGLU)
    be_.swiglu(xn, l.w_gate, l.w_up, gate, up);            // gate = silu(gate proj) * up proj
    be_.matmul(gate, l.w_down, xn);                          // xn = the FFN output, not yet added to x
    all_reduce(xn);
    if (il + 1 < layers_.size())
      be_.add_rms_norm(x, xn, layers_[il + 1].attn_norm, c_.norm_eps, xn);  // x += FFN; xn = next attn_norm(x)
  }

  if (n_rows == 0) return Tensor{DType::f32, {0, c_.n_vocab}, nullptr};  // only the KV writes were wanted

  // The last residual add, the final norm and the LM head, on the requested rows only: the add is
  // per row, so picking the rows of x and of the last FFN output first and adding them there gives
  // the same values as adding over all n_tokens rows, without the pass over all of them.
  Tensor picked = reuse(picked_, DType::f32, {n_rows, c_.n_embd});        // [n_rows, n_embd]: x's rows
  be_.embed(x, rows, picked);
  Tensor picked_n = reuse(picked_norm_, DType::f32, {n_rows, c_.n_embd});  // [n_rows, n_embd]: the FFN's rows
  be_.embed(xn, rows, picked_n);
  be_.add_rms_norm(picked, picked_n, output_norm_, c_.norm_eps, picked_n);  // picked_n = output_norm(x + FFN)
  Tensor logits = reuse(logits_, DType::f32, {n_rows, c_.n_vocab});      // [n_rows, n_vocab]
  if (!comm_) {
    be_.matmul(picked_n, output_, logits);
    return logits;
  }
  // Each rank's LM head rows give a [n_rows, n_vocab / n_ranks] slice; gathered, the slices stand
  // rank after rank ([n_ranks * n_rows, slice] as rows), and the interleave order picks them row by
  // row, rank by rank: [n_rows * n_ranks, slice] rows, which is [n_rows, n_vocab].
  Tensor local = reuse(logits_local_, DType::f32, {n_rows, d_.n_vocab});
  be_.matmul(picked_n, output_, local);
  Tensor gathered = reuse(logits_gathered_, DType::f32, {n_ranks, n_rows, d_.n_vocab});
  comm_->all_gather(local, gathered);
  Tensor as_rows = view_as(gathered, {n_ranks * n_rows, d_.n_vocab});
  Tensor out_rows = view_as(logits, {n_rows * n_ranks, d_.n_vocab});
  be_.embed(as_rows, interleave, out_rows);
  return logits;
}

std::vector<float> LlamaModel::forward(const Batch& batch) {
  const Tensor logits = run(batch);  // a padded step's rows past the batch's are not read
  std::vector<float> out(batch.logits_rows.size() * size_t(c_.n_vocab));
  if (!out.empty()) be_.read(logits, out.data(), out.size() * sizeof(float));
  return out;
}

int64_t LlamaModel::decode_weight_bytes() const {
  int64_t bytes = int64_t(output_.nbytes());
  for (const Layer& l : layers_)
    for (const Tensor* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) bytes += int64_t(t->nbytes());
  return bytes * (comm_ ? comm_->size() : 1);
}

std::map<DecodeShape, int64_t> LlamaModel::recorded_ops() const {
  std::map<DecodeShape, int64_t> out;
  for (const auto& [shape, r] : recorded_)
    if (r.graph && r.backend_epoch == be_.memory_epoch() && r.model_epoch == model_epoch_)
      out[shape] = r.graph->n_ops();
  return out;
}

std::vector<int32_t> LlamaModel::forward_greedy(const Batch& batch) {
  const Tensor logits = run(batch);
  if (batch.logits_rows.empty()) return {};
  Tensor ids = reuse(argmax_, DType::i32, {logits.dim(0)});
  be_.argmax(logits, ids);
  std::vector<int32_t> out(batch.logits_rows.size());  // a padded step's rows past the batch's are not read
  be_.read(ids, out.data(), out.size() * sizeof(int32_t));
  return out;
}

std::vector<SampledToken> LlamaModel::forward_sampled(const Batch& batch, std::span<const SampleSpec> specs) {
  const Tensor logits = run(batch);  // a padded step's rows past the batch's are not read
  for (const SampleSpec& s : specs)
    HERD_CHECK(s.row >= 0 && size_t(s.row) < batch.logits_rows.size(), "sampled row ", s.row, " of ",
               batch.logits_rows.size());
  return be_.sample(logits, specs);
}

}  // namespace herd
