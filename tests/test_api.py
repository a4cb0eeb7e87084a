"""The Python API and the jsonl task: a notebook's calls, and a dump read back as your own data."""

import json
import os
import re
import subprocess
import sys

import pytest
from conftest import refused
from conftest import run_cli as cli

import mechprobe
from mechprobe.cli import UserError
from mechprobe.tasks import jsonl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme_snippet():
    """The README's notebook example: the python block after the marker comment."""
    text = open(os.path.join(ROOT, "README.md")).read()
    match = re.search(r"<!-- notebook example -->\s*```python\n(.*?)```", text, re.S)
    assert match, "README.md lost its notebook example"
    return match.group(1)


def test_the_readme_notebook_example_runs(generated, tmp_path, capsys):
    code = readme_snippet()
    code = code.replace("runs/models/word-llama", str(generated / "model"))
    code = code.replace("runs/my-probe", str(tmp_path / "my-probe"))
    exec(compile(code, "README.md", "exec"), {})
    results = json.loads((tmp_path / "my-probe" / "results.json").read_text())
    assert results["task"] == "jsonl" and list(results["settings"]) == ["all"]
    assert (tmp_path / "my-probe" / "layerwise_all.png").is_file()
    rows = (tmp_path / "my-probe" / "predictions.jsonl").read_text().splitlines()
    assert len(rows) == results["n_statements"] == 18     # six examples of three statements
    assert {json.loads(r)["example"] for r in rows} == set(map(str, range(1, 7)))
    printed = capsys.readouterr().out
    assert "S_P1" in printed and f"{results['f1']['useful']:.4f}" in printed
    # Every row answers True: balanced accuracy is then the recall of True, the plain accuracy.
    assert results["balanced_accuracy"] == results["accuracy"] and "balanced_acc" in printed


@pytest.mark.parametrize("icl", [0, 2])
def test_a_dump_read_back_as_jsonl_gives_the_same_scores(generated, tmp_path, icl):
    """probe.py --task proofwriter --dump-examples writes the jsonl schema; probing that file
    with --task jsonl builds the same prompts, buckets, folds and shots, so every F1 is equal."""
    data, model = generated / "data", generated / "model"
    common = ["--model", model, "--icl", icl, "--n-examples", 8, "--folds", 2, "--layers", "0,2",
              "--device", "cpu"]
    dump = tmp_path / "dump.jsonl"
    code, _, err = cli("probe", "--task", "proofwriter", "--data", data, *common,
                       "--out", tmp_path / "pw", "--dump-examples", dump)
    assert code == 0, err
    shots = []
    if icl:   # the shots: the train split, dumped the same way
        code, _, err = cli("probe", "--task", "proofwriter", "--data", data, "--split", "train",
                           "--dump-examples", tmp_path / "train.jsonl")
        assert code == 0, err
        shots = ["--shots-data", tmp_path / "train.jsonl"]
    code, _, err = cli("probe", "--task", "jsonl", "--data", dump, *common, *shots,
                       "--out", tmp_path / "mine")
    assert code == 0, err
    expected = json.loads((tmp_path / "pw" / "results.json").read_text())
    got = json.loads((tmp_path / "mine" / "results.json").read_text())
    assert list(got["settings"]) == list(expected["settings"]) and got["settings"]
    for name, setting in expected["settings"].items():
        for key in ("f1", "f1_random", "probing_score", "layerwise", "accuracy"):
            assert got["settings"][name][key] == setting[key], (name, key)
    assert got["shot_ids"] == expected["shot_ids"]


@pytest.mark.parametrize("row,words", [
    ({"question": "q", "useful": [1], "depth": [0]}, ["no statements"]),
    ({"statements": ["a"], "question": "q", "useful": [1, 0], "depth": [0]}, ["useful"]),
    ({"statements": ["a"], "question": "q", "useful": [1], "depth": [None]}, ["integer"]),
    ({"statements": ["a"], "question": "q", "useful": [0], "depth": [2]}, ["null"]),
    ({"statements": ["a"], "question": "q", "useful": [1], "depth": [0], "answer": "x",
      "choices": ["y", "z"]}, ["one of the choices"]),
    ([1, 2], ["not a JSON object"]),
])
def test_bad_lines_name_file_and_line(tmp_path, row, words):
    good = {"statements": ["a", "b"], "question": "q", "useful": [1, 0], "depth": [0, None]}
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(UserError) as err:
        jsonl.from_file(str(path))
    for word in [f"{path}:2", *words]:
        assert word in str(err.value)


def test_rows_without_buckets_are_one_setting_and_ids_must_be_unique():
    rows = [{"statements": ["a"], "question": "q", "useful": [1], "depth": [0], "id": i}
            for i in ("x", "y")]
    assert {r.bucket for r in jsonl.from_rows(enumerate(rows, 1))} == {"all"}
    with pytest.raises(UserError, match="appears twice"):
        jsonl.from_rows(enumerate(rows + rows[:1], 1))
    assert mechprobe.RunConfig().probing(default_p=1).p == 1


def test_probe_ksmallest_takes_the_loaded_model_and_reads_its_task_json(small_finetuned, tmp_path):
    model, tokenizer = mechprobe.load_model(str(small_finetuned / "model"), "cpu")
    result = mechprobe.probe_ksmallest(model, tokenizer, mechprobe.KSmallestConfig(n_examples=40),
                                       mechprobe.RunConfig(folds=2, device="cpu"))
    assert list(result.settings) == ["min01"] and result.meta["model"] == model.name_or_path
    result.save(str(tmp_path / "out"))
    assert (tmp_path / "out" / "results.json").is_file()
    with pytest.raises(UserError, match="did not write"):   # the command line's safety
        (tmp_path / "mine").mkdir()
        (tmp_path / "mine" / "notes.txt").write_text("mine")
        result.save(str(tmp_path / "mine"))


