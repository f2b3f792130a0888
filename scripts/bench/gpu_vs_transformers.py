"""Gemma 3 1B (random weights, real config) on a GPU: this engine against transformers.

Runs on the GPU machine, where torch and transformers are installed and the CUDA bundle
(`cargo xtask bundle --features cuda`) is unpacked:

    python scripts/bench/gpu_vs_transformers.py RUN_SH OUT_DIR

It builds the checkpoint there from a seed (nothing large is carried), writes a word-level
tokenizer whose tokens are `t<id>` so that both sides score exactly the same ids, then measures
bf16 prefill (512-token prompt), time to first token and greedy decode (128 tokens) for both, in
the same process run, and compares the engine's log-probs with transformers' on the prompt.
"""

import json
import math
import pathlib
import subprocess
import sys
import time

import torch
import transformers
from tokenizers import Tokenizer, models, pre_tokenizers, processors

PROMPT_TOKENS = 512
NEW_TOKENS = 128
SEED = 1234


def config():
    return transformers.Gemma3TextConfig(
        vocab_size=262144, hidden_size=1152, intermediate_size=6912, num_hidden_layers=26,
        num_attention_heads=4, num_key_value_heads=1, head_dim=256, query_pre_attn_scalar=256,
        sliding_window=512, sliding_window_pattern=6, max_position_embeddings=32768,
        rope_theta=1_000_000.0, rope_local_base_freq=10_000.0, rms_norm_eps=1e-6,
        bos_token_id=2, eos_token_id=[1, 106], pad_token_id=0,
    )


def write_checkpoint(path: pathlib.Path):
    torch.manual_seed(SEED)
    model = transformers.Gemma3ForCausalLM(config()).to(torch.bfloat16)
    model.save_pretrained(path)
    vocab = {f"t{i}": i for i in range(262144)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="t3"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="t2 $A", special_tokens=[("t2", 2)])
    tok.save(str(path / "tokenizer.json"))


def sync_time():
    torch.cuda.synchronize()
    return time.perf_counter()


def transformers_run(path, ids):
    model = transformers.Gemma3ForCausalLM.from_pretrained(
        path, dtype=torch.bfloat16, attn_implementation="eager"
    ).cuda().eval()
    x = torch.tensor([ids], device="cuda")
    with torch.no_grad():
        model(x)  # warm-up: kernels, allocator
        t0 = sync_time()
        out = model(x, use_cache=True)
        nxt = out.logits[0, -1].argmax()
        nxt_id = int(nxt.item())
        t1 = sync_time()
        tokens, past = [nxt_id], out.past_key_values
        for _ in range(NEW_TOKENS - 1):
            out = model(nxt.view(1, 1), past_key_values=past, use_cache=True)
            past = out.past_key_values
            nxt = out.logits[0, -1].argmax()
            tokens.append(int(nxt.item()))
        t2 = sync_time()
        logits = model(x).logits[0].float()
    lp = torch.log_softmax(logits, dim=-1)
    logprobs = [lp[i, ids[i + 1]].item() for i in range(len(ids) - 1)]
    return {
        "ttft_ms": (t1 - t0) * 1e3,
        "prefill_tok_s": len(ids) / (t1 - t0),
        "decode_tok_s": (NEW_TOKENS - 1) / (t2 - t1),
        "token_ids": tokens,
        "logprobs": logprobs,
    }


def engine_run(run_sh, path, ids):
    prompt = " ".join(f"t{i}" for i in ids[1:])
    gen = ["gemma3", "generate", "--model-dir", str(path), "--prompt", prompt, "--max-tokens", str(NEW_TOKENS),
           "--temperature", "0", "--ignore-eos", "--device", "cuda", "--dtype", "bf16", "--json"]
    subprocess.run([run_sh, *gen], check=True, capture_output=True)  # warm-up: PTX JIT, page cache
    out = json.loads(subprocess.run([run_sh, *gen], check=True, capture_output=True, text=True).stdout)
    ppl = ["gemma3", "perplexity", "--model-dir", str(path), "--text", prompt, "--device", "cuda", "--dtype", "bf16", "--json"]
    scored = json.loads(subprocess.run([run_sh, *ppl], check=True, capture_output=True, text=True).stdout)
    assert scored["token_ids"] == ids, "the engine tokenized the prompt differently"
    return {**out["stats"], "token_ids": out["token_ids"], "logprobs": scored["logprobs"]}


def main():
    run_sh, out_dir = sys.argv[1], pathlib.Path(sys.argv[2])
    out_dir.mkdir(parents=True, exist_ok=True)
    path = pathlib.Path("/tmp/gemma3-1b-random")
    write_checkpoint(path)
    gen = torch.Generator().manual_seed(SEED)
    ids = [2] + torch.randint(10, 262144, (PROMPT_TOKENS - 1,), generator=gen).tolist()
    ours = engine_run(run_sh, path, ids)
    ref = transformers_run(path, ids)
    diffs = [abs(a - b) for a, b in zip(ours["logprobs"], ref["logprobs"])]
    ppl = lambda lp: math.exp(-sum(lp) / len(lp))
    agree = next((i for i, (a, b) in enumerate(zip(ours["token_ids"], ref["token_ids"])) if a != b), NEW_TOKENS)
    result = {
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "prompt_tokens": PROMPT_TOKENS,
        "new_tokens": NEW_TOKENS,
        "engine": {k: v for k, v in ours.items() if k not in ("token_ids", "logprobs")},
        "transformers_eager": {k: v for k, v in ref.items() if k not in ("token_ids", "logprobs")},
        "decode_ratio": ours["decode_tok_s"] / ref["decode_tok_s"],
        "prefill_ratio": ours["prefill_tok_s"] / ref["prefill_tok_s"],
        "logprob_max_abs_diff": max(diffs),
        "logprob_mean_abs_diff": sum(diffs) / len(diffs),
        "perplexity": {"engine": ppl(ours["logprobs"]), "transformers": ppl(ref["logprobs"])},
        "greedy_tokens_agreeing_from_start": agree,
    }
    (out_dir / "gpu-bench.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
