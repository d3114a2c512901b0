#include "model/torch-pickle.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <string_view>
#include <unordered_map>

#include "common/check.h"

namespace herd {

namespace {

// A 405B shard's state dict takes about 40k opcodes; every limit is far above what torch.save
// writes and bounds what a hostile file can make the interpreter hold (objects cost ~64 bytes).
constexpr uint64_t kMaxOps = uint64_t(1) << 20;
constexpr size_t kMaxStack = size_t(1) << 16;
constexpr size_t kMaxMarks = 64;  // nesting of MARK-delimited tuples and item lists
constexpr size_t kMaxMemo = size_t(1) << 20;
constexpr size_t kMaxString = size_t(1) << 16;
constexpr size_t kMaxGlobalLine = 256;
constexpr size_t kMaxDims = 16;

enum class Kind : uint8_t { none, boolean, integer, string, tuple, dict, global, storage, tensor };

const char* kind_name(Kind k) {
  static constexpr const char* names[] = {"None", "bool", "int", "str", "tuple", "dict", "global", "storage", "tensor"};
  return names[int(k)];
}

// The only globals a state dict needs; every other one is refused when the file names it.
enum class Global : uint8_t { ordered_dict, rebuild_tensor_v2, rebuild_parameter, storage_type };

// One object of the pickle. Containers refer to others by index into the interpreter's arena, so
// that memo references (BINGET) alias as in Python, and no self-referencing dict can leak or
// recurse: nothing here is ever walked recursively.
struct Obj {
  explicit Obj(Kind k, int64_t v = 0) : kind(k), i(v) {}
  Kind kind;
  int64_t i;                     // bool and int values; an index into storages or tensors; a Global
  DType dtype = DType::f32;      // of a storage_type global
  std::string_view s;            // a str, viewing the pickle's bytes
  std::vector<uint32_t> items;   // a tuple's elements; a dict's keys and values, alternating
};

// _rebuild_tensor_v2's arguments, checked once the tensor has a name.
struct TensorRecord {
  size_t storage;
  int64_t offset;
  std::vector<int64_t> size, stride;
};

class Unpickler {
 public:
  Unpickler(const uint8_t* data, size_t size, const std::string& source)
      : p_(data), begin_(data), end_(data + size), source_(source) {}

  PickledStateDict run() {
    for (uint64_t n_ops = 1;; ++n_ops) {
      if (n_ops > kMaxOps) fail("more than ", kMaxOps, " opcodes; not a state dict torch.save wrote");
      const size_t at = size_t(p_ - begin_);
      const uint8_t op = *take(1);
      switch (op) {
        case 0x80: {  // PROTO
          const uint8_t v = *take(1);
          if (v < 2 || v > 5) fail("pickle protocol ", int(v), " (torch.save writes 2)");
          break;
        }
        case 0x95: take(8); break;  // FRAME: a length hint
        case '}': push_new(Obj{Kind::dict}); break;
        case ')': push_new(Obj{Kind::tuple}); break;
        case '(':
          if (marks_.size() >= kMaxMarks) fail("nesting deeper than ", kMaxMarks);
          marks_.push_back(stack_.size());
          break;
        case 't': push_tuple(pop_mark()); break;
        case 0x85: case 0x86: case 0x87: {  // TUPLE1, TUPLE2, TUPLE3
          std::vector<uint32_t> items(size_t(op - 0x84));
          for (size_t k = items.size(); k-- > 0;) items[k] = pop();
          push_tuple(std::move(items));
          break;
        }
        case 'X': push_string(le(take(4), 4)); break;  // BINUNICODE
        case 0x8c: push_string(*take(1)); break;       // SHORT_BINUNICODE
        case 'J': push_int(int32_t(uint32_t(le(take(4), 4)))); break;  // BININT
        case 'K': push_int(*take(1)); break;                           // BININT1
        case 'M': push_int(int64_t(le(take(2), 2))); break;            // BININT2
        case 0x8a: {  // LONG1: little-endian two's complement
          const uint8_t n = *take(1);
          if (n > 8) fail("an integer of ", int(n), " bytes at byte ", at);
          const uint8_t* b = take(n);
          uint64_t v = le(b, n);
          if (n > 0 && n < 8 && (b[n - 1] & 0x80)) v |= ~uint64_t(0) << (8 * n);
          push_int(int64_t(v));
          break;
        }
        case 0x88: case 0x89: push_new(Obj{Kind::boolean, int64_t(op == 0x88)}); break;  // NEWTRUE, NEWFALSE
        case 'N': push_new(Obj{Kind::none}); break;
        case 'q': memo_put(*take(1)); break;               // BINPUT
        case 'r': memo_put(le(take(4), 4)); break;         // LONG_BINPUT
        case 0x94: memo_put(memo_.size()); break;          // MEMOIZE
        case 'h': memo_get(*take(1)); break;               // BINGET
        case 'j': memo_get(le(take(4), 4)); break;         // LONG_BINGET
        case 'c': {                                        // GLOBAL "module\nname\n"
          const std::string_view module = line(), name = line();
          push_global(module, name);
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          const std::string_view name = string_at(pop()), module = string_at(pop());
          push_global(module, name);
          break;
        }
        case 'R': {  // REDUCE
          const uint32_t args = pop(), callable = pop();
          reduce(callable, args);
          break;
        }
        case 'b': build(pop()); break;
        case 's': {  // SETITEM
          const uint32_t value = pop(), key = pop();
          Obj& d = dict_at_top();
          d.items.insert(d.items.end(), {key, value});
          break;
        }
        case 'u': {  // SETITEMS
          const std::vector<uint32_t> kv = pop_mark();
          if (kv.size() % 2 != 0) fail("SETITEMS of an odd number of keys and values");
          Obj& d = dict_at_top();
          d.items.insert(d.items.end(), kv.begin(), kv.end());
          break;
        }
        case 'Q': push_storage(pop()); break;  // BINPERSID
        case '.': return finish(pop());        // STOP
        default:
          fail("opcode 0x", hex(op), " at byte ", at, " is not one torch.save writes for a state dict");
      }
    }
  }