def test_the_same_rows_through_datasets_give_the_same_scores(generated, tmp_path):
    """--task jsonl reads what `datasets` reads: the dump as parquet, a save_to_disk folder (with
    splits) and csv give the records the .jsonl gives, and the same scores."""
    import datasets

    dump = tmp_path / "dump.jsonl"
    code, _, err = cli("probe", "--task", "proofwriter", "--data", generated / "data",
                       "--dump-examples", dump)
    assert code == 0, err
    rows = [json.loads(line) for line in dump.read_text().splitlines()]
    table = datasets.Dataset.from_list(rows)
    table.to_parquet(str(tmp_path / "dump.parquet"))
    datasets.DatasetDict({"test": table, "train": table}).save_to_disk(str(tmp_path / "saved"))
    as_text = [{k: json.dumps(v) if isinstance(v, list) else v for k, v in row.items()}
               for row in rows]
    datasets.Dataset.from_list(as_text).to_csv(str(tmp_path / "dump.csv"))
    def schema(records):   # a CSV's extra columns come back as text ("qdep": "0"): not scored
        known = ("id", "statements", "question", "answer", "choices", "useful", "depth", "group",
                 "bucket", "suffix")
        return [{k: r.dump().get(k) for k in known} for r in records]

    expected = jsonl.from_file(str(dump))
    for source in ("dump.parquet", "saved", "dump.csv"):
        got = jsonl.from_file(str(tmp_path / source))
        assert [r.dump() for r in got] == [r.dump() for r in expected] or (
            source == "dump.csv" and schema(got) == schema(expected)), source
    common = ["--model", generated / "model", "--n-examples", 8, "--folds", 2, "--layers", "0,2",
              "--device", "cpu", "--feature-cache", "off"]
    scores = {}
    for source in ("dump.jsonl", "dump.parquet", "saved"):
        out = tmp_path / f"out-{source}"
        code, _, err = cli("probe", "--task", "jsonl", "--data", tmp_path / source, *common,
                           "--out", out)
        assert code == 0, (source, err)
        results = json.loads((out / "results.json").read_text())
        scores[source] = {name: (s["f1"], s["f1_random"], s["accuracy"])
                          for name, s in results["settings"].items()}
    assert scores["dump.parquet"] == scores["dump.jsonl"] == scores["saved"]
    refused("probe", "--task", "jsonl", "--data", tmp_path / "saved", "--split", "dev",
            "--dump-examples", tmp_path / "d.jsonl", words=["splits", "--split"])
    refused("probe", "--task", "jsonl", "--data", "hf:nobody/nothing", "--dump-examples",
            tmp_path / "e.jsonl", words=["hf download nobody/nothing --repo-type dataset"])


def test_importing_the_figures_leaves_a_notebooks_matplotlib_backend_alone():
    code = ("import matplotlib; matplotlib.use('svg'); import mechprobe.plots, "
            "mechprobe.analysis.causal, mechprobe.analysis.robustness, mechprobe.analysis.compare; "
            "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


NOTEBOOK_ROWS = [{"statements": [f"{name} is big.", "If someone is big then they are red.",
                                 f"{name} is cold."],
                  "question": f"{name} is red.", "useful": [1, 1, 0], "depth": [0, 1, None],
                  "answer": "True", "choices": ["True", "False"]}
                 for name in ["Anne", "Bob", "Charlie", "Dave", "Erin", "Fiona"]]


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_probing_leaves_the_notebooks_model_as_it_was(generated, implementation):
    """mechprobe.probe records attention through its own attention implementation, and gives
    the model the caller's back: a notebook's model runs as before afterwards."""
    import torch

    model, tokenizer = mechprobe.load_model(str(generated / "model"), "cpu")
    model.set_attn_implementation(implementation)
    ids = tokenizer("Anne is big.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        before = model(ids).logits
    mechprobe.probe(model, tokenizer, NOTEBOOK_ROWS, mechprobe.RunConfig(folds=2))
    assert model.config._attn_implementation == implementation
    with torch.no_grad():
        assert torch.equal(model(ids).logits, before)


def test_any_scikit_learn_classifier_probes_from_the_api(generated, tmp_path):
    from sklearn.svm import LinearSVC

    model, tokenizer = mechprobe.load_model(str(generated / "model"), "cpu")
    result = mechprobe.probe(model, tokenizer, NOTEBOOK_ROWS,
                             mechprobe.RunConfig(folds=2, probe=LinearSVC(C=0.1)))
    assert result.meta["probe"] == {"name": "LinearSVC", **{k: v for k, v in LinearSVC(C=0.1)
                                    .get_params().items() if k in result.meta["probe"]},
                                    "folds": 2}
    assert result.meta["probe"]["C"] == 0.1 and "neighbors_used" not in result.settings["all"]
    results = result.save(str(tmp_path / "svm"))
    assert results["settings"]["all"]["tree_recovery"] and (tmp_path / "svm" / "report.html").is_file()


def test_a_usefulness_probe_with_one_class_says_so(generated):
    """Rows whose statements are all useful give the probe nothing to separate: its F1 of 1
    says nothing, and the report says so."""
    model, tokenizer = mechprobe.load_model(str(generated / "model"), "cpu")
    rows = [{**row, "statements": row["statements"][:2], "useful": [1, 1], "depth": [0, 1]}
            for row in NOTEBOOK_ROWS]
    result = mechprobe.probe(model, tokenizer, rows, mechprobe.RunConfig(folds=2))
    assert result.settings["all"]["useful_one_class"] is True
    assert "every statement of setting all is useful" in result.report()
