"""Benchmark: the default tiny fine-tuning run, and same-seed determinism.

    python bench/finetune_tiny.py            # full: default min01 run (about 5 minutes) + determinism
    python bench/finetune_tiny.py --quick    # 200-step runs only (under a minute)

Targets: the default tiny min01 run reaches >= 95% test accuracy within 5 minutes of
training on a 2-core CPU; the same seed twice gives identical metrics. Prints one line per run and
ends with `finetune: test_accuracy=<a> train_seconds=<s> deterministic=<bool>`.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def finetune(out, *extra):
    start = time.perf_counter()
    subprocess.run([sys.executable, os.path.join(ROOT, "finetune_gpt2.py"), "--task", "min01",
                    "--device", "cpu", "--out", out, *extra], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    print(f"{' '.join(extra) or 'defaults':<24} steps={results['steps']:<5} "
          f"test_accuracy={results['test_accuracy']:.4f} best_val={results['best_val_accuracy']:.4f} "
          f"train_seconds={results['train_seconds']:.1f} wall_seconds={wall:.1f}", flush=True)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        short = ["--steps", "200", "--eval-every", "50"]
        a = finetune(os.path.join(tmp, "a"), *short)
        b = finetune(os.path.join(tmp, "b"), *short)
        deterministic = a["history"] == b["history"] and a["test_accuracy"] == b["test_accuracy"]
        main_run = a if args.quick else finetune(os.path.join(tmp, "default"))
        print(f"to reach 95% validation accuracy: "
              f"{first_reaching(main_run, 0.95)}; 99%: {first_reaching(main_run, 0.99)}")
    print(f"finetune: test_accuracy={main_run['test_accuracy']:.4f} "
          f"train_seconds={main_run['train_seconds']:.1f} deterministic={deterministic}")


def first_reaching(results, level):
    """Step and approximate training seconds at the first validation at or above `level`."""
    for row in results["history"]:
        if row["val_accuracy"] >= level:
            seconds = results["train_seconds"] * row["step"] / results["steps"]
            return f"step {row['step']} (~{seconds:.0f} s)"
    return "not reached"


if __name__ == "__main__":
    main()
