#!/usr/bin/env python3
"""herd quantize's output read by the other side's own code (docs/quantized.md).

  test_quantize_interop.py HERD DATA fp8    compressed-tensors and transformers (torch)
  test_quantize_interop.py HERD DATA gguf   gguf-py (numpy); llama.cpp's converter and tools when found

Each mode needs Python packages CI does not install. When this interpreter lacks them, the script
runs itself again under $HERD_REF_PYTHON (default ~/.cache/herd/ref-venv/bin/python) if that one has
them, and otherwise exits 77 (ctest's skip) with a line saying what is missing. gguf-py comes from
the `gguf` package or from a llama.cpp tree ($HERD_LLAMACPP_TREE, default the one vendored in
~/.cache/herd/llamacpp/llama_cpp_python-*/vendor/llama.cpp).

fp8: models made by herd make-model in BF16, F16 and F32 are quantized by herd; every projection's
  codes and scales equal what compressed-tensors' own calculate_qparams and quantize give for that
  weight (its FP8_DYNAMIC arguments), the scales in the model's dtype; and transformers, through
  compressed-tensors (dequantize=True), decompresses herd's files to exactly codes times scales
  in the model's dtype, which lie within half an FP8 step of the original weights.
gguf: gguf-py reads herd's Q8_0, Q4_0 and Q4_1 files (metadata, tokenizer, tensor types) and its
  numpy dequantizers give back, with q/k rows un-permuted, each weight within its block's rounding
  step. When llama.cpp's converter (with torch and transformers) and llama-quantize are present,
  a model with Llama 3's full vocabulary (tests/data/gguf/llama3-vocab.gguf turned back into a
  tokenizer.json) is converted and quantized by llama.cpp (Q8_0, Q4_0, Q4_1, Q4_K_M, Q5_K_M, Q6_K) and
  herd's file must be the same bytes;
  when llama.cpp's libllama is present too, llama.cpp runs herd's file and its logits match herd's.
"""
import glob
import json
import os
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

SKIP = 77
HERE = Path(__file__).resolve().parent
HOME_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "herd"


def llamacpp_tree():
    if os.environ.get("HERD_LLAMACPP_TREE"):
        return Path(os.environ["HERD_LLAMACPP_TREE"])
    found = sorted(glob.glob(str(HOME_CACHE / "llamacpp" / "llama_cpp_python-*" / "vendor" / "llama.cpp")))
    return Path(found[-1]) if found else None


def llamacpp_bin():
    return Path(os.environ.get("HERD_LLAMACPP_BIN", HOME_CACHE / "llamacpp" / "build" / "bin"))


def import_gguf():
    try:
        import gguf  # noqa: F401
        return True
    except ImportError:
        tree = llamacpp_tree()
        if tree and (tree / "gguf-py").is_dir():
            sys.path.insert(0, str(tree / "gguf-py"))
            try:
                import gguf  # noqa: F401
                return True
            except ImportError:
                return False
    return False


def have(mode):
    try:
        import numpy  # noqa: F401
        if mode == "fp8":
            import compressed_tensors  # noqa: F401
            import safetensors  # noqa: F401
            import torch  # noqa: F401
            import transformers  # noqa: F401
            return True
        return import_gguf()
    except ImportError:
        return False


def ensure_packages(mode):
    if have(mode):
        return
    wanted = "numpy, torch, transformers, safetensors and compressed-tensors" if mode == "fp8" else "numpy and gguf"
    python = Path(os.environ.get("HERD_REF_PYTHON", HOME_CACHE / "ref-venv" / "bin" / "python"))
    if os.environ.get("HERD_INTEROP_REEXEC") != "1" and python.is_file() and os.access(python, os.X_OK):
        os.environ["HERD_INTEROP_REEXEC"] = "1"
        os.execv(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])
    print(f"skipped: needs {wanted} (set HERD_REF_PYTHON to an interpreter that has them)", file=sys.stderr)
    sys.exit(SKIP)


