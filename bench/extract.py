"""Attention extraction: the recorder against the old approach, on the same prompts, in one run.

    python bench/extract.py            # full: (a) 1024 k-th smallest examples, (b) 2000-token prompts
    python bench/extract.py --quick    # smaller cases, under a minute

The old approach is one example per forward pass with eager attention and output_attentions=True,
the query rows sliced from the full matrices afterwards. The recorder runs batched with sdpa and
recomputes only the query rows. Cases:
  (a) the tiny GPT-2 (4 layers) on k-th smallest prompts of 16 tokens, the last token as query;
  (b) a randomly initialised Llama-architecture model (8 layers, grouped-query attention) on
      prompts of about 2000 tokens, the last 16 tokens as query rows (an in-context prompt's
      question).
Each approach runs in a fresh subprocess, so its peak extra memory (peak RSS above the RSS after
loading the model and prompts; CPU only) is its own. Prints per case throughput
ratio, peak extra memory ratio and the max absolute difference of the recorded rows; the last line
is `extract: speedup=<x> memory_ratio=<y> max_abs_diff=<z>` for case (b).
"""

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

from mechprobe.cli import format_table  # noqa: E402
from mechprobe.attention.memory import PeakMemory  # noqa: E402
from mechprobe.attention.recorder import Recorder  # noqa: E402

CASES = {
    # name: (model, examples, prompt length, query rows, recorder batch size)
    "a": {"model": "tiny", "n": 1024, "length": 16, "rows": 1, "batch": 256},
    "b": {"model": "llama", "n": 8, "length": 2000, "rows": 16, "batch": 1},
}
# Case (b) runs one prompt per forward: on a CPU, 2000-token prompts gain nothing from batching
# and each extra prompt in flight adds its activations (measured here: batch 1 9.9x faster with
# 0.039 of the memory, batch 2 6.9x and 0.079, batch 4 6.6x and 0.139). probe.py caps its batches
# by tokens (--max-batch-tokens) for the same reason.
QUICK = {"a": {"n": 256}, "b": {"n": 4, "length": 1000}}


def build_model(kind, attn):
    from transformers import AutoModelForCausalLM, LlamaConfig

    from mechprobe.models import build_tiny

    torch.manual_seed(0)
    if kind == "tiny":
        model, _ = build_tiny(range(512))
        model.set_attn_implementation(attn)
    else:
        config = LlamaConfig(vocab_size=4096, hidden_size=256, intermediate_size=688,
                             num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=2,
                             max_position_embeddings=4096)
        model = AutoModelForCausalLM.from_config(config, attn_implementation=attn)
    return model.eval()


def prompts(case, vocab):
    rng = np.random.default_rng(0)
    return torch.from_numpy(rng.integers(2, vocab, size=(case["n"], case["length"])))


def old_way(model, ids, n_rows):
    rows = []
    with torch.no_grad():
        for example in ids:
            attentions = model(input_ids=example[None], output_attentions=True).attentions
            rows.append(torch.stack([a[0, :, -n_rows:].mean(0) for a in attentions]).float())
    return torch.stack(rows)  # (n, layers, R, N)


def new_way(model, ids, n_rows, batch):
    recorder = Recorder(model)
    out = []
    positions = torch.arange(ids.shape[1] - n_rows, ids.shape[1])
    for start in range(0, len(ids), batch):
        chunk = ids[start:start + batch]
        _, recorded = recorder.forward(chunk, torch.ones_like(chunk),
                                       rows=positions.expand(len(chunk), -1))
        out.append(torch.stack([recorded[layer] for layer in sorted(recorded)], dim=1))
    return torch.cat(out)


def worker(case_name, approach, quick, result_path):
    """One approach on one case in this process: time, peak extra memory, recorded rows."""
    case = {**CASES[case_name], **(QUICK[case_name] if quick else {})}
    torch.set_num_threads(torch.get_num_threads())
    model = build_model(case["model"], "eager" if approach == "old" else "sdpa")
    ids = prompts(case, model.config.vocab_size)
    # Warm-up on two short prompts: one-time costs (kernel selection, thread pools) are not the
    # approach's. The recorded rows are kept in both approaches and count in both.
    run = old_way if approach == "old" else functools.partial(new_way, batch=case["batch"])
    run(model, ids[:2, :32], 1)
    with PeakMemory("cpu") as peak:
        started = time.perf_counter()
        rows = run(model, ids, case["rows"])
        seconds = time.perf_counter() - started
    np.save(result_path + ".npy", rows.numpy())
    with open(result_path, "w") as f:
        json.dump({"seconds": seconds, "peak_extra_bytes": peak.extra_bytes, "n": case["n"],
                   "length": case["length"]}, f)


def measure(case_name, approach, quick, tmp):
    path = os.path.join(tmp, f"{case_name}-{approach}.json")
    command = [sys.executable, __file__, "--worker", case_name, approach, path]
    subprocess.run(command + (["--quick"] if quick else []), check=True)
    with open(path) as f:
        result = json.load(f)
    result["rows"] = np.load(path + ".npy")
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller cases (under a minute)")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(*args.worker[:2], args.quick, args.worker[2])

    table = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("a", "b"):
            old, new = measure(name, "old", args.quick, tmp), measure(name, "new", args.quick, tmp)
            table.append({
                "case": name, "examples": old["n"], "tokens": old["length"],
                "old_ex_per_s": old["n"] / old["seconds"], "new_ex_per_s": new["n"] / new["seconds"],
                "speedup": old["seconds"] / new["seconds"],
                "old_peak_MB": old["peak_extra_bytes"] / 2**20,
                "new_peak_MB": new["peak_extra_bytes"] / 2**20,
                "memory_ratio": new["peak_extra_bytes"] / max(old["peak_extra_bytes"], 1),
                "max_abs_diff": float(np.abs(old["rows"] - new["rows"]).max())})
    print(format_table(table, list(table[0])))
    b = table[-1]
    print(f"extract: speedup={b['speedup']:.2f} memory_ratio={b['memory_ratio']:.4f} "
          f"max_abs_diff={b['max_abs_diff']:.2e}")


if __name__ == "__main__":
    main()
