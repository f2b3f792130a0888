#!/usr/bin/env bash
# On the GPU machine, from a checkout with the CUDA bundle and the write_gguf example built here
# (`cargo xtask bundle --features cuda`; `cargo build --release -p inference --example write_gguf`,
# then `xz` it into artifacts/tools/write_gguf.xz):
#
#     bash scripts/bench/gpu_quantized.sh OUT_DIR
#
# The op-matrix on CUDA with fuzz cases (the quantized ops included), then the random-weight 1B
# in bf16 and as Q4_0 GGUF, each decoding 128 tokens after a 512-token prompt, three rounds.
# Writes OUT_DIR/{gpu.txt, op-matrix.log, cuda/, gen.jsonl, gen.err}.
set -u
out=$1
mkdir -p "$out"
tar -xJf artifacts/cuda/gemma3-cuda-bundle.tar.xz -C /tmp
run=/tmp/gemma3-cuda-bundle/run.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$out/gpu.txt"
"$run" op-matrix --require cuda --fuzz 16 --report "$out/cuda" > "$out/op-matrix.log" 2>&1
echo "exit $?" >> "$out/op-matrix.log"

python3 -c "
import pathlib, sys
sys.path.insert(0, 'scripts/bench')
import gpu_vs_transformers as g
g.write_checkpoint(pathlib.Path('/tmp/1b'))
"
# The GGUF file from the weights alone; the word-level tokenizer goes beside it.
mkdir -p /tmp/1b-weights /tmp/1b-q4_0
ln -sf /tmp/1b/config.json /tmp/1b/model.safetensors /tmp/1b-weights/
xz -dc artifacts/tools/write_gguf.xz > /tmp/write_gguf && chmod +x /tmp/write_gguf
/tmp/write_gguf /tmp/1b-weights /tmp/1b-q4_0/model.gguf q4_0
cp /tmp/1b/tokenizer.json /tmp/1b-q4_0/
ls -l /tmp/1b/model.safetensors /tmp/1b-q4_0/model.gguf >> "$out/gen.err"

prompt=$(python3 -c "
import random
random.seed(1234)
print(' '.join('t%d' % random.randint(10, 262143) for _ in range(511)))
")
for round in 1 2 3; do
  for case in "bf16 /tmp/1b bf16" "q4_0 /tmp/1b-q4_0 bf16" "q4_0 /tmp/1b-q4_0 f32"; do
    set -- $case
    echo "== $1 weights, $3 activations, round $round" >> "$out/gen.err"
    doc=$("$run" gemma3 generate --model-dir "$2" --raw --prompt "$prompt" --max-tokens 128 \
      --temperature 0 --ignore-eos --json --device cuda --dtype "$3" 2>> "$out/gen.err")
    echo "{\"weights\": \"$1\", \"dtype\": \"$3\", \"round\": $round, \"report\": ${doc:-null}}" >> "$out/gen.jsonl"
  done
done
