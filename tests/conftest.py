"""Shared fixtures: small local checkpoints built on the fly, so no test touches a model hub."""

import importlib
import io
import os
import re
import signal
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ["HF_HUB_OFFLINE"] = "1"  # a test that reaches for the hub must fail, not hang

# Small enough that a fine-tuning test takes a few seconds on a 2-core CPU.
SMALL_TINY = ["--tiny-layers", "2", "--tiny-heads", "2", "--tiny-dim", "32"]


def run_script(*args, check=True):
    """Run a top-level script in a new Python process, as a user would; returns the
    CompletedProcess. Costs 2-3 s of imports: kept for the end-to-end tests (marked e2e) where the
    process boundary is what is checked; everything else uses run_cli."""
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def run_cli(script, *argv):
    """`python script.py argv` in this process: (exit code, stdout, stderr).

    The script's main(argv) runs under mechprobe.cli.run, as its `__main__` block does, so a
    UserError, a bad flag or an interruption gives the exit code and stderr line a user sees."""
    from mechprobe.cli import run

    module = importlib.import_module(script.removesuffix(".py"))
    out, err = io.StringIO(), io.StringIO()
    code = 0
    sigterm = signal.getsignal(signal.SIGTERM)      # run() installs its own; pytest keeps pytest's
    with redirect_stdout(out), redirect_stderr(err):
        try:
            run(lambda: module.main([str(a) for a in argv]),
                resumable=module.__name__ == "finetune_gpt2")
        except SystemExit as exit_:
            code = exit_.code
        finally:
            signal.signal(signal.SIGTERM, sigterm)
    return code, out.getvalue(), err.getvalue()


def run_ok(script, *argv):
    """run_cli that must succeed; returns what it printed on stdout."""
    code, out, err = run_cli(script, *argv)
    assert code == 0, f"{script} {argv} exited {code}:\n{err[-3000:]}"
    return out


def refused(script, *argv, words=()):
    """Assert a one-line error with exit 2 that contains each of `words`; returns the line."""
    code, _, err = run_cli(script, *argv)
    # Progress bars may come first (they redraw with \r); what follows them is the one line.
    lines = [line for line in re.split(r"[\r\n]", err) if line.strip() and "|" not in line]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err, err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="session")
def bpe_gpt2_dir(tmp_path_factory):
    """A small GPT-2 with a byte-level BPE tokenizer trained here, saved like a hub checkpoint.

    The BPE vocabulary is capped so that only some numbers become single tokens: the number-set
    rule ("n n" encodes to exactly two tokens) then has real work to do.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    rng = np.random.default_rng(0)
    # Short lines of Zipf-distributed numbers: frequent ones get merged into one token both at the
    # start of a line ("7") and after a space (" 7"); rare ones, and "0", stay split.
    corpus = [" ".join(str(int(n)) for n in rng.zipf(1.3, size=4) % 1000) for _ in range(20000)]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>",
                                        bos_token="<|endoftext|>", unk_token="<|endoftext|>")
    config = GPT2Config(vocab_size=bpe.get_vocab_size(), n_positions=32, n_embd=32, n_layer=2,
                        n_head=2, bos_token_id=0, eos_token_id=0)
    path = tmp_path_factory.mktemp("bpe_gpt2")
    GPT2LMHeadModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def small_finetuned(tmp_path_factory):
    """A 2-layer tiny GPT-2 briefly fine-tuned on min01: OUT with model/ and results.json."""
    out = tmp_path_factory.mktemp("small_finetuned") / "run"
    run_ok("finetune_gpt2", "--task", "min01", "--n-train", "3000", "--n-eval", "64",
               "--steps", "40", "--batch-size", "64", "--device", "cpu", *SMALL_TINY,
               "--out", str(out))
    return out


@pytest.fixture(scope="session")
def learned_min01(tmp_path_factory):
    """A 2-layer, 2-head tiny GPT-2 that has learned min01 on 8 numbers of 64 (test accuracy 0.86,
    5 s on a 2-core CPU): small_finetuned is near chance, so pruning could not show anything there."""
    out = tmp_path_factory.mktemp("learned_min01") / "run"
    run_ok("finetune_gpt2", "--task", "min01", "--num-set", "64", "--list-len", "8", "--n-train",
           "20000", "--n-eval", "256", "--steps", "600", "--lr", "3e-3", "--batch-size", "64",
           "--device", "cpu", *SMALL_TINY, "--out", out)
    return out


@pytest.fixture(scope="session")
def generated(tmp_path_factory):
    """Generated ProofWriter data and a small random-init Llama over its words."""
    from mechprobe.tasks import proofwriter
    from mechprobe.tiny_models import build_word_llama

    root = tmp_path_factory.mktemp("pw")
    run_ok("make_data", "proofwriter", "--out", str(root / "data"), "--n-theories", "60")
    texts = [s for q in proofwriter.load(str(root / "data"), "train") for s in q.statements + [q.question]]
    texts += [s for q in proofwriter.load(str(root / "data"), "test") for s in q.statements + [q.question]]
    model, tokenizer = build_word_llama(texts, hidden=32, layers=3, heads=4, kv_heads=2,
                                        intermediate=64)
    model.save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    return root