def run(*args, check=True):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if check and r.returncode != 0:
        sys.exit(f"FAIL: {' '.join(map(str, args))} exited {r.returncode}: {r.stderr.strip()[-2000:]}")
    return r


def make_model(herd, config, dtype, out, data, with_tokenizer=False):
    run(herd, "make-model", "--config", config, "--dtype", dtype, "--seed", "11", "-o", out)
    if with_tokenizer:
        for f in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
            (Path(out) / f).write_bytes((Path(data) / "quantize-ref" / f).read_bytes())


def read_safetensors(path):
    """name -> (dtype, shape, raw bytes), without torch."""
    raw = Path(path).read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    return {k: (v["dtype"], v["shape"], raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])
            for k, v in header.items()}


def as_f32(dtype, shape, raw):
    import numpy as np
    if dtype == "BF16":
        return (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(shape)
    return np.frombuffer(raw, {"F16": np.float16, "F32": np.float32}[dtype]).astype(np.float32).reshape(shape)


# --- FP8: compressed-tensors and transformers

def check_fp8(herd, data, tmp):
    import torch
    from compressed_tensors.quantization import preset_name_to_scheme
    from compressed_tensors.quantization.lifecycle.forward import quantize
    from compressed_tensors.quantization.utils.helpers import calculate_qparams
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, CompressedTensorsConfig

    args = preset_name_to_scheme("FP8_DYNAMIC", ["Linear"]).weights
    config = Path(data) / "quantize-ref" / "config.json"
    for dtype, tdtype in (("bf16", torch.bfloat16), ("f16", torch.float16), ("f32", torch.float32)):
        src, out = Path(tmp) / f"src-{dtype}", Path(tmp) / f"fp8-{dtype}"
        make_model(herd, config, dtype, src, data)
        run(herd, "quantize", "-m", src, "-o", out, "--type", "fp8")
        w_in, w_out = load_file(src / "model.safetensors"), load_file(out / "model.safetensors")
        layers = 0
        for name, w in w_in.items():
            if not name.endswith("_proj.weight"):
                assert torch.equal(w, w_out[name]), f"{dtype}: {name} changed"
                continue
            scale, zero = calculate_qparams(torch.amin(w, dim=-1, keepdim=True), torch.amax(w, dim=-1, keepdim=True), args)
            q = quantize(x=w, scale=scale, zero_point=zero, args=args, dtype=torch.float8_e4m3fn)
            hq, hs = w_out[name], w_out[name + "_scale"]
            assert hs.dtype == tdtype and hs.shape == scale.shape, f"{dtype}: {name}_scale is {hs.dtype} {tuple(hs.shape)}"
            assert torch.equal(hs, scale), f"{dtype}: {name}_scale differs from compressed-tensors'"
            diff = (hq.view(torch.uint8) != q.view(torch.uint8)).sum().item()
            assert diff == 0, f"{dtype}: {name}: {diff} codes differ from compressed-tensors'"
            layers += 1
        assert layers == 7, layers
        # transformers + compressed-tensors decompress herd's checkpoint.
        try:
            ct = CompressedTensorsConfig(dequantize=True)
        except TypeError:  # transformers before 5: the older spelling
            ct = CompressedTensorsConfig(run_compressed=False)
        model = AutoModelForCausalLM.from_pretrained(out, quantization_config=ct)
        sd = model.state_dict()
        worst = 0.0
        for name, w in w_in.items():
            if not name.endswith("_proj.weight"):
                continue
            expect = (w_out[name].to(tdtype) * w_out[name + "_scale"])  # the format's dequantization, in its dtype
            got = sd[name]
            assert got.dtype == tdtype and torch.equal(got, expect), f"{dtype}: {name} decompresses differently"
            # Half an FP8 step of the largest magnitude in the row: 2^-4 relative, plus the scale's rounding.
            rel = ((got.float() - w.float()).abs().amax(dim=1) / w.float().abs().amax(dim=1)).max().item()
            worst = max(worst, rel)
        assert worst < 0.07, f"{dtype}: decompressed weights are {worst:.3f} of a row's largest weight away"
        print(f"ok: fp8 from {dtype}: 7 projections equal compressed-tensors' quantization; transformers "
              f"decompresses them exactly; largest error {worst:.4f} of a row's largest weight")


# --- GGUF: gguf-py, and llama.cpp itself when it is here

def unpermute(w, n_head):
    """Meta's interleaved q/k rows (GGUF) back to Hugging Face's half-split order."""
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


HF = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm", "attn_q": "self_attn.q_proj",
      "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
      "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}


def check_gguf_with_ggufpy(herd, data, tmp):
    import gguf
    import numpy as np

    src = Path(tmp) / "src"
    make_model(herd, Path(data) / "quantize-ref" / "config.json", "bf16", src, data, with_tokenizer=True)
    weights = {k: as_f32(*v) for k, v in read_safetensors(src / "model.safetensors").items()}
    cfg = json.loads((src / "config.json").read_text())
    for qtype, block, levels in (("q8_0", 32, 254), ("q4_0", 32, 8), ("q4_1", 32, 15)):
        out = Path(tmp) / f"m.{qtype}.gguf"
        run(herd, "quantize", "-m", src, "-o", out, "--type", qtype)
        r = gguf.GGUFReader(str(out))
        f = r.fields
        assert f["general.architecture"].contents() == "llama"
        assert f["llama.block_count"].contents() == cfg["num_hidden_layers"]
        assert f["tokenizer.ggml.model"].contents() == "gpt2" and f["tokenizer.ggml.pre"].contents() == "llama-bpe"
        assert len(f["tokenizer.ggml.tokens"].contents()) == cfg["vocab_size"]
        assert f["tokenizer.ggml.bos_token_id"].contents() == 256
        worst = 0.0
        for t in r.tensors:
            w = gguf.quants.dequantize(t.data, t.tensor_type).reshape([int(x) for x in reversed(t.shape)])
            if t.name == "rope_freqs.weight":
                assert w[0] == 1.0 and w[-1] == 8.0
                continue
            if t.name in ("token_embd.weight", "output_norm.weight", "output.weight"):
                name = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
                        "output.weight": "lm_head.weight"}[t.name]
            else:
                _, layer, kind, _ = t.name.split(".")
                name = f"model.layers.{layer}.{HF[kind]}.weight"
                if kind == "attn_q":
                    w = unpermute(w, cfg["num_attention_heads"])
                elif kind == "attn_k":
                    w = unpermute(w, cfg["num_key_value_heads"])
            ref = weights[name]
            if t.tensor_type == gguf.GGMLQuantizationType.F32:
                assert np.array_equal(w, ref), t.name
                continue
            # Each element within one grid step of its 32-element block (Q6_K LM heads: 16), the step
            # being what the block's own range allows at the type's levels.
            blk = 16 if t.tensor_type == gguf.GGMLQuantizationType.Q6_K else block
            lv = 63 if t.tensor_type == gguf.GGMLQuantizationType.Q6_K else (254 if t.tensor_type == gguf.GGMLQuantizationType.Q8_0 else levels)
            rb = ref.reshape(-1, blk)
            amax = np.abs(rb).max(axis=1, keepdims=True)
            step = (rb.max(axis=1, keepdims=True) - rb.min(axis=1, keepdims=True)) / lv if lv == 15 else 2 * amax / lv
            err = np.abs(w.reshape(-1, blk) - rb)
            assert (err <= step * 1.02 + 1e-12).all(), f"{qtype}: {t.name}: off by {(err / np.maximum(step, 1e-30)).max():.3f} steps"
            worst = max(worst, float((err / np.maximum(step, 1e-30)).max()))
        print(f"ok: {qtype}: gguf-py reads herd's file ({len(r.tensors)} tensors) and dequantizes every weight "
              f"within {worst:.2f} of its block's step")


