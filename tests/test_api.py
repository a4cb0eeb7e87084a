"""The Python API and the jsonl task: a notebook's calls, and a dump read back as your own data."""

import json
import os
import re

import pytest
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
    assert mechprobe.RunConfig().knn(default_p=1).p == 1
