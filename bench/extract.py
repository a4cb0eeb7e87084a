"""Attention extraction: the recorder against the old approach, on the same prompts, in one run.

    python bench/extract.py            # full: (a) 1024 k-th smallest examples, (b) 2000-token prompts
    python bench/extract.py --quick    # smaller cases, under a minute
    python bench/extract.py --cases c  # only (c): SmolLM2-135M's config, 4-shot ProofWriter length
    python bench/extract.py --cases d  # only (d): (c) with fixed shots, the shared prefix run once

The old approach is one example per forward pass with eager attention and output_attentions=True,
the query rows sliced from the full matrices afterwards. The recorder runs batched with sdpa and
recomputes only the query rows. Cases:
  (a) the tiny GPT-2 (4 layers) on k-th smallest prompts of 16 tokens, the last token as query;
  (b) a randomly initialised Llama-architecture model (8 layers, grouped-query attention) on
      prompts of about 2000 tokens, the last 16 tokens as query rows (an in-context prompt's
      question);
  (c) a randomly initialised model of SmolLM2-135M's exact config (30 layers, 9 heads, 3 KV heads,
      vocabulary 49152; no download) on prompts of 4-shot ProofWriter length (540-600 tokens, 24
      statements, 12 question tokens), through the library's own extraction (features.extract:
      batches by length under a token cap, right padding, the answer logits). Per token cap it
      measures the recorder against a plain forward of the same batches (the same extract call
      recording no layer), timed batch by batch, alternating which goes first, in one process
      (ratio goal <= 1.15), and the peak extra memory of each in its own process; the old loop
      runs once. --caps changes the caps (in tokens; one prompt per batch up to eight by default).
  (d) case (c)'s model and lengths with fixed shots: every prompt begins with the same 460 tokens
      (4 shots), then its own question part. extract with the shared prefix run once and its
      keys/values reused (the default) against every prompt run whole, batch by batch,
      alternating which goes first, in one process; prints the ratio and the largest feature
      difference.
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
from mechprobe.attention.features import Example, batches_by_length, example_features, extract  # noqa: E402
from mechprobe.memory import PeakMemory  # noqa: E402
from mechprobe.attention.recorder import Recorder  # noqa: E402

CASES = {
    # name: (model, examples, prompt length, query rows, recorder batch size)
    "a": {"model": "tiny", "n": 1024, "length": 16, "rows": 1, "batch": 256},
    "b": {"model": "llama", "n": 8, "length": 2000, "rows": 16, "batch": 1},
    "c": {"model": "smollm2", "n": 8, "length": 570, "rows": 12, "batch": 64,
          "caps": [600, 1200, 2400, 4800]},
}
# Case (b) runs one prompt per forward: on a CPU, 2000-token prompts gain nothing from batching
# and each extra prompt in flight adds its activations (measured here: batch 1 9.9x faster with
# 0.039 of the memory, batch 2 6.9x and 0.079, batch 4 6.6x and 0.139). probe.py caps its batches
# by tokens (--max-batch-tokens) for the same reason.
CASES["d"] = {"model": "smollm2", "n": 32, "length": 570, "shots": 460, "rows": 12, "batch": 16,
              "cap": 4800}
QUICK = {"a": {"n": 256}, "b": {"n": 4, "length": 1000}, "c": {"n": 4, "caps": [600, 2400]},
         "d": {"n": 8}}
SMOLLM2 = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
               num_attention_heads=9, num_key_value_heads=3, rope_theta=100000.0,
               max_position_embeddings=8192, tie_word_embeddings=True, rms_norm_eps=1e-5)


def build_model(kind, attn):
    from transformers import AutoModelForCausalLM, LlamaConfig

    from mechprobe.tiny_models import build_tiny

    torch.manual_seed(0)
    if kind == "tiny":
        model, _ = build_tiny(range(512))
        model.set_attn_implementation(attn)
    elif kind == "smollm2":
        model = AutoModelForCausalLM.from_config(LlamaConfig(**SMOLLM2), attn_implementation=attn)
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


def proofwriter_like(case, vocab):
    """Examples of 4-shot ProofWriter length: the question's 24 statements of 8 tokens just
    before its 12 query tokens, after the shots."""
    rng = np.random.default_rng(0)
    examples = []
    for length in rng.integers(case["length"] - 30, case["length"] + 31, size=case["n"]):
        start = length - case["rows"] - 24 * 8
        examples.append(Example(input_ids=rng.integers(2, vocab, size=length).tolist(),
                                query=list(range(length - case["rows"], length)),
                                statements=[list(range(start + 8 * s, start + 8 * s + 8))
                                            for s in range(24)]))
    return examples


def case_d(quick):
    """Fixed shots: the shared prefix run once against whole prompts, in this process."""
    case = {**CASES["d"], **(QUICK["d"] if quick else {})}
    recorder = Recorder(build_model("smollm2", "sdpa"))
    examples = proofwriter_like(case, recorder.model.config.vocab_size)
    shots = examples[0].input_ids[:case["shots"]]
    for example in examples:
        example.input_ids[:case["shots"]] = shots
    layers = list(range(recorder.n_layers))

    def run(group, reuse):
        return extract(recorder, group, layers, case["batch"], max_tokens=case["cap"],
                       reuse_prefix=reuse)[0]

    run(examples[:2], True)
    run(examples[:2], False)      # warm-up
    spent, features = {True: 0.0, False: 0.0}, {True: [], False: []}
    batches = batches_by_length(examples, case["batch"], case["cap"])
    for index, batch in enumerate(batches):
        group = [examples[i] for i in batch]
        for reuse in (True, False) if index % 2 else (False, True):
            started = time.perf_counter()
            features[reuse] += run(group, reuse)
            spent[reuse] += time.perf_counter() - started
    difference = max(float(np.abs(a - b).max()) for a, b in zip(features[True], features[False]))
    print(f"(d) SmolLM2-135M config, random init, {case['n']} prompts of about {case['length']} "
          f"tokens sharing their first {case['shots']}, {len(batches)} batches:")
    print(f"extract-d: whole_over_prefix_reused={spent[False] / spent[True]:.2f} "
          f"prompts_per_s={case['n'] / spent[True]:.2f} (whole {case['n'] / spent[False]:.2f}) "
          f"max_abs_diff={difference:.1e}")


def old_features(model, examples, device="cpu"):
    """The old loop: one example per eager forward, all layers' full attention materialised."""
    out = []
    with torch.no_grad():
        for e in examples:
            ids = torch.tensor([e.input_ids], device=device)
            attentions = model(input_ids=ids, output_attentions=True).attentions
            weights = torch.stack([a[0, :, e.query].mean(0) for a in attentions])[:, None].float()
            out.append(example_features(weights.cpu().numpy(), e))
    return out