 private:
  const uint8_t* p_;
  const uint8_t* begin_;
  const uint8_t* end_;
  const std::string& source_;
  std::vector<Obj> objs_;
  std::vector<uint32_t> stack_;
  std::vector<size_t> marks_;  // stack sizes at each open MARK
  std::unordered_map<uint64_t, uint32_t> memo_;
  std::vector<TensorRecord> tensors_;
  std::vector<PickledStorage> storages_;
  std::map<std::string, size_t, std::less<>> storage_by_key_;

  template <typename... Args>
  [[noreturn]] void fail(Args&&... args) const {
    fail_input(source_, ": data.pkl: ", std::forward<Args>(args)...);
  }

  static std::string hex(uint8_t b) {
    static constexpr char digits[] = "0123456789abcdef";
    return {digits[b >> 4], digits[b & 15]};
  }

  static uint64_t le(const uint8_t* p, size_t n) {
    uint64_t v = 0;
    for (size_t k = n; k-- > 0;) v = (v << 8) | p[k];
    return v;
  }

  const uint8_t* take(uint64_t n) {
    if (uint64_t(end_ - p_) < n) fail("truncated: ends before its STOP opcode");
    const uint8_t* at = p_;
    p_ += n;
    return at;
  }

  std::string_view line() {
    const size_t avail = std::min(size_t(end_ - p_), kMaxGlobalLine);
    const auto* nl = static_cast<const uint8_t*>(std::memchr(p_, '\n', avail));
    if (!nl) fail("a global's name is unterminated or longer than ", kMaxGlobalLine, " bytes");
    const std::string_view s(reinterpret_cast<const char*>(p_), size_t(nl - p_));
    p_ = nl + 1;
    return s;
  }

  uint32_t push_new(Obj o) {
    objs_.push_back(std::move(o));
    const auto id = uint32_t(objs_.size() - 1);
    push(id);
    return id;
  }

  void push(uint32_t id) {
    if (stack_.size() >= kMaxStack) fail("stack deeper than ", kMaxStack);
    stack_.push_back(id);
  }

  // As in Python's unpickler, a MARK opens a frame that pops cannot reach below.
  size_t frame_base() const { return marks_.empty() ? 0 : marks_.back(); }

  uint32_t pop() {
    if (stack_.size() <= frame_base()) fail("stack underflow");
    const uint32_t id = stack_.back();
    stack_.pop_back();
    return id;
  }

  std::vector<uint32_t> pop_mark() {
    if (marks_.empty()) fail("an opcode needs a MARK that is missing");
    std::vector<uint32_t> items(stack_.begin() + std::ptrdiff_t(marks_.back()), stack_.end());
    stack_.resize(marks_.back());
    marks_.pop_back();
    return items;
  }

  void push_tuple(std::vector<uint32_t> items) {
    Obj t{Kind::tuple};
    t.items = std::move(items);
    push_new(std::move(t));
  }

