#!/usr/bin/env python3
"""Meta's original checkpoint format, written by torch.save, for herd's reader of it.

Run offline with the same packages as make_fixtures.py (torch, transformers, safetensors); CI only
reads the committed output.

From the Hugging Face fixture tests/data/models/gqa8x4-hd16-untied-llama3 (eight query heads over
four KV heads, so that every split below holds whole heads) it writes
tests/data/models/gqa8x4-hd16-untied-llama3-meta-pth-mp{1,2,4}/: params.json and
consolidated.00.pth ... consolidated.NN.pth, the model split over 1, 2 and 4 model-parallel ranks as
Meta's reference model splits it (llama-models, models/llama3/reference_impl/model.py), with Meta's
names and interleaved q/k rows. Each is the same weights as the HF model, so transformers' logits of
that model (tests/data/reference/gqa8x4-hd16-untied-llama3.*) are theirs too.

And tests/data/torch/, small files for the reader's own tests:
  small.pth, small.json    tensors of every supported dtype and shape torch.save writes (a parameter,
                           two views of one storage at offsets, a 0-dim and an empty tensor), and
                           their values as torch reads them back
  small-zip64.pth          small.pth with its central directory in ZIP64 form (sizes and offsets in
                           the ZIP64 extra field, as torch.save writes them past 4 GiB); torch reads it
  compressed.pth           small.pth re-zipped with deflate
  evil-global.pth          a state dict with an object whose pickle calls os.system
  transposed.pth           a non-contiguous tensor (a transposed view)
  int64.pth                an integer tensor
  nested.pth               a dict of dicts of tensors
  legacy.pth               torch.save's format before PyTorch 1.6
"""
import collections
import json
import os
import shutil
import struct
import sys
import zipfile

import torch
from safetensors.torch import load_file
from transformers import LlamaConfig

from make_fixtures import meta_params, meta_state_dict

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")
SOURCE = "gqa8x4-hd16-untied-llama3"
DEGREES = (1, 2, 4)

# llama-models' Transformer: ColumnParallelLinear (wq, wk, wv, w1, w3, output) and
# VocabParallelEmbedding (tok_embeddings) hold a slice of the output rows on each rank,
# RowParallelLinear (wo, w2) a slice of the input columns; RMSNorm weights are whole everywhere.
ROWS = ("tok_embeddings.weight", "output.weight", ".attention.wq.weight", ".attention.wk.weight",
        ".attention.wv.weight", ".feed_forward.w1.weight", ".feed_forward.w3.weight")
COLUMNS = (".attention.wo.weight", ".feed_forward.w2.weight")


def split_dim(name):
    if name.endswith(COLUMNS):
        return 1
    if name.endswith(ROWS):
        return 0
    return None


def as_module_state_dict(tensors):
    """An OrderedDict with the _metadata attribute, pickled as nn.Module.state_dict() is."""
    sd = collections.OrderedDict(tensors)
    sd._metadata = collections.OrderedDict({"": {"version": 1}})
    return sd


def rank_state_dict(meta, mp, rank):
    """What rank `rank` of `mp` holds; clone() so that each tensor is saved with its own storage."""
    out = {}
    for name, w in meta.items():
        d = split_dim(name)
        out[name] = (w if d is None else w.chunk(mp, dim=d)[rank]).clone()
    return as_module_state_dict(out)


def write_meta_pth(meta, cfg, mp):
    dst = os.path.join(DATA, "models", f"{SOURCE}-meta-pth-mp{mp}")
    shutil.rmtree(dst, ignore_errors=True)
    os.makedirs(dst)
    with open(os.path.join(dst, "params.json"), "w") as f:
        json.dump(meta_params(cfg), f, indent=2)
    parts = []
    for rank in range(mp):
        path = os.path.join(dst, f"consolidated.{rank:02d}.pth")
        torch.save(rank_state_dict(meta, mp, rank), path)
        parts.append(torch.load(path, weights_only=True))
    # Joined back as llama-models' reshard_mp does, the ranks hold exactly the model.
    for name, w in meta.items():
        d = split_dim(name)
        joined = parts[0][name] if d is None else torch.cat([p[name] for p in parts], dim=d)
        assert torch.equal(joined, w), name


