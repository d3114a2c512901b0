#include "model/torch-checkpoint.h"

#include <map>
#include <string_view>

#include "common/check.h"
#include "model/torch-pickle.h"
#include "model/zip-archive.h"

namespace herd {

std::vector<NamedTensor> read_torch_checkpoint(const uint8_t* data, size_t size, const std::string& source) {
  // Before PyTorch 1.6 torch.save wrote a bare pickle stream, with the storages after it.
  HERD_REQUIRE(!(size >= 2 && data[0] == 0x80 && data[1] <= 5), source,
               ": a legacy torch.save file (PyTorch before 1.6); re-save it with a current PyTorch");
  const std::vector<ZipEntry> entries = read_zip_directory(data, size, source);

  // Every entry lives under one folder named after the archive: find it by its data.pkl.
  std::string prefix;
  for (const ZipEntry& e : entries) {
    const size_t slash = e.name.find('/');
    if (slash == std::string::npos || e.name.compare(slash, std::string::npos, "/data.pkl") != 0) continue;
    HERD_REQUIRE(prefix.empty(), source, ": two pickled objects (", prefix, "data.pkl and ", e.name, ")");
    prefix = e.name.substr(0, slash + 1);
  }
  HERD_REQUIRE(!prefix.empty(), source, ": a ZIP archive without <name>/data.pkl: not a torch.save checkpoint");
  std::map<std::string_view, const ZipEntry*> by_name;
  for (const ZipEntry& e : entries)
    if (e.name.starts_with(prefix)) by_name.emplace(std::string_view(e.name).substr(prefix.size()), &e);
  auto bytes = [&](const ZipEntry& e) {
    return std::string_view(reinterpret_cast<const char*>(data + e.offset), size_t(e.size));
  };

  // Absent in archives older than the byteorder record, which were all little-endian.
  if (auto it = by_name.find("byteorder"); it != by_name.end())
    HERD_REQUIRE(bytes(*it->second) == "little", source, ": byte order \"", bytes(*it->second),
                 "\"; herd reads little-endian checkpoints");

  const ZipEntry& pkl = *by_name.at("data.pkl");
  const PickledStateDict sd = parse_state_dict_pickle(data + pkl.offset, size_t(pkl.size), source);
  std::vector<const uint8_t*> base;
  for (const PickledStorage& s : sd.storages) {
    const std::string name = "data/" + s.key;
    auto it = by_name.find(name);
    HERD_REQUIRE(it != by_name.end(), source, ": the storage entry ", prefix, name, " is missing");
    const ZipEntry& e = *it->second;
    const size_t esize = dtype_size(s.dtype);
    HERD_REQUIRE(s.numel <= e.size / esize && e.size == s.numel * esize, source, ": ", prefix, name, " holds ", e.size,
                 " bytes but its ", s.numel, " elements of ", dtype_name(s.dtype), " need ", s.numel * esize);
    HERD_REQUIRE(reinterpret_cast<uintptr_t>(data + e.offset) % esize == 0, source, ": ", prefix, name,
                 " begins at byte ", e.offset, ", not aligned to its ", esize,
                 "-byte elements (torch.save aligns them; was the archive rewritten?)");
    base.push_back(data + e.offset);
  }
  std::vector<NamedTensor> out;
  for (const PickledTensor& t : sd.tensors) {
    const DType dtype = sd.storages[t.storage].dtype;
    out.push_back({t.name, TensorView{dtype, t.shape, base[t.storage] + t.offset * dtype_size(dtype)}});
  }
  return out;
}

TorchCheckpoint::TorchCheckpoint(const std::string& path)
    : file_(path), tensors_(read_torch_checkpoint(file_.data(), file_.size(), path)) {}

}  // namespace herd
