#!/usr/bin/env python3
"""Fixtures for `herd quantize`: what the reference tools themselves write for two small models.

Run offline on a developer machine; CI only reads the committed output in tests/data/quantize-ref/.
Needs torch, transformers, compressed-tensors, numpy, sentencepiece (the converter imports it before
it looks for a tokenizer.json), a herd build (for `herd make-model`), and the llama.cpp tree vendored in llama-cpp-python's source distribution (its converter and gguf-py) with
a llama.cpp build that has llama-quantize:

  python3 tests/reference/make_quantize_fixtures.py HERD_BINARY LLAMA_CPP_TREE LLAMA_QUANTIZE

It writes to tests/data/quantize-ref/:
  tokenizer.json, tokenizer_config.json, generation_config.json
      a byte-level BPE vocabulary with Llama 3's pre-tokenizer (256 byte tokens, byte 0xFF's place
      taken by " t" so that there is one merge; <|begin_of_text|>, <|end_of_text|>, <|eot_id|> as
      ids 256-258; ids 259-319 unused), a chat template and sampling defaults.
  ref.{Q8_0,Q4_0,Q4_1,Q4_K_M,Q5_K_M,Q6_K}.gguf, ref-tied.Q4_0.gguf
      `herd make-model --config config.json --seed 5` (config-tied.json for the tied one) with the
      files above, converted by llama.cpp's convert_hf_to_gguf (--outtype bf16, the model's own
      precision) and quantized by llama-quantize. The converter recognises pre-tokenizers by
      hashing their output on a probe text, which a 256-token vocabulary cannot match: its
      get_vocab_base_pre is told "llama-bpe" (what it answers for Llama 3); everything else is
      the converter's own code. The test makes the same model with herd's synthetic writer: a change
      to that generator means running this script again.
  ref-deep.Q4_K_M.head.gguf, ref-deep.Q4_K_M.fnv1a64
      the same for config-deep.json, the smallest shape llama.cpp takes for a Llama 70B (80 layers,
      fewer KV heads than heads: its Q4_K_M gives attn_v Q5_K where use_more_bits does not give it
      Q6_K; 256 wide, the narrowest K-quant rows), quantized to Q4_K_M. The whole file (17 MB) is
      too large to commit: its bytes up to the tensor data (every key and value, tensor names, types
      and offsets) and the FNV-1a 64 digest of all of it, as 16 hex digits. (A name with a number,
      such as ref-80, would have the converter guess a general.version, which herd does not write.)
  gqa4-hd32-untied-llama3.fp8/
      tests/data/models/gqa4-hd32-untied-llama3 compressed by compressed-tensors itself with its
      FP8_DYNAMIC preset (ignore lm_head): the weight scales from calculate_qparams on each row's
      min and max (the MinMax observer's statistics), then ModelCompressor.compress_model,
      save_pretrained and update_config.
"""
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from make_gguf_fixtures import byte_alphabet  # GPT-2's bytes_to_unicode, in byte order

DATA = Path(__file__).resolve().parent.parent / "data"
OUT = DATA / "quantize-ref"
SEED = 5
PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
           r"\s*[\r\n]+|\s+(?!\S)|\s+")