def extract_features(recorder, examples, cap, record=True):
    """features.extract as probe.py calls it; record=False: the same batches, no layer recorded."""
    layers = list(range(recorder.n_layers)) if record else []
    return extract(recorder, examples, layers, batch_size=CASES["c"]["batch"], max_tokens=cap)[0]


def worker_c(case, approach, cap, result_path):
    """Case (c), one approach in this process. 'new' and 'plain' (at a token cap) measure their
    peak extra memory first; 'new' then times recorder and plain forward batch by batch."""
    model = build_model("smollm2", "eager" if approach == "old" else "sdpa")
    examples = proofwriter_like(case, model.config.vocab_size)
    result = {"n": case["n"], "length": case["length"], "cap": cap}
    if approach == "old":
        old_features(model, examples[:1])
        with PeakMemory("cpu") as peak:
            started = time.perf_counter()
            features = old_features(model, examples)
            result["seconds"] = time.perf_counter() - started
    else:
        recorder = Recorder(model)
        extract_features(recorder, examples[:1], cap, approach == "new")   # warm-up
        with PeakMemory("cpu") as peak:
            started = time.perf_counter()
            features = extract_features(recorder, examples, cap, approach == "new")
            result["seconds"] = time.perf_counter() - started
        if approach == "new":
            spent = {True: 0.0, False: 0.0}
            for index, batch in enumerate(batches_by_length(examples, case["batch"], cap)):
                group = [examples[i] for i in batch]
                for record in (True, False) if index % 2 else (False, True):
                    started = time.perf_counter()
                    extract_features(recorder, group, cap, record)
                    spent[record] += time.perf_counter() - started
            result.update(interleaved_new=spent[True], interleaved_plain=spent[False],
                          batches=index + 1)
    result["peak_extra_bytes"] = peak.extra_bytes
    if features[0] is not None:
        np.save(result_path + ".npy", np.concatenate(features))
    with open(result_path, "w") as f:
        json.dump(result, f)