def llama3_tokenizer_files(data, dst):
    """tests/data/gguf/llama3-vocab.gguf (llama.cpp's conversion of Meta's tokenizer) as the
    tokenizer.json and tokenizer_config.json it came from."""
    import gguf
    r = gguf.GGUFReader(str(Path(data) / "gguf" / "llama3-vocab.gguf"))
    f = r.fields
    tokens, types = f["tokenizer.ggml.tokens"].contents(), f["tokenizer.ggml.token_type"].contents()
    pattern = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
               r"\s*[\r\n]+|\s+(?!\S)|\s+")
    bos = {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}
    tj = {"version": "1.0", "truncation": None, "padding": None, "normalizer": None,
          "added_tokens": [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                            "normalized": False, "special": True} for i, t in enumerate(tokens) if types[i] == 3],
          "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
              {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False},
              {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
          "post_processor": {"type": "Sequence", "processors": [
              {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
              {"type": "TemplateProcessing", "single": [bos, {"Sequence": {"id": "A", "type_id": 0}}],
               "pair": [bos, {"Sequence": {"id": "A", "type_id": 0}},
                        {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
               "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [128000],
                                                        "tokens": ["<|begin_of_text|>"]}}}]},
          "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
          "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                    "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": True,
                    "vocab": {t: i for i, t in enumerate(tokens) if types[i] == 1},
                    "merges": [m.split(" ") for m in f["tokenizer.ggml.merges"].contents()]}}
    (dst / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False), encoding="utf-8")
    (dst / "tokenizer_config.json").write_text(json.dumps({
        "bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "tokenizer_class": "PreTrainedTokenizerFast",
        "chat_template": f["tokenizer.chat_template"].contents()}), encoding="utf-8")
    (dst / "generation_config.json").write_text(json.dumps({
        "bos_token_id": 128000, "do_sample": True, "eos_token_id": [128001, 128008, 128009], "temperature": 0.6,
        "top_p": 0.9}))


