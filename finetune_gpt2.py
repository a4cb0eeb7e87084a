"""Fine-tune a GPT-2 (the embedded tiny one by default) on the k-th smallest element task or on
ProofWriter's depth <= 1 questions.

    python finetune_gpt2.py --task min01 --out runs/tiny-min01
    python finetune_gpt2.py --task min01 --model gpt2 --device cuda --out runs/gpt2-min01
    python finetune_gpt2.py --task proofwriter --data runs/data/proofwriter --out runs/finetune-proofwriter

Writes OUT/model/ (best checkpoint by validation accuracy, reloadable with the transformers Auto
classes), OUT/results.json, OUT/loss.{png,pdf} and OUT/accuracy.{png,pdf}. An interrupted run
resumes from OUT/checkpoint/ when rerun with the same arguments.
"""

import argparse
import os

from mechprobe.cli import (ArgumentParser, NoCheckpointYet, add_common_args, count, number,
                           quiet_libraries, run)
from mechprobe.tiny_models import TINY_TEXT, TinyConfig
from mechprobe.outputs import output_dir
from mechprobe.training.loop import TUNE_CHOICES


def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--task", default="min01",
                        help="ksmallest with --k K (as probe.py), minKK its short form (KK the "
                        "0-based k, two digits: min01 is --task ksmallest --k 1), or proofwriter")
    parser.add_argument("--k", type=count(0, 99),
                        help="with --task ksmallest: the k-th smallest, 0-based")
    parser.add_argument("--data", help="proofwriter: ProofWriter release folder (make_data.py proofwriter)")
    parser.add_argument("--max-qdep", type=count(0, 100), default=1,
                        help="proofwriter: train and test on questions of at most this depth")
    parser.add_argument("--tune", default="all", choices=TUNE_CHOICES,
                        help="which parameters to train (the rest stay frozen)")
    parser.add_argument("--list-len", type=count(2, 1024), default=16, help="numbers per example (L)")
    parser.add_argument("--num-set", type=count(2, 10**6), default=512, help="size of the number set (S)")
    parser.add_argument("--n-train", type=count(1, 10**7), help="training examples (minKK default: tiny 245000, "
                        "pretrained 980000; validation and test get n_train/98 each, 98/1/1; "
                        "proofwriter default: every train-split question)")
    parser.add_argument("--n-eval", type=count(1, 10**6), help="minKK: override the validation and test size "
                        "(by default validation uses at most max(2000, the examples trained on "
                        "between two validations) of them); proofwriter: validation questions "
                        "sampled from the dev split (default 2000; the test split is used whole)")
    parser.add_argument("--epochs", type=count(1, 10**4), help="passes over the training set (default 2)")
    parser.add_argument("--steps", type=count(1, 10**8), help="optimizer steps; overrides --epochs")
    parser.add_argument("--lr", type=number(), help="AdamW learning rate (tiny 1e-3, pretrained 2e-5)")
    parser.add_argument("--warmup", type=count(0, 10**8), help="linear warm-up steps, then constant "
                        "(tiny 200, pretrained 500; capped at a tenth of the run)")
    parser.add_argument("--schedule", choices=["constant", "linear"],
                        help="learning rate after warm-up: constant (the paper; pretrained default) "
                        "or linear decay to 0 (tiny default)")
    parser.add_argument("--lm-weight", type=number(inclusive=True),
                        help="weight of an extra next-token loss on the prompt's tokens (default: "
                        "proofwriter tiny 1.0, else 0)")
    parser.add_argument("--curriculum", type=number(inclusive=True, maximum=1),
                        help="proofwriter: fraction of the steps on short theories first (default: "
                        "tiny 0.5, pretrained 0)")
    parser.add_argument("--eval-every", type=count(1, 10**8), help="steps between validations (default: 20 per run, at least 10 steps apart)")
    parser.add_argument("--restart", action="store_true",
                        help="discard an interrupted run's checkpoint instead of resuming it")
    parser.add_argument("--tiny-layers", type=count(1, 256),
                        help=f"layers of the tiny model (only with --model tiny; default {TinyConfig.n_layer})")
    parser.add_argument("--tiny-heads", type=count(1, 256), help=f"default {TinyConfig.n_head}")
    parser.add_argument("--tiny-dim", type=count(1, 2**16),
                        help=f"default {TinyConfig.n_embd} (minKK), {TINY_TEXT.n_embd} (proofwriter)")
    # Ends the run after N steps as if interrupted: for exercising resume by hand.
    parser.add_argument("--stop-after", type=count(1), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.task == "ksmallest":
        if args.k is None:
            parser.error("--task ksmallest needs --k K, the 0-based k (or write it --task minKK)")
        args.task = f"min{args.k:02d}"
    elif args.k is not None:
        parser.error(f"--k goes with --task ksmallest, not --task {args.task}")
    if args.task == "proofwriter" and args.data is None:
        parser.error("--task proofwriter needs --data DIR, a ProofWriter release folder "
                     "(`python make_data.py proofwriter --out DIR` writes one offline)")
    tiny = TINY_TEXT if args.task == "proofwriter" else TinyConfig()
    heads, dim = args.tiny_heads or tiny.n_head, args.tiny_dim or tiny.n_embd
    if args.model == "tiny" and (dim % heads or (dim // heads) % 2):
        parser.error(f"--tiny-dim {dim} must split into --tiny-heads {heads} heads of an even "
                     "size: choose a width that is a multiple of twice the head count")
    try:
        quiet_libraries()
        from mechprobe.training.ksmallest import TrainConfig

        if args.task == "proofwriter":
            from mechprobe.training.proofwriter import run as finetune
        else:
            from mechprobe.training.ksmallest import run as finetune
        with output_dir(args.out, args.force, keep_on_interrupt=True,
                        command="finetune_gpt2.py"):
            finetune(TrainConfig.from_args(args))
    except KeyboardInterrupt:
        # No checkpoint yet (stopped while loading, or before the first validation saved one):
        # a rerun starts over, and advising it to resume would mislead.
        if not os.path.isfile(os.path.join(args.out, "checkpoint", "state.pt")):
            raise NoCheckpointYet from None
        raise


if __name__ == "__main__":
    run(main, resumable=True)