def worker(case_name, approach, quick, result_path, cap=None):
    """One approach on one case in this process: time, peak extra memory, recorded rows."""
    case = {**CASES[case_name], **(QUICK[case_name] if quick else {})}
    torch.set_num_threads(torch.get_num_threads())
    if case_name == "c":
        return worker_c(case, approach, cap, result_path)
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


def measure(case_name, approach, quick, tmp, cap=None):
    path = os.path.join(tmp, f"{case_name}-{approach}-{cap}.json")
    command = [sys.executable, __file__, "--worker", case_name, approach, path]
    command += (["--quick"] if quick else []) + ([] if cap is None else ["--caps", str(cap)])
    subprocess.run(command, check=True)
    with open(path) as f:
        result = json.load(f)
    result["rows"] = np.load(path + ".npy") if os.path.exists(path + ".npy") else None
    return result


def case_c(quick, caps, tmp):
    """Rows per token cap: recorder / plain forward, old loop / recorder, peak extra memory."""
    old = measure("c", "old", quick, tmp)
    table = []
    for cap in caps:
        plain, new = measure("c", "plain", quick, tmp, cap), measure("c", "new", quick, tmp, cap)
        table.append({
            "cap_tokens": cap, "batches": new["batches"], "prompts": new["n"],
            "new_prompts_per_s": new["n"] / new["interleaved_new"],
            "new_over_plain": new["interleaved_new"] / new["interleaved_plain"],
            "old_over_new": old["seconds"] / new["interleaved_new"],
            "plain_peak_MB": plain["peak_extra_bytes"] / 2**20,
            "new_peak_MB": new["peak_extra_bytes"] / 2**20,
            "old_peak_MB": old["peak_extra_bytes"] / 2**20,
            "max_abs_diff": f'{float(np.abs(old["rows"] - new["rows"]).max()):.1e}'})
    return old, table


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller cases (under a minute)")
    parser.add_argument("--cases", default="abcd", help="which cases to run, e.g. c (default abcd)")
    parser.add_argument("--caps", help="case (c): token caps per batch, comma-separated "
                                       "(default 600,1200,2400,4800: 1, 2, 4, 8 prompts)")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(*args.worker[:2], args.quick, args.worker[2],
                      None if args.caps is None else int(args.caps))
    os.environ["TQDM_DISABLE"] = "1"   # the workers' progress bars

    table = []
    if "d" in args.cases:
        case_d(args.quick)
    with tempfile.TemporaryDirectory() as tmp:
        if "c" in args.cases:
            case = {**CASES["c"], **(QUICK["c"] if args.quick else {})}
            caps = case["caps"] if args.caps is None else [int(c) for c in args.caps.split(",")]
            old, rows = case_c(args.quick, caps, tmp)
            print(f"(c) SmolLM2-135M config, random init, {old['n']} prompts of about "
                  f"{old['length']} tokens: old loop {old['n'] / old['seconds']:.3f} prompts/s")
            print(format_table(rows, list(rows[0])))
            best = max(rows, key=lambda r: r["new_prompts_per_s"])
            print(f"extract-c: best_cap={best['cap_tokens']} new_over_plain="
                  f"{best['new_over_plain']:.3f} (goal <= 1.15) old_over_new={best['old_over_new']:.2f} "
                  f"new_peak_MB={best['new_peak_MB']:.0f} old_peak_MB={best['old_peak_MB']:.0f}")
        for name in [n for n in ("a", "b") if n in args.cases]:
            old, new = measure(name, "old", args.quick, tmp), measure(name, "new", args.quick, tmp)
            table.append({
                "case": name, "examples": old["n"], "tokens": old["length"],
                "old_ex_per_s": old["n"] / old["seconds"], "new_ex_per_s": new["n"] / new["seconds"],
                "speedup": old["seconds"] / new["seconds"],
                "old_peak_MB": old["peak_extra_bytes"] / 2**20,
                "new_peak_MB": new["peak_extra_bytes"] / 2**20,
                "memory_ratio": new["peak_extra_bytes"] / max(old["peak_extra_bytes"], 1),
                "max_abs_diff": float(np.abs(old["rows"] - new["rows"]).max())})
    if not table:
        return
    print(format_table(table, list(table[0])))
    b = table[-1]
    print(f"extract: speedup={b['speedup']:.2f} memory_ratio={b['memory_ratio']:.4f} "
          f"max_abs_diff={b['max_abs_diff']:.2e}")


if __name__ == "__main__":
    main()
