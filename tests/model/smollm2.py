"""Where the real small model lives, for the Python tests: $HERD_SMOLLM2, else scripts/fetch-model's
default cache (tests/model/model-path.h has the same rule for the C++ tests)."""
import os

SKIP = 77  # ctest's SKIP_RETURN_CODE for these tests


def model_path():
    if os.environ.get("HERD_SMOLLM2"):
        return os.environ["HERD_SMOLLM2"]
    cache = os.environ.get("HERD_MODEL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "herd")
    return os.path.join(cache, "SmolLM2-135M-Instruct.Q4_1.gguf")


def present():
    """The model's path, or None after printing why the test skips."""
    path = model_path()
    if os.path.exists(path):
        return path
    print(f"skipped: {path} is absent; run scripts/fetch-model (or set HERD_SMOLLM2)")
    return None