def to_zip64(src, dst):
    """src's bytes with every central-directory size and offset moved into a ZIP64 extra field."""
    data = open(src, "rb").read()
    end = data.rindex(b"PK\x05\x06")
    n, cd_size, cd_offset = struct.unpack_from("<HII", data, end + 10)
    assert cd_offset != 0xFFFFFFFF, "expected a small archive"
    pos, central = cd_offset, b""
    for _ in range(n):
        fixed = bytearray(data[pos:pos + 46])
        comp, uncomp = struct.unpack_from("<II", fixed, 20)
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", fixed, 28)
        local = struct.unpack_from("<I", fixed, 42)[0]
        name = data[pos + 46:pos + 46 + name_len]
        extra = data[pos + 46 + name_len:pos + 46 + name_len + extra_len]
        comment = data[pos + 46 + name_len + extra_len:pos + 46 + name_len + extra_len + comment_len]
        assert extra_len == 0
        struct.pack_into("<II", fixed, 20, 0xFFFFFFFF, 0xFFFFFFFF)
        struct.pack_into("<I", fixed, 42, 0xFFFFFFFF)
        zip64 = struct.pack("<HHQQQ", 0x0001, 24, uncomp, comp, local)
        struct.pack_into("<H", fixed, 30, len(zip64))
        central += bytes(fixed) + name + zip64 + comment
        pos += 46 + name_len + extra_len + comment_len
    new_end64 = cd_offset + len(central)
    end64 = struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, len(central), cd_offset)
    locator = struct.pack("<IIQI", 0x07064B50, 0, new_end64, 1)
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    with open(dst, "wb") as f:
        f.write(data[:cd_offset] + central + end64 + locator + eocd)


def rezip_deflated(src, dst):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))


class Evil:
    """Its pickle is a call of os.system: what herd must refuse rather than run."""

    def __reduce__(self):
        return (os.system, ("echo herd ran a pickled call",))


def small_state_dict():
    base = torch.arange(10, dtype=torch.float32) * 0.5
    return as_module_state_dict({
        "bf16": (torch.arange(6, dtype=torch.float32).reshape(2, 3) / 4 - 1).to(torch.bfloat16),
        "f16": torch.tensor([1.5, -2.0, 0.25, 65504.0], dtype=torch.float16),
        "f32": torch.arange(8, dtype=torch.float32).reshape(2, 2, 2) - 3.5,
        "param": torch.nn.Parameter(torch.tensor([0.1, 0.2, 0.3]), requires_grad=False),
        "view_a": base[2:6],  # views of one storage: saved once, read at their offsets
        "view_b": base[6:].view(2, 2),
        "scalar": torch.tensor(7.5),
        "empty": torch.zeros(0, 4),
    })


def write_torch_samples():
    dst = os.path.join(DATA, "torch")
    shutil.rmtree(dst, ignore_errors=True)
    os.makedirs(dst)
    p = lambda name: os.path.join(dst, name)
    torch.save(small_state_dict(), p("small.pth"))
    back = torch.load(p("small.pth"), weights_only=True)
    with open(p("small.json"), "w") as f:
        json.dump({k: {"dtype": str(v.dtype).removeprefix("torch."), "shape": list(v.shape),
                       "values": v.float().flatten().tolist()} for k, v in back.items()}, f, indent=1)
    to_zip64(p("small.pth"), p("small-zip64.pth"))
    for k, v in torch.load(p("small-zip64.pth"), weights_only=True).items():
        assert torch.equal(v, back[k]), k
    rezip_deflated(p("small.pth"), p("compressed.pth"))
    torch.save({"w": torch.ones(2, dtype=torch.bfloat16), "payload": Evil()}, p("evil-global.pth"))
    torch.save({"t": torch.arange(6, dtype=torch.float32).reshape(2, 3).t()}, p("transposed.pth"))
    torch.save({"ids": torch.arange(4)}, p("int64.pth"))
    torch.save({"model": {"w": torch.ones(2)}}, p("nested.pth"))
    torch.save({"w": torch.ones(2)}, p("legacy.pth"), _use_new_zipfile_serialization=False)


def main():
    src = os.path.join(DATA, "models", SOURCE)
    cfg = LlamaConfig.from_pretrained(src)
    meta = meta_state_dict(load_file(os.path.join(src, "model.safetensors")), cfg)
    for mp in DEGREES:
        write_meta_pth(meta, cfg, mp)
    write_torch_samples()
    print("torch", torch.__version__, file=sys.stderr)


if __name__ == "__main__":
    main()
