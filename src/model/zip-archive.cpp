#include "model/zip-archive.h"

#include <set>

#include "common/check.h"

namespace herd {

namespace {

// PKWARE's APPNOTE.TXT: record signatures and fixed sizes.
constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEndSig = 0x06054b50;
constexpr uint32_t kEnd64Sig = 0x06064b50, kLocator64Sig = 0x07064b50;
constexpr uint64_t kLocalSize = 30, kCentralSize = 46, kEndSize = 22, kLocator64Size = 20, kEnd64Size = 56;
constexpr uint16_t kZip64ExtraId = 0x0001;
constexpr uint32_t kMax32 = 0xffffffffu;
constexpr uint16_t kMax16 = 0xffffu;

uint64_t le(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
uint16_t u16(const uint8_t* p) { return uint16_t(le(p, 2)); }
uint32_t u32(const uint8_t* p) { return uint32_t(le(p, 4)); }
uint64_t u64(const uint8_t* p) { return le(p, 8); }

struct Directory {
  uint64_t n_entries = 0, offset = 0, size = 0;
  uint64_t end = 0;  // where the records that follow the central directory begin
};

// The end-of-central-directory record: the last one whose comment reaches exactly the end of the
// file. Its ZIP64 counterpart, when the locator right before it points at one, overrides its fields
// (torch.save always writes one).
Directory find_directory(const uint8_t* data, uint64_t size, const std::string& source) {
  HERD_REQUIRE(size >= kEndSize, source, ": truncated: ", size, " bytes, too short for a ZIP archive");
  uint64_t end = UINT64_MAX;
  const uint64_t lowest = size - kEndSize > kMax16 ? size - kEndSize - kMax16 : 0;
  for (uint64_t i = size - kEndSize + 1; i-- > lowest;) {
    if (u32(data + i) == kEndSig && i + kEndSize + u16(data + i + 20) == size) {
      end = i;
      break;
    }
  }
  HERD_REQUIRE(end != UINT64_MAX, source,
               ": not a ZIP archive, or truncated: no end of central directory (torch.save writes ZIP archives)");
  const uint8_t* e = data + end;
  uint64_t disk = u16(e + 4), cd_disk = u16(e + 6), n_here = u16(e + 8);
  Directory d{u16(e + 10), u32(e + 16), u32(e + 12), end};
  if (end >= kLocator64Size && u32(e - kLocator64Size) == kLocator64Sig) {
    const uint8_t* loc = e - kLocator64Size;
    const uint64_t at = u64(loc + 8);
    HERD_REQUIRE(u32(loc + 16) <= 1, source, ": a ZIP archive split over ", u32(loc + 16),
                 " disks is not supported");
    HERD_REQUIRE(at <= end - kLocator64Size && end - kLocator64Size - at >= kEnd64Size && u32(data + at) == kEnd64Sig,
                 source, ": corrupt ZIP64 locator: no ZIP64 end of central directory at byte ", at);
    const uint8_t* r = data + at;
    disk = u32(r + 16);
    cd_disk = u32(r + 20);
    n_here = u64(r + 24);
    d = Directory{u64(r + 32), u64(r + 48), u64(r + 40), at};
  } else {
    HERD_REQUIRE(d.n_entries != kMax16 && d.offset != kMax32 && d.size != kMax32, source,
                 ": truncated or corrupt: the end of central directory defers to a ZIP64 record that is missing");
  }
  HERD_REQUIRE(disk == 0 && cd_disk == 0 && n_here == d.n_entries, source,
               ": a ZIP archive split over several disks is not supported");
  HERD_REQUIRE(d.offset <= d.end && d.size <= d.end - d.offset, source, ": truncated or corrupt: central directory of ",
               d.size, " bytes at byte ", d.offset, " does not end before its end record at byte ", d.end);
  HERD_REQUIRE(d.n_entries <= d.size / kCentralSize, source, ": corrupt: ", d.n_entries,
               " entries claimed in a central directory of ", d.size, " bytes");
  return d;
}

// The ZIP64 extended information extra field: 8-byte values for the fields whose 32-bit (or
// 16-bit) slot holds the all-ones placeholder, in the order the format fixes.
void read_zip64_extra(const uint8_t* x, uint64_t n, uint64_t& uncompressed, uint64_t& compressed, uint64_t& local,
                      uint64_t& disk, const std::string& where) {
  const uint8_t* end = x + n;
  while (end - x >= 4) {
    const uint16_t id = u16(x), len = u16(x + 2);
    HERD_REQUIRE(uint64_t(end - x - 4) >= len, where, ": extra field overruns the entry");
    if (id == kZip64ExtraId) {
      const uint8_t* f = x + 4;
      const uint8_t* f_end = f + len;
      for (uint64_t* v : {&uncompressed, &compressed, &local}) {
        if (*v != kMax32) continue;
        HERD_REQUIRE(f_end - f >= 8, where, ": ZIP64 extra field too short for its sizes and offset");
        *v = u64(f);
        f += 8;
      }
      if (disk == kMax16) {
        HERD_REQUIRE(f_end - f >= 4, where, ": ZIP64 extra field too short for its disk number");
        disk = u32(f);
      }
    }
    x += 4 + len;
  }
}

}  // namespace

std::vector<ZipEntry> read_zip_directory(const uint8_t* data, size_t file_size, const std::string& source) {
  const uint64_t size = file_size;
  const Directory d = find_directory(data, size, source);
  std::vector<ZipEntry> entries;
  std::set<std::string> names;
  uint64_t pos = d.offset;
  const uint64_t cd_end = d.offset + d.size;
  for (uint64_t k = 0; k < d.n_entries; ++k) {
    HERD_REQUIRE(cd_end - pos >= kCentralSize && u32(data + pos) == kCentralSig, source,
                 ": corrupt central directory: entry ", k, " at byte ", pos, " is not a file header");
    const uint8_t* p = data + pos;
    const uint16_t flags = u16(p + 8), method = u16(p + 10);
    uint64_t compressed = u32(p + 20), uncompressed = u32(p + 24), disk = u16(p + 34), local = u32(p + 42);
    const uint64_t name_len = u16(p + 28), extra_len = u16(p + 30), comment_len = u16(p + 32);
    HERD_REQUIRE(cd_end - pos - kCentralSize >= name_len + extra_len + comment_len, source,
                 ": corrupt central directory: entry ", k, " overruns it");
    ZipEntry e;
    e.name.assign(reinterpret_cast<const char*>(p + kCentralSize), name_len);
    const std::string where = str_cat(source, ": entry \"", e.name, "\"");
    read_zip64_extra(p + kCentralSize + name_len, extra_len, uncompressed, compressed, local, disk, where);
    HERD_REQUIRE(uncompressed != kMax32 && compressed != kMax32 && local != kMax32 && disk != kMax16, where,
                 ": a size or offset defers to a ZIP64 extra field that is missing");
    HERD_REQUIRE(!(flags & 0x41), where, ": encrypted entries are not supported");
    HERD_REQUIRE(method == 0, where, ": compressed (method ", method,
                 "); herd reads only stored, uncompressed entries, as torch.save writes them");
    HERD_REQUIRE(compressed == uncompressed, where, ": a stored entry of ", uncompressed, " bytes claims ",
                 compressed, " compressed bytes");
    HERD_REQUIRE(disk == 0, where, ": starts on disk ", disk, "; multi-disk archives are not supported");

    // The local header repeats the name and has extra fields of its own (torch.save pads there to
    // align the data); sizes are taken from the central directory, since torch.save's local
    // headers leave them to a data descriptor.
    HERD_REQUIRE(local <= size && size - local >= kLocalSize && u32(data + local) == kLocalSig, where,
                 ": no local file header at byte ", local, " (truncated or corrupt)");
    const uint8_t* lp = data + local;
    const uint64_t local_name = u16(lp + 26), local_extra = u16(lp + 28);
    HERD_REQUIRE(size - local - kLocalSize >= local_name + local_extra, where, ": local header overruns the file");
    HERD_REQUIRE(local_name == name_len && std::equal(e.name.begin(), e.name.end(), lp + kLocalSize), where,
                 ": the local header names another file");
    e.offset = local + kLocalSize + local_name + local_extra;
    e.size = uncompressed;
    HERD_REQUIRE(e.size <= size - e.offset, where, ": truncated: ", e.size, " bytes at byte ", e.offset,
                 " but the file has ", size);
    HERD_REQUIRE(names.insert(e.name).second, where, ": appears twice");
    entries.push_back(std::move(e));
    pos += kCentralSize + name_len + extra_len + comment_len;
  }
  return entries;
}

}  // namespace herd