def write_tokenizer_files():
    tokens = byte_alphabet()
    tokens[255] = tokens[0x20] + "t"
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]
    bos = {"SpecialToken": {"id": specials[0], "type_id": 0}}
    tj = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": 256 + i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for i, s in enumerate(specials)],
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": PATTERN}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": {"type": "TemplateProcessing", "single": [bos, {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [bos, {"Sequence": {"id": "A", "type_id": 0}},
                                    {"SpecialToken": {"id": specials[0], "type_id": 1}},
                                    {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {specials[0]: {"id": specials[0], "ids": [256], "tokens": [specials[0]]}}},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": True,
                  "vocab": {t: i for i, t in enumerate(tokens)}, "merges": [[tokens[0x20], "t"]]},
    }
    (OUT / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False, indent=1), encoding="utf-8")
    (OUT / "tokenizer_config.json").write_text(json.dumps({
        "bos_token": specials[0], "eos_token": specials[2], "tokenizer_class": "PreTrainedTokenizerFast",
        "chat_template": "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
                         "{{ m['content'] }}<|eot_id|>{% endfor %}"}, indent=1), encoding="utf-8")
    (OUT / "generation_config.json").write_text(json.dumps({
        "bos_token_id": 256, "do_sample": True, "eos_token_id": [257, 258], "temperature": 0.6, "top_p": 0.9}, indent=1))


def make_model(herd, config, dst):
    subprocess.run([herd, "make-model", "--config", str(config), "--seed", str(SEED), "-o", str(dst)], check=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        shutil.copy(OUT / name, dst / name)


def convert_bf16(tree, src, dst):
    """llama.cpp's converter, with the probe-text hash answered for this vocabulary."""
    sys.path.insert(0, str(Path(tree) / "gguf-py"))
    sys.path.insert(0, str(tree))
    import gguf
    import torch
    from conversion.base import TextModel
    from conversion.llama import LlamaModel

    TextModel.get_vocab_base_pre = lambda self, tokenizer: "llama-bpe"
    with torch.inference_mode():
        m = LlamaModel(Path(src), gguf.LlamaFileType.MOSTLY_BF16, Path(dst))
        m.write()


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def write_head_and_digest(gguf_file, stem):
    """A GGUF file too large to commit: its bytes before the tensor data, and the digest of all of it."""
    from gguf import GGUFReader

    data = gguf_file.read_bytes()
    Path(f"{stem}.head.gguf").write_bytes(data[:GGUFReader(gguf_file).data_offset])
    Path(f"{stem}.fnv1a64").write_text(f"{fnv1a64(data):016x}\n")


def make_fp8():
    import torch
    from compressed_tensors.compressors import ModelCompressor
    from compressed_tensors.quantization import QuantizationConfig, apply_quantization_config, preset_name_to_scheme
    from compressed_tensors.quantization.utils.helpers import calculate_qparams
    from transformers import AutoModelForCausalLM

    src = DATA / "models" / "gqa4-hd32-untied-llama3"
    dst = OUT / "gqa4-hd32-untied-llama3.fp8"
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.bfloat16)
    qc = QuantizationConfig(config_groups={"group_0": preset_name_to_scheme("FP8_DYNAMIC", ["Linear"])},
                            ignore=["lm_head"])
    apply_quantization_config(model, qc)
    for _, module in model.named_modules():
        if hasattr(module, "weight_scale"):
            w = module.weight.data
            scale, _ = calculate_qparams(torch.amin(w, dim=-1, keepdim=True), torch.amax(w, dim=-1, keepdim=True),
                                         module.quantization_scheme.weights)
            module.weight_scale.data.copy_(scale)
    compressor = ModelCompressor.from_pretrained_model(model)
    compressor.compress_model(model)
    shutil.rmtree(dst, ignore_errors=True)
    model.save_pretrained(dst)
    compressor.update_config(str(dst))
    (dst / "generation_config.json").unlink(missing_ok=True)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    herd, tree, quantize = sys.argv[1:]
    OUT.mkdir(parents=True, exist_ok=True)
    write_tokenizer_files()
    with tempfile.TemporaryDirectory() as tmp:
        for config, name, types, whole in (
                ("config.json", "ref", ["Q8_0", "Q4_0", "Q4_1", "Q4_K_M", "Q5_K_M", "Q6_K"], True),
                ("config-tied.json", "ref-tied", ["Q4_0"], True),
                ("config-deep.json", "ref-deep", ["Q4_K_M"], False)):
            src = Path(tmp) / name
            make_model(herd, OUT / config, src)
            bf16 = Path(tmp) / f"{name}.BF16.gguf"
            convert_bf16(tree, src, bf16)
            for t in types:
                out = (OUT if whole else Path(tmp)) / f"{name}.{t}.gguf"
                subprocess.run([quantize, str(bf16), str(out), t], check=True)
                if not whole:
                    write_head_and_digest(out, OUT / f"{name}.{t}")
    make_fp8()


if __name__ == "__main__":
    main()
