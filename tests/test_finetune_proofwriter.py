"""Fine-tuning on ProofWriter: padded batches, the training questions, and the run end to end."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import refused, run_ok

from mechprobe.tasks import proofwriter
from mechprobe.training.proofwriter import accuracy_by_group, build_tiny_model, negated, training_questions
from mechprobe.tiny_models import TinyConfig, build_tiny
from mechprobe.tasks.prompts import answer_ids
from mechprobe.training.loop import batch_indices, last_logits, predict, training_loss

QUICK = ["--task", "proofwriter", "--steps", "16", "--eval-every", "8", "--batch-size", "16",
         "--tiny-layers", "2", "--tiny-heads", "2", "--tiny-dim", "32", "--device", "cpu"]


def test_padded_rows_give_the_logits_of_unpadded_runs():
    model, _ = build_tiny([str(i) for i in range(20)], TinyConfig(2, 2, 32, 32), seed=0)
    model.eval()
    rows = [[3, 4, 5, 6, 7], [8, 9], [10, 11, 12]]
    inputs = torch.zeros(3, 5, dtype=torch.long)
    for i, row in enumerate(rows):
        inputs[i, :len(row)] = torch.tensor(row)
    lengths = torch.tensor([len(r) for r in rows])
    with torch.no_grad():
        padded = last_logits(model, inputs, lengths)
        alone = torch.cat([last_logits(model, torch.tensor([r])) for r in rows])
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=1e-5)
    targets = alone.argmax(-1)
    correct, _ = predict(model, (inputs, targets, lengths), batch_size=2)
    assert correct.tolist() == [1.0, 1.0, 1.0]


def test_length_bucketed_batches_cover_each_epoch_once():
    lengths = np.random.default_rng(0).integers(5, 200, size=1000)
    steps = -(-1000 // 32)
    epoch = np.concatenate([batch_indices(1000, 32, 0, s, lengths) for s in range(steps)])
    assert sorted(epoch.tolist()) == list(range(1000))
    spread = np.mean([np.ptp(lengths[batch_indices(1000, 32, 0, s, lengths)]) for s in range(steps)])
    unsorted = np.mean([np.ptp(lengths[batch_indices(1000, 32, 0, s)]) for s in range(steps)])
    assert spread < unsorted / 3          # similar lengths share a batch: little padding
    assert (batch_indices(1000, 32, 0, 5, lengths) == batch_indices(1000, 32, 0, 5, lengths)).all()


def test_training_questions_include_unproved_ones(generated):
    questions = training_questions(str(generated / "data"), "train", max_qdep=1)
    assert {q.qdep for q in questions} <= {0, 1}
    unproved = [q for q in questions if q.proofs.startswith("[@") or q.proofs == ""]
    assert unproved and len(questions) > len(proofwriter.load(str(generated / "data"), "train"))
    _, tokenizer = build_tiny_model(questions[:50], layers=1, heads=2, dim=16, seed=0)
    for word in ("True", "False", "That", "false", "?"):
        assert tokenizer.convert_tokens_to_ids(word) != tokenizer.unk_token_id


def test_training_loss_adds_the_next_token_loss_on_the_prompt():
    model, _ = build_tiny([str(i) for i in range(20)], TinyConfig(2, 2, 32, 32), seed=0)
    rows = [[3, 4, 5, 6, 7, 8], [9, 10, 11, 12]]
    inputs = torch.zeros(2, 6, dtype=torch.long)
    for i, row in enumerate(rows):
        inputs[i, :len(row)] = torch.tensor(row)
    lengths, y = torch.tensor([6, 4]), torch.tensor([13, 14])
    expected = 0.0
    for row, target in zip(rows, y):          # one unpadded row at a time, the loss written out
        logits = model(input_ids=torch.tensor([row])).logits[0]
        answer = F.cross_entropy(logits[-1:], target[None], reduction="sum")
        words = F.cross_entropy(logits[:-1], torch.tensor(row[1:]), reduction="sum")
        expected = expected + answer / 2 + 0.5 * words / (len(rows[0]) - 1 + len(rows[1]) - 1)
    torch.testing.assert_close(training_loss(model, inputs, y, lengths, 0.5), expected)
    last = F.cross_entropy(last_logits(model, inputs, lengths), y)
    torch.testing.assert_close(training_loss(model, inputs, y, lengths, 0.0), last)


def test_accuracy_by_group():
    qs = [proofwriter.Question("a", ["t1"], ["Bob is big."], "Bob is big.", True, "", 0),
          proofwriter.Question("b", ["t1", "r1"], ["Bob is big.", "x"], "Bob is not red.", False, "", 1)]
    rows = {(r["group"], r["value"]): r for r in accuracy_by_group(qs, [1.0, 0.0])}
    assert rows[("depth", "0")]["accuracy"] == 1.0 and rows[("depth", "1")]["accuracy"] == 0.0
    assert rows[("negated", "True")]["n"] == 1 and rows[("bucket", "m=2")]["accuracy"] == 0.0
    assert rows[("answer", "False")]["accuracy"] == 0.0
    # Depth-0 questions whose word occurs in a fact, split by whether the atom asked holds.
    facts = ["triple1", "triple2"], ["Bob is big.", "Anne is red."]
    qs = [proofwriter.Question("c", *facts, "Bob is red.", False, "", 0),
          proofwriter.Question("d", *facts, "Bob is not red.", True, "", 0),
          proofwriter.Question("e", *facts, "Anne is not big.", True, "", 0),
          proofwriter.Question("f", *facts, "Bob is kind.", False, "", 1),     # depth 1: not counted
          proofwriter.Question("g", *facts, "Bob is big.", True, "", 0),
          proofwriter.Question("h", *facts, "Bob is kind.", False, "", 0)]     # word in no fact
    rows = {(r["group"], r["value"]): r for r in accuracy_by_group(qs, [0.0, 1.0, 1.0, 1.0, 1.0, 1.0])}
    assert rows[("word_in_facts", "atom_false")]["n"] == 3
    assert rows[("word_in_facts", "atom_false")]["accuracy"] == 2 / 3
    assert rows[("word_in_facts", "atom_true")]["n"] == 1
    assert rows[("binding", "balanced")]["accuracy"] == pytest.approx((2 / 3 + 1) / 2)
    # Answering "True exactly when not" is right on every atom_false question and scores 0.5.
    shortcut = [float(negated(q) == q.answer) for q in qs]
    rows = {(r["group"], r["value"]): r for r in accuracy_by_group(qs, shortcut)}
    assert rows[("word_in_facts", "atom_false")]["accuracy"] == 1.0
    assert rows[("binding", "balanced")]["accuracy"] == 0.5


def test_finetune_proofwriter_end_to_end(generated, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "pw"
    printed = run_ok("finetune_gpt2", *QUICK, "--data", generated / "data", "--out", out)
    assert "bucket" in printed and "test_acc" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == "proofwriter" and results["steps"] == 16 and len(results["history"]) == 2
    groups = {(r["group"], r["value"]) for r in results["test_by_group"]}
    assert {("depth", "0"), ("depth", "1"), ("answer", "True"), ("answer", "False")} <= groups
    # The chance guard, recomputed: the test questions counted from the per-answer rows.
    from mechprobe.baselines import near_chance

    n_test = sum(r["n"] for r in results["test_by_group"] if r["group"] == "answer")
    assert results["baseline_rate"] == max(results["input_only_rates"].values())
    assert results["near_chance"] is near_chance(results["test_accuracy"], results["baseline_rate"], n_test)
    assert results["test_accuracy"] * n_test == pytest.approx(round(results["test_accuracy"] * n_test))
    for name in ("loss", "accuracy"):
        assert (out / f"{name}.png").is_file() and (out / f"{name}.pdf").is_file()
    tokenizer = AutoTokenizer.from_pretrained(out / "model")
    AutoModelForCausalLM.from_pretrained(out / "model")
    task = json.loads((out / "model" / "task.json").read_text())
    assert tokenizer.convert_ids_to_tokens(task["answer_token_ids"]) == ["True", "False"]

    # The fine-tuned model is probed without shots, as run_probing_proofwriter.sh does.
    printed = run_ok("probe", "--task", "proofwriter", "--data", generated / "data",
                     "--model", out / "model", "--icl", "0", "--n-examples", "12",
                     "--device", "cpu", "--out", tmp_path / "probe")
    assert "S_P2" in printed


@pytest.mark.parametrize("extra, message", [
    ([], "--data"),
    (["--data", "/nonexistent/pw"], "not a folder"),
])
def test_bad_input_is_one_line(tmp_path, extra, message):
    out = tmp_path / "out"
    refused("finetune_gpt2", *QUICK, *extra, "--out", out, words=[message])
    assert not out.exists()


def test_preprocessed_files_cannot_train(tmp_path):
    (tmp_path / "pre").mkdir()
    (tmp_path / "pre" / "train.json").write_text("{}")
    refused("finetune_gpt2", *QUICK, "--data", tmp_path / "pre", "--out", tmp_path / "out",
            words=["release format"])


class BoostedHead(torch.nn.Module):
    """An output layer whose token `boosted` always tops the vocabulary."""

    def __init__(self, head, boosted):
        super().__init__()
        self.head, self.boosted = head, boosted

    def forward(self, hidden):
        logits = self.head(hidden)
        logits[..., self.boosted] += 1e4
        return logits


def test_validation_and_test_accuracy_compare_the_answer_logits_as_the_probe_does(tmp_path):
    from mechprobe.training.loop import Settings, evaluate, finetune

    model, tokenizer = build_tiny_model([], layers=1, heads=2, dim=16, seed=0)
    word_ids = answer_ids(tokenizer, "Bob is big: True or False?", ("True", "False"))
    model.lm_head = BoostedHead(model.lm_head, tokenizer.convert_tokens_to_ids("<unk>"))
    inputs = torch.randint(3, len(tokenizer), (40, 6))
    targets = torch.tensor(word_ids)[torch.arange(40) % 2]
    with torch.no_grad():
        logits = last_logits(model, inputs)[:, word_ids]
    expected = float((torch.tensor(word_ids)[logits.argmax(-1)] == targets).float().mean())
    assert 0 < expected < 1
    assert evaluate(model, (inputs, targets), 8)[0] == 0.0    # the top token is never an answer
    assert evaluate(model, (inputs, targets), 8, candidates=word_ids)[0] == expected

    settings = Settings(lr=0.0, batch_size=8, steps=2, warmup=0, eval_every=1, seed=0)
    outcome, _ = finetune(model, (inputs, targets), (inputs, targets), settings, str(tmp_path),
                          {}, candidates=word_ids)
    assert [row["val_accuracy"] for row in outcome.history] == [expected, expected]
