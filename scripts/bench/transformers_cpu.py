"""Gemma 3 with Hugging Face transformers on the CPU: the transformers peer of `cargo xtask bench`.

    python scripts/bench/transformers_cpu.py --model-dir DIR --dtype bf16 --ids IDS.json \
        --new-tokens 64 [--contexts 128,512] [--threads 2] [--runs 1]

IDS.json holds the prompt's token ids, `<bos>` first: the same ids the engine is given, so both
sides compute the same thing. Greedy, with the KV cache, the last position's logits only:

- time to first token: the prefill of the prompt and the argmax of its last position;
- prefill tokens/s: prompt tokens over that time;
- decode tokens/s: the remaining new tokens, one forward pass each, over their time.

With --contexts, the same measurement runs on the first C ids for each C (decode tokens/s only;
--new-tokens per point). Prints one JSON object on stdout; the caller measures peak RSS.
"""

import argparse
import inspect
import json
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model-dir", required=True)
    p.add_argument("--dtype", choices=["f32", "bf16"], required=True)
    p.add_argument("--ids", required=True, help="JSON file with the prompt's token ids")
    p.add_argument("--prompt-tokens", type=int, help="use the first N ids [default: all]")
    p.add_argument("--new-tokens", type=int, required=True)
    p.add_argument("--contexts", default="", help="comma-separated prompt lengths to sweep")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=1, help="repetitions; the fastest decode and the fastest prefill are kept")
    p.add_argument("--attn", default="sdpa", help="attn_implementation (sdpa, eager)")
    return p.parse_args()


def cache_name(model):
    """The KV cache's keyword: `cache` from transformers 5.2x, `past_key_values` before."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def greedy(model, torch, ids, new_tokens):
    key = cache_name(model)
    x = torch.tensor([ids])
    t0 = time.perf_counter()
    out = model(x, use_cache=True, logits_to_keep=1)
    nxt = out.logits[0, -1].argmax()
    tokens = [int(nxt)]
    t1 = time.perf_counter()
    past = getattr(out, key)
    for _ in range(new_tokens - 1):
        out = model(nxt.view(1, 1), **{key: past}, use_cache=True, logits_to_keep=1)
        past = getattr(out, key)
        nxt = out.logits[0, -1].argmax()
        tokens.append(int(nxt))
    t2 = time.perf_counter()
    steps = new_tokens - 1
    return {
        "prompt_tokens": len(ids),
        "generated_tokens": new_tokens,
        "ttft_ms": (t1 - t0) * 1e3,
        "prefill_tok_s": len(ids) / (t1 - t0),
        "decode_tok_s": steps / (t2 - t1) if steps > 0 else None,
        "token_ids": tokens,
    }


def best(model, torch, ids, new_tokens, runs):
    """The fastest decode, with the fastest prefill (and its TTFT) of any run, as llama-bench
    reports its best sample of each test."""
    results = [greedy(model, torch, ids, new_tokens) for _ in range(max(runs, 1))]
    fastest = max(results, key=lambda r: r["decode_tok_s"] or 0.0)
    prefill = max(results, key=lambda r: r["prefill_tok_s"])
    return {**fastest, "prefill_tok_s": prefill["prefill_tok_s"], "ttft_ms": prefill["ttft_ms"]}


def main():
    args = parse_args()
    import torch
    import transformers

    torch.set_num_threads(args.threads)
    transformers.utils.logging.disable_progress_bar()
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    with open(args.ids) as f:
        ids = json.load(f)
    if args.prompt_tokens:
        ids = ids[: args.prompt_tokens]

    t0 = time.perf_counter()
    model = transformers.AutoModelForCausalLM.from_pretrained(
        args.model_dir, dtype=dtype, attn_implementation=args.attn
    ).eval()
    load_s = time.perf_counter() - t0

    result = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": torch.get_num_threads(),
        "attn_implementation": args.attn,
        "load_s": load_s,
    }
    with torch.inference_mode():
        greedy(model, torch, ids[:8], 2)  # warm-up: allocator, kernels
        if args.contexts:
            result["sweep"] = []
            for c in (int(c) for c in args.contexts.split(",")):
                r = best(model, torch, ids[:c], args.new_tokens, args.runs)
                result["sweep"].append({"context": c, "decode_tok_s": r["decode_tok_s"]})
                print(f"context {c}: {r['decode_tok_s']:.2f} tok/s", file=sys.stderr, flush=True)
        else:
            result.update(best(model, torch, ids, args.new_tokens, args.runs))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