def check_gguf_with_llamacpp(herd, data, tmp):
    tree, bins = llamacpp_tree(), llamacpp_bin()
    quantize = bins / "llama-quantize"
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        print("skipped part: llama.cpp's converter needs torch and transformers", file=sys.stderr)
        return
    if not tree or not (tree / "convert_hf_to_gguf.py").is_file() or not quantize.is_file():
        print("skipped part: no llama.cpp tree with convert_hf_to_gguf.py and llama-quantize "
              "(HERD_LLAMACPP_TREE, HERD_LLAMACPP_BIN)", file=sys.stderr)
        return
    src = Path(tmp) / "llama3"
    config = json.loads((Path(data) / "quantize-ref" / "config-tied.json").read_text())
    config.update(vocab_size=128256, bos_token_id=128000, eos_token_id=[128001, 128008, 128009],
                  rope_scaling={"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                                "original_max_position_embeddings": 8192, "rope_type": "llama3"},
                  max_position_embeddings=131072)
    (Path(tmp) / "llama3-config.json").write_text(json.dumps(config))
    run(herd, "make-model", "--config", Path(tmp) / "llama3-config.json", "--seed", "3", "-o", src)
    llama3_tokenizer_files(data, src)
    # The converter tries SentencePiece first and only catches a missing tokenizer.model: a stand-in
    # module lets it go on to tokenizer.json when sentencepiece is not installed.
    stub = Path(tmp) / "stub"
    stub.mkdir()
    (stub / "sentencepiece.py").write_text("class SentencePieceProcessor:\n    pass\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tree / "gguf-py"), str(stub)]))
    bf16 = Path(tmp) / "llama3.BF16.gguf"
    r = subprocess.run([sys.executable, str(tree / "convert_hf_to_gguf.py"), str(src), "--outtype", "bf16",
                        "--outfile", str(bf16)], capture_output=True, text=True, env=env)
    assert r.returncode == 0, f"convert_hf_to_gguf failed: {r.stderr[-2000:]}"
    lenv = dict(os.environ, LD_LIBRARY_PATH=str(bins))
    for qtype in ("Q8_0", "Q4_0", "Q4_1", "Q4_K_M", "Q5_K_M", "Q6_K"):
        ref, mine = Path(tmp) / f"llama3.ref.{qtype}.gguf", Path(tmp) / f"llama3.{qtype}.gguf"
        r = subprocess.run([str(quantize), str(bf16), str(ref), qtype], capture_output=True, text=True, env=lenv)
        assert r.returncode == 0, f"llama-quantize failed: {r.stderr[-2000:]}"
        run(herd, "quantize", "-m", src, "-o", mine, "--type", qtype.lower())
        a, b = ref.read_bytes(), mine.read_bytes()
        first = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), None) if a != b else None
        assert a == b, f"{qtype}: herd's file differs from llama.cpp's ({len(b)} vs {len(a)} bytes; first at {first})"
        print(f"ok: {qtype} with Llama 3's vocabulary (128256 tokens, 280147 merges): herd's file is llama.cpp's, "
              f"byte for byte ({len(a)} bytes)")
    check_llamacpp_logits(herd, Path(tmp) / "llama3.Q4_1.gguf", bins)