  void push_string(uint64_t n) {
    if (n > kMaxString) fail("a string of ", n, " bytes (at most ", kMaxString, ")");
    Obj s{Kind::string};
    s.s = std::string_view(reinterpret_cast<const char*>(take(n)), size_t(n));
    push_new(std::move(s));
  }

  void push_int(int64_t v) { push_new(Obj{Kind::integer, v}); }

  void memo_put(uint64_t key) {
    if (stack_.size() <= frame_base()) fail("memo store from an empty stack");
    if (memo_.size() >= kMaxMemo && !memo_.count(key)) fail("more than ", kMaxMemo, " memo entries");
    memo_[key] = stack_.back();
  }

  void memo_get(uint64_t key) {
    const auto it = memo_.find(key);
    if (it == memo_.end()) fail("memo entry ", key, " is read before it is stored");
    push(it->second);
  }

  const Obj& as(uint32_t id, Kind k, const char* what) const {
    const Obj& o = objs_[id];
    if (o.kind != k) fail(what, " is a ", kind_name(o.kind), ", expected a ", kind_name(k));
    return o;
  }

  std::string_view string_at(uint32_t id) const { return as(id, Kind::string, "a global's name").s; }

  Obj& dict_at_top() {
    if (stack_.size() <= frame_base()) fail("stack underflow");
    Obj& d = objs_[stack_.back()];
    if (d.kind != Kind::dict) fail("items set on a ", kind_name(d.kind), ", not a dict");
    return d;
  }

  void push_global(std::string_view module, std::string_view name) {
    Obj g{Kind::global};
    if (module == "collections" && name == "OrderedDict") {
      g.i = int64_t(Global::ordered_dict);
    } else if (module == "torch._utils" && name == "_rebuild_tensor_v2") {
      g.i = int64_t(Global::rebuild_tensor_v2);
    } else if (module == "torch._utils" && name == "_rebuild_parameter") {
      g.i = int64_t(Global::rebuild_parameter);
    } else if (module == "torch" && name.ends_with("Storage")) {
      g.i = int64_t(Global::storage_type);
      if (name == "BFloat16Storage") g.dtype = DType::bf16;
      else if (name == "HalfStorage") g.dtype = DType::f16;
      else if (name == "FloatStorage") g.dtype = DType::f32;
      else fail("tensors of type torch.", name, " are not supported (herd reads float32, float16 and bfloat16)");
    } else {
      fail("the global ", module, ".", name,
           " is not part of a plain tensor state dict; herd does not execute pickled code");
    }
    push_new(std::move(g));
  }

  // ('storage', storage type, key, location, numel): the archive entry data/<key>.
  void push_storage(uint32_t pid) {
    const Obj& t = as(pid, Kind::tuple, "a persistent id");
    if (t.items.size() != 5 || objs_[t.items[0]].kind != Kind::string || objs_[t.items[0]].s != "storage")
      fail("a persistent id is not ('storage', type, key, location, numel)");
    const Obj& type = as(t.items[1], Kind::global, "a storage's type");
    if (Global(type.i) != Global::storage_type) fail("a storage's type is not a torch storage type");
    const std::string_view key = as(t.items[2], Kind::string, "a storage's key").s;
    as(t.items[3], Kind::string, "a storage's location");
    const int64_t numel = as(t.items[4], Kind::integer, "a storage's size").i;
    if (numel < 0) fail("storage ", key, " has ", numel, " elements");
    auto it = storage_by_key_.find(key);
    if (it == storage_by_key_.end()) {
      it = storage_by_key_.emplace(std::string(key), storages_.size()).first;
      storages_.push_back({std::string(key), type.dtype, uint64_t(numel)});
    } else if (storages_[it->second].dtype != type.dtype || storages_[it->second].numel != uint64_t(numel)) {
      fail("storage ", key, " is described twice, differently");
    }
    push_new(Obj{Kind::storage, int64_t(it->second)});
  }

  std::vector<int64_t> int_tuple(uint32_t id, const char* what) const {
    std::vector<int64_t> v;
    for (uint32_t e : as(id, Kind::tuple, what).items) v.push_back(as(e, Kind::integer, what).i);
    return v;
  }

  void require_empty_dict(uint32_t id, const char* what) const {
    if (!as(id, Kind::dict, what).items.empty()) fail("a tensor carries ", what, "; herd reads plain tensors");
  }

  // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
  void rebuild_tensor(const std::vector<uint32_t>& a) {
    if (a.size() != 6 && a.size() != 7) fail("_rebuild_tensor_v2 takes 6 or 7 arguments, got ", a.size());
    const size_t storage = size_t(as(a[0], Kind::storage, "a tensor's storage").i);
    const int64_t offset = as(a[1], Kind::integer, "a tensor's storage offset").i;
    const std::vector<int64_t> size = int_tuple(a[2], "a tensor's size");
    const std::vector<int64_t> stride = int_tuple(a[3], "a tensor's stride");
    as(a[4], Kind::boolean, "a tensor's requires_grad");
    require_empty_dict(a[5], "backward hooks");
    if (a.size() == 7) require_empty_dict(a[6], "metadata");
    if (size.size() > kMaxDims || stride.size() != size.size())
      fail("a tensor has ", size.size(), " sizes and ", stride.size(), " strides");
    tensors_.push_back({storage, offset, size, stride});
    push_new(Obj{Kind::tensor, int64_t(tensors_.size() - 1)});
  }

  // Row-major and dense (each stride the product of the sizes after it; any stride where a size
  // is 1, as torch allows), and inside its storage.
  PickledTensor checked_tensor(std::string_view name, const TensorRecord& t) const {
    const PickledStorage& s = storages_[t.storage];
    uint64_t numel = 1;
    for (size_t d = t.size.size(); d-- > 0;) {
      if (t.size[d] < 0) fail("tensor \"", name, "\" has size ", t.size[d]);
      if (t.size[d] != 1 && t.stride[d] != int64_t(numel))
        fail("tensor \"", name, "\" is not contiguous (a transposed or sliced view?); herd reads row-major tensors");
      if (t.size[d] != 0 && numel > (uint64_t(1) << 60) / uint64_t(t.size[d]))
        fail("tensor \"", name, "\" is too large");
      numel *= uint64_t(t.size[d]);
    }
    if (t.offset < 0 || uint64_t(t.offset) > s.numel || numel > s.numel - uint64_t(t.offset))
      fail("tensor \"", name, "\" of ", numel, " elements at offset ", t.offset, " overruns its storage ", s.key,
           " of ", s.numel);
    return {std::string(name), t.storage, Shape(t.size.begin(), t.size.end()), uint64_t(t.offset)};
  }

  void reduce(uint32_t callable, uint32_t args_id) {
    const Obj& f = as(callable, Kind::global, "the callable of REDUCE");
    const std::vector<uint32_t> args = as(args_id, Kind::tuple, "the arguments of REDUCE").items;
    switch (Global(f.i)) {
      case Global::ordered_dict:
        if (!args.empty()) fail("OrderedDict is given arguments");
        push_new(Obj{Kind::dict});
        return;
      case Global::rebuild_tensor_v2: rebuild_tensor(args); return;
      case Global::rebuild_parameter:  // (tensor, requires_grad, backward_hooks)
        if (args.size() != 3) fail("_rebuild_parameter takes 3 arguments, got ", args.size());
        as(args[0], Kind::tensor, "a parameter's data");
        as(args[1], Kind::boolean, "a parameter's requires_grad");
        require_empty_dict(args[2], "backward hooks");
        push(args[0]);
        return;
      case Global::storage_type: fail("a storage type is called");
    }
  }

  // A state dict's attributes (torch's _metadata: versions per module) are not weights.
  void build(uint32_t state) {
    const Kind k = objs_[state].kind;
    if (stack_.size() <= frame_base()) fail("stack underflow");
    const Kind target = objs_[stack_.back()].kind;
    if (target != Kind::dict || (k != Kind::dict && k != Kind::none))
      fail("BUILD of a ", kind_name(target), " with a ", kind_name(k), " is not part of a state dict");
  }

  PickledStateDict finish(uint32_t result) {
    const Obj& d = as(result, Kind::dict, "the pickled object");
    PickledStateDict out;
    std::map<std::string_view, bool> seen;
    for (size_t k = 0; k < d.items.size(); k += 2) {
      const std::string_view name = as(d.items[k], Kind::string, "a state dict key").s;
      const Obj& v = objs_[d.items[k + 1]];
      if (v.kind != Kind::tensor)
        fail("\"", name, "\" is a ", kind_name(v.kind), ", not a tensor; herd reads a flat state dict of tensors");
      if (!seen.emplace(name, true).second) fail("\"", name, "\" appears twice");
      out.tensors.push_back(checked_tensor(name, tensors_[size_t(v.i)]));
    }
    out.storages = std::move(storages_);
    return out;
  }
};

}  // namespace

PickledStateDict parse_state_dict_pickle(const uint8_t* data, size_t size, const std::string& source) {
  return Unpickler(data, size, source).run();
}

}  // namespace herd
