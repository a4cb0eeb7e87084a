"""Statement knockout against a plain forward, on the same prompts, side by side in one run.

    python bench/knockout.py            # both cases
    python bench/knockout.py --quick    # fewer prompts, under a minute on 2 cores
    python bench/knockout.py --cases b  # only (b)

Both sides run through the library's own scoring loop (analysis.knockout.answer_scores: batches
by length, right padding, the gold answer's log-probability): the plain side hides nothing, the
knockout side hides a few statements from the question on, at every layer or in one layer
window. Batches are timed one by one, alternating which side goes first, and summed; the ratio
is knockout time / plain time (goal <= 1.2). Cases:
  (a) the tiny GPT-2 (4 layers, random weights: the time does not depend on them) on k-th
      smallest prompts of 16 tokens, the last token as the question, 2 of 16 numbers hidden;
  (b) a randomly initialised model of SmolLM2-135M's config (30 layers, grouped-query attention)
      on prompts of 4-shot ProofWriter length (540-600 tokens), 24 statements of 12 tokens,
      the last 12 tokens the question, 3 statements hidden.
The last line is `knockout: ratio_all=<x> ratio_window=<y>` for the last case run.
"""

import argparse
import os
import sys
import time

import numpy as np
import torch

# This checkout's package and bench/, whatever the working directory.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), HERE]

from extract import SMOLLM2  # noqa: E402
from mechprobe.analysis.knockout import Scored, answer_scores  # noqa: E402
from mechprobe.attention.features import Example  # noqa: E402
from mechprobe.attention.recorder import Recorder  # noqa: E402
from mechprobe.cli import format_table  # noqa: E402

CASES = {"a": {"model": "tiny", "n": 1024, "batch": 256, "cap": 4096, "hide": 2},
         "b": {"model": "smollm2", "n": 16, "batch": 8, "cap": 2400, "hide": 3}}
QUICK = {"a": {"n": 256}, "b": {"n": 4}}


def build(kind):
    from transformers import AutoModelForCausalLM, LlamaConfig

    from mechprobe.tiny_models import build_tiny

    torch.manual_seed(0)
    if kind == "tiny":
        model, _ = build_tiny(range(512))
    else:
        model = AutoModelForCausalLM.from_config(LlamaConfig(**SMOLLM2))
    return model.eval()


def prompts(kind, n, hide, seed=0):
    """Scored prompts and, per prompt, the statements to hide."""
    rng = np.random.default_rng(seed)
    items, hidden = [], []
    for _ in range(n):
        if kind == "tiny":
            ids = rng.integers(2, 514, size=16).tolist()
            example = Example(ids, [15], [[j] for j in range(16)])
        else:
            length = int(rng.integers(540, 600))
            ids = rng.integers(3, 49152, size=length).tolist()
            start = length - 12 - 24 * 12
            example = Example(ids, list(range(length - 12, length)),
                              [list(range(start + 12 * s, start + 12 * (s + 1))) for s in range(24)])
        items.append(Scored(example, None, None, target=int(rng.integers(3, 500))))
        hidden.append(sorted(rng.choice(len(example.statements), size=hide, replace=False).tolist()))
    return items, hidden


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def side_by_side(recorder, items, hidden, layers, case, repeats):
    """(plain seconds, knockout seconds) over all prompts, batch by batch, alternating order."""
    plain = knocked = 0.0
    batch = case["batch"]
    for repeat in range(repeats):
        for start in range(0, len(items), batch):
            chunk, cut = items[start:start + batch], hidden[start:start + batch]
            runs = [("plain", lambda: answer_scores(recorder, chunk, batch_size=batch,
                                                    max_tokens=case["cap"])),
                    ("knockout", lambda: answer_scores(recorder, chunk, cut, layers,
                                                       batch_size=batch, max_tokens=case["cap"]))]
            if (repeat + start // batch) % 2:
                runs.reverse()
            for name, fn in runs:
                seconds = timed(fn)
                if name == "plain":
                    plain += seconds
                else:
                    knocked += seconds
    return plain, knocked


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cases", default="ab")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for name in args.cases:
        case = {**CASES[name], **(QUICK[name] if args.quick else {})}
        recorder = Recorder(build(case["model"]))
        items, hidden = prompts(case["model"], case["n"], case["hide"])
        answer_scores(recorder, items[:case["batch"]], batch_size=case["batch"])    # warm-up
        all_layers = list(range(recorder.n_layers))
        plain, everywhere = side_by_side(recorder, items, hidden, all_layers, case, args.repeats)
        plain_w, window = side_by_side(recorder, items, hidden, [1], case, args.repeats)
        per = 1000 / (case["n"] * args.repeats)
        rows.append({"case": name, "model": case["model"], "prompts": case["n"],
                     "plain_ms": plain * per, "knockout_all_ms": everywhere * per,
                     "ratio_all": everywhere / plain, "plain_ms_2": plain_w * per,
                     "knockout_window_ms": window * per, "ratio_window": window / plain_w})
    print("time per prompt (ms), plain forward and statement knockout, measured side by side; "
          f"{args.repeats} repeats; window = layer 1 only")
    print(format_table(rows, list(rows[0])))
    last = rows[-1]
    print(f"knockout: ratio_all={last['ratio_all']:.3f} ratio_window={last['ratio_window']:.3f}")


if __name__ == "__main__":
    main()
