// The directory of a ZIP archive whose entries are stored uncompressed, as torch.save writes its
// checkpoints: read from the central directory (ZIP64 included: shards of large models pass 4 GiB)
// over bytes already in memory, so that an entry is a byte range of the mapped file, never a copy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace herd {

struct ZipEntry {
  std::string name;
  uint64_t offset = 0;  // of the entry's first data byte, from the start of the archive
  uint64_t size = 0;    // bytes
};

// Every entry, in central-directory order. Throws an invalid-input Error "<source>: <reason>" for
// anything but a single-disk archive of stored, unencrypted entries whose data lie inside `size`
// (truncated files, compressed entries, duplicate names, inconsistent ZIP64 records). CRCs are not
// checked: that would read every byte of a checkpoint hundreds of GB long before it is used.
std::vector<ZipEntry> read_zip_directory(const uint8_t* data, size_t size, const std::string& source);

}  // namespace herd
