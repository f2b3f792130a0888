"""Reference outputs for the tiny Gemma 3 checkpoints as GGUF files, from llama.cpp.

Each checkpoint is written as GGUF in each type by this project's writer
(`cargo run -p inference --example write_gguf`), and llama.cpp, through the pinned
llama-cpp-python built from its source archive, scores a prompt on that exact file (its
SHA-256 is recorded) and continues it greedily. The Rust tests write the same files, check the
hash, and compare. Regenerate after changing a tiny checkpoint, the writer or the prompt:

    python3 -m venv /tmp/llvenv && /tmp/llvenv/bin/pip install cmake ninja numpy
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" \\
        /tmp/llvenv/bin/pip install --no-binary llama-cpp-python \\
        -r scripts/reference/llama_cpp_requirements.txt
    /tmp/llvenv/bin/python scripts/reference/llama_cpp_reference.py

The tokens are llama.cpp's own tokenization of the prompt (its SentencePiece reading of the
file's vocabulary), so the tests also check that the engine tokenizes the file alike.
"""

import hashlib
import json
import math
import pathlib
import subprocess
import tempfile

import llama_cpp
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "golden" / "reference" / "llama_cpp.json"

PROMPT = "The clockmaker opens his shop, and the students ask why the pendulum swings."
GREEDY_TOKENS = 16

# Every type of a tiny checkpoint whose rows are 64 and 128 wide, and the K-quants (blocks
# of 256) on the one whose rows are 256 wide.
FILES = [("tiny-text", t) for t in ["f32", "f16", "bf16", "q8_0", "q5_1", "q5_0", "q4_1", "q4_0"]]
FILES += [("tiny-wide", t) for t in ["f32", "q6_k", "q5_k", "q4_k", "q3_k", "q2_k"]]


def write_gguf(checkpoint, kind, out):
    subprocess.run(
        [
            "cargo", "run", "--quiet", "--release", "-p", "inference", "--example", "write_gguf",
            "--", str(ROOT / "golden" / "models" / checkpoint), str(out), kind,
        ],
        check=True,
        cwd=ROOT,
    )
    return hashlib.sha256(out.read_bytes()).hexdigest()


def log_softmax(row):
    row = np.asarray(row, dtype=np.float64)
    m = row.max()
    return row - m - math.log(np.exp(row - m).sum())


def score(path):
    llm = llama_cpp.Llama(
        model_path=str(path),
        n_ctx=128,
        n_batch=128,
        n_threads=2,
        logits_all=True,
        # An f32 KV cache and no flash attention, so that what stays is the arithmetic: ggml's
        # GELU still reads a table of f16 values.
        type_k=llama_cpp.GGML_TYPE_F32,
        type_v=llama_cpp.GGML_TYPE_F32,
        flash_attn=False,
        seed=0,
        verbose=False,
    )
    tokens = llm.tokenize(PROMPT.encode(), add_bos=True, special=False)
    llm.eval(tokens)
    scores = np.array(llm.scores[: len(tokens)], dtype=np.float64)
    logprobs = [float(log_softmax(scores[i - 1])[tokens[i]]) for i in range(1, len(tokens))]
    greedy = []
    for _ in range(GREEDY_TOKENS):
        nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        greedy.append(nxt)
        llm.eval([nxt])
    return tokens, logprobs, greedy


def main():
    entries = []
    with tempfile.TemporaryDirectory() as tmp:
        for checkpoint, kind in FILES:
            path = pathlib.Path(tmp) / f"{checkpoint}.{kind}.gguf"
            sha256 = write_gguf(checkpoint, kind, path)
            tokens, logprobs, greedy = score(path)
            entries.append(
                {
                    "checkpoint": checkpoint,
                    "type": kind,
                    "sha256": sha256,
                    "tokens": tokens,
                    "logprobs": logprobs,
                    "greedy": greedy,
                }
            )
            print(f"{checkpoint} {kind}: mean log-prob {np.mean(logprobs):.4f}, greedy {greedy[:6]}")
    doc = {
        "source": f"llama-cpp-python {llama_cpp.__version__} (its bundled llama.cpp), CPU",
        "prompt": PROMPT,
        "files": entries,
    }
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
