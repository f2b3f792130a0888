"""Reference outputs for the tiny Gemma 3 checkpoints, from Hugging Face transformers.

The Rust tests compare the engine with these numbers. Regenerate them after changing a tiny
checkpoint or the prompts (see README.md, "Reference numerics"):

    python3 -m venv /tmp/refvenv && /tmp/refvenv/bin/pip install -r scripts/reference/requirements.txt
    /tmp/refvenv/bin/python scripts/reference/make_reference.py

Tokens come from the checkpoint's tokenizer.json through the `tokenizers` library, exactly as
the Rust engine tokenizes, so both sides score the same ids.
"""

import json
import math
import pathlib

import torch
import transformers
from safetensors.torch import save_file
from tokenizers import Tokenizer

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODELS = ROOT / "golden" / "models"
OUT = ROOT / "golden" / "reference"

PROMPT = "The clockmaker opens his shop, and the students ask why the pendulum swings."
GREEDY_TOKENS = 24

CHECKPOINTS = {
    "tiny-text": transformers.Gemma3ForCausalLM,
    "tiny-multimodal": transformers.Gemma3ForConditionalGeneration,
}


def logits_of(model, ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0].float()


def logprobs_of(logits, ids):
    lp = torch.log_softmax(logits.double(), dim=-1)
    return [lp[i, ids[i + 1]].item() for i in range(len(ids) - 1)]


def perplexity(logprobs):
    return math.exp(-sum(logprobs) / len(logprobs))


def greedy(model, ids, eos):
    """Greedy decoding by full recomputation: the plainest possible reference."""
    out = []
    seq = list(ids)
    for _ in range(GREEDY_TOKENS):
        nxt = int(torch.argmax(logits_of(model, seq)[-1]).item())
        out.append(nxt)
        seq.append(nxt)
        if nxt in eos:
            break
    return out


def main():
    torch.manual_seed(0)
    long_text = (OUT / "long.txt").read_text()
    for name, cls in CHECKPOINTS.items():
        ckpt = MODELS / name
        tok = Tokenizer.from_file(str(ckpt / "tokenizer.json"))
        model = cls.from_pretrained(ckpt, dtype=torch.float32, attn_implementation="eager").eval()
        eos = json.loads((ckpt / "config.json").read_text())["eos_token_id"]

        prompt_ids = tok.encode(PROMPT).ids
        prompt_logits = logits_of(model, prompt_ids)
        prompt_lp = logprobs_of(prompt_logits, prompt_ids)
        long_ids = tok.encode(long_text).ids
        long_lp = logprobs_of(logits_of(model, long_ids), long_ids)

        dest = OUT / name
        dest.mkdir(parents=True, exist_ok=True)
        save_file({"prompt_logits": prompt_logits.contiguous()}, str(dest / "logits.safetensors"))
        doc = {
            "generator": f"transformers {transformers.__version__}, torch {torch.__version__}, f32, eager attention",
            "checkpoint": f"golden/models/{name}",
            "prompt": {
                "text": PROMPT,
                "token_ids": prompt_ids,
                "logprobs": prompt_lp,
                "perplexity": perplexity(prompt_lp),
                "greedy_token_ids": greedy(model, prompt_ids, eos),
            },
            "long": {
                "text_file": "golden/reference/long.txt",
                "token_ids": long_ids,
                "logprobs": long_lp,
                "perplexity": perplexity(long_lp),
            },
        }
        (dest / "reference.json").write_text(json.dumps(doc, indent=1) + "\n")
        print(f"{name}: {len(prompt_ids)} prompt tokens, {len(long_ids)} long tokens, "
              f"ppl {doc['prompt']['perplexity']:.4f} / {doc['long']['perplexity']:.4f}, "
              f"greedy {doc['prompt']['greedy_token_ids']}")


if __name__ == "__main__":
    main()