def check_llamacpp_logits(herd, model, bins):
    """llama.cpp (through llama-cpp-python's bindings over the same build) runs herd's file."""
    import numpy as np
    pkg = sorted(p for p in glob.glob(str(HOME_CACHE / "llamacpp" / "llama_cpp_python-*")) if Path(p, "llama_cpp").is_dir())
    lib = bins / "libllama.so"
    if not pkg or not lib.is_file():
        print("skipped part: no llama-cpp-python sources and libllama.so to run the file", file=sys.stderr)
        return
    os.environ["LLAMA_CPP_LIB_PATH"] = str(bins)
    sys.path.insert(0, pkg[-1])
    try:
        import diskcache  # noqa: F401 (llama_cpp imports it for a prompt cache this test does not use)
    except ImportError:
        import types
        sys.modules["diskcache"] = types.SimpleNamespace(Cache=object)
    try:
        from llama_cpp import Llama
    except Exception as e:  # noqa: BLE001 (a binding that does not load is a skip, not a failure)
        print(f"skipped part: llama_cpp does not import ({e})", file=sys.stderr)
        return
    ids = [128000] + [int(x) for x in np.random.default_rng(1).integers(0, 128000, 31)]
    llm = Llama(model_path=str(model), n_ctx=64, logits_all=True, verbose=False, n_threads=2)
    llm.eval(ids)
    theirs = np.array(llm.scores[:len(ids)], dtype=np.float32)
    out = run(herd, "logits", "-m", model, "--ids", ",".join(map(str, ids)), "--all", "--exact").stdout
    mine = np.array(json.loads(out)["logits"], dtype=np.float32)
    diff = float(np.abs(mine - theirs).max() / np.abs(theirs).max())
    top = float((mine.argmax(1) == theirs.argmax(1)).mean())
    # llama.cpp rounds activations to 8 bits before quantized products; herd's exact path does not.
    assert diff < 0.05 and top >= 0.9, f"llama.cpp's logits differ from herd's by {diff:.4f} (top-1 agree {top:.2f})"
    print(f"ok: llama.cpp runs herd's {model.name}: logits within {diff:.4f} of their scale of herd's, "
          f"top-1 the same at {top:.0%} of {len(ids)} positions")


def main():
    if len(sys.argv) != 4 or sys.argv[3] not in ("fp8", "gguf"):
        sys.exit(__doc__)
    herd, data, mode = sys.argv[1:]
    ensure_packages(mode)
    with tempfile.TemporaryDirectory() as tmp:
        if mode == "fp8":
            check_fp8(herd, data, tmp)
        else:
            check_gguf_with_ggufpy(herd, data, tmp)
            check_gguf_with_llamacpp(herd, data, tmp)


if __name__ == "__main__":
    main()
