#!/usr/bin/env python3
"""tests/data/gguf/llama3-vocab.gguf: Meta's Llama 3 tokenizer as llama.cpp's converter writes it
into a GGUF file (vocabulary only), for herd's GGUF tokenizer tests.

Offline, on a developer machine: pip install tiktoken blobfile sentencepiece transformers torch, and
the llama.cpp tree of make_gguf_fixtures.py:

  python3 tests/reference/make_gguf_vocab.py LLAMA_CPP_TREE

tests/data/tokenizer/tokenizer.model goes through transformers' tiktoken converter
(convert_tiktoken_to_fast) to a tokenizer.json, given Llama 3.1's special-token names, the BOS
post-processor and the official chat template (tests/data/chat/chat_template.jinja), then through
convert_hf_to_gguf.py --vocab-only. The converter recognises the pre-tokenizer by hashing its output
on a probe text: it writes "llama-bpe", as for Meta's published checkpoints.
"""
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import tiktoken
from tiktoken.load import load_tiktoken_bpe
from transformers.integrations.tiktoken import convert_tiktoken_to_fast

DATA = Path(__file__).resolve().parent.parent / "data"
PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
           r"\s*[\r\n]+|\s+(?!\S)|\s+")


def special_names():
    names = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
             "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>", "<|start_header_id|>",
             "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"]
    return names + [f"<|reserved_special_token_{k}|>" for k in range(3, 3 + 256 - len(names))]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    tree = Path(sys.argv[1])
    ranks = load_tiktoken_bpe(str(DATA / "tokenizer" / "tokenizer.model"))
    special = {n: len(ranks) + i for i, n in enumerate(special_names())}
    enc = tiktoken.Encoding("llama3", pat_str=PATTERN, mergeable_ranks=ranks, special_tokens=special)
    with tempfile.TemporaryDirectory() as tmp:
        hf = Path(tmp) / "hf"
        convert_tiktoken_to_fast(enc, str(hf))
        # transformers keeps a copy of the ranks, which llama.cpp's converter would try as SentencePiece.
        shutil.rmtree(hf / "tiktoken", ignore_errors=True)
        tj = json.loads((hf / "tokenizer.json").read_text(encoding="utf-8"))
        bos = {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}
        tj["post_processor"] = {
            "type": "TemplateProcessing", "single": [bos, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [bos, {"Sequence": {"id": "A", "type_id": 0}}, bos, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [special["<|begin_of_text|>"]],
                                                     "tokens": ["<|begin_of_text|>"]}}}
        (hf / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False), encoding="utf-8")
        (hf / "tokenizer_config.json").write_text(json.dumps({
            "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>",
            "add_bos_token": True, "chat_template": (DATA / "chat" / "chat_template.jinja").read_text()}))
        (hf / "config.json").write_text(json.dumps({
            "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": len(ranks) + 256,
            "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 2,
            "num_key_value_heads": 1, "max_position_embeddings": 131072, "rms_norm_eps": 1e-5,
            "rope_theta": 500000.0, "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009]}))
        subprocess.run([sys.executable, str(tree / "convert_hf_to_gguf.py"), str(hf), "--vocab-only",
                        "--outfile", str(DATA / "gguf" / "llama3-vocab.gguf")], check=True)


if __name__ == "__main__":
    main()
