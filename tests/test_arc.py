"""ARC (STREET annotations): loader labels against the hand-derived ones, flattened proofs, bad
records, and the probe end to end on the shipped records."""

import json
import os
import re

import pytest
from conftest import ROOT, run_script

from mechprobe import arc
from mechprobe.cli import UserError

SHIPPED = os.path.join(ROOT, "data", "arc_offline")


def hand_labels():
    """{record id: (depth, [(key, useful, class or None)])} from data/arc_offline/LABELS.md,
    whose tables were derived by hand from the records."""
    labels, current = {}, None
    with open(os.path.join(SHIPPED, "LABELS.md")) as f:
        for line in f:
            heading = re.match(r"## (ARC_\S+) \(depth (\d+)", line)
            if heading:
                current = heading.group(1)
                labels[current] = (int(heading.group(2)), [])
            row = re.match(r"\| (\d+) \| .* \| ([01]) \| (\S+) \| (\S+) \|$", line.strip())
            if current and row:
                cls = None if row.group(4) == "-" else int(row.group(4))
                labels[current][1].append((row.group(1), int(row.group(2)), cls))
    return labels


def test_shipped_records_match_hand_derived_labels():
    expected = hand_labels()
    questions = {q.id: q for q in arc.load(SHIPPED, "test")}
    assert sorted(questions) == sorted(expected) and len(expected) == 10
    assert {q.qdep for q in questions.values()} == {0, 1, 2}
    for record_id, (depth, rows) in expected.items():
        q = questions[record_id]
        assert q.qdep == depth and q.bucket == f"depth={depth}"
        assert q.statement_ids == [key for key, _, _ in rows]
        assert q.useful == [u for _, u, _ in rows], record_id
        assert q.depth == [c for _, _, c in rows], record_id
        assert len(q.choices) in (3, 4) and q.answer in q.choices


def test_deeper_trees_fall_outside_the_buckets():
    deep = [q for q in arc.load(SHIPPED, "train") if q.qdep > 2]
    assert deep and all(q.bucket is None for q in deep)


@pytest.mark.parametrize("proof, edges", [
    ("(5 2 1) -> 7 -> 9", [("5", "7"), ("2", "7"), ("1", "7"), ("7", "9")]),
    ("3 -> 4", [("3", "4")]),
    ("(2 6)", [("2", None), ("6", None)]),
    ("8", [("8", None)]),
])
def test_flattened_proofs(proof, edges):
    assert arc.parse_flat_proof(proof) == edges


def test_preprocessed_record(tmp_path):
    record = {"context": "", "triples": {"1": "a", "2": "b", "5": "c", "7": "d", "9": "e", "3": "f"},
              "rules": {}, "options": ["A) x", "B) y"], "question": "Q? A) x B) y", "answer": "B",
              "proof": "(5 2 1) -> 7 -> 9"}
    (tmp_path / "test.json").write_text(json.dumps({"2": [record]}))
    (q,) = arc.load(str(tmp_path), "test")
    assert q.statement_ids == ["1", "2", "3", "5", "7", "9"]
    assert q.useful == [1, 1, 0, 1, 1, 1]
    assert q.depth == [0, 0, None, 0, 1, 2]   # the 7 -> 9 edge is kept
    assert q.qdep == 2 and q.choices == ("A", "B") and q.answer == "B"


def broken(tmp_path, edit):
    lines = open(os.path.join(SHIPPED, "reasoning_annotated_test.jsonl")).read().splitlines()
    record = json.loads(lines[3])
    edit(record)
    lines[3] = json.dumps(record)
    (tmp_path / "reasoning_annotated_test.jsonl").write_text("\n".join(lines) + "\n")
    return record["id"]


def test_an_edge_to_a_missing_unit_names_the_record(tmp_path):
    record_id = broken(tmp_path, lambda r: r["reasoning_graph_edges"].append(
        {"antecedents": [99], "consequent": int(max(r["textual_logical_units"], key=int))}))
    with pytest.raises(UserError, match=f"reasoning_annotated_test.jsonl:4: record {record_id} has an "
                                        "edge naming unit 99"):
        arc.load(str(tmp_path), "test")
    proc = run_script("probe.py", "--task", "arc", "--data", str(tmp_path), "--dump-examples",
                      str(tmp_path / "dump.jsonl"), check=False)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert record_id in proc.stderr and not (tmp_path / "dump.jsonl").exists()


def test_a_record_without_its_answer_unit_is_a_clear_error(tmp_path):
    def drop_answer(record):
        units = record["textual_logical_units"]
        del units[max(units, key=int)]
    broken(tmp_path, drop_answer)
    with pytest.raises(UserError, match="no 'The answer is ...' unit"):
        arc.load(str(tmp_path), "test")


def test_dump_and_probe_the_shipped_records(tmp_path):
    from mechprobe.models import build_word_llama

    texts = [s for split in arc.SPLITS for q in arc.load(SHIPPED, split) for s in q.statements + [q.question]]
    model, tokenizer = build_word_llama(texts, hidden=32, layers=2, heads=4, kv_heads=2, intermediate=64)
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    run_script("make_data.py", "arc", "--out", str(tmp_path / "data"))
    dump = tmp_path / "dump.jsonl"
    proc = run_script("probe.py", "--task", "arc", "--data", str(tmp_path / "data"), "--model",
                      str(tmp_path / "model"), "--icl", "2", "--folds", "3", "--device", "cpu",
                      "--dump-examples", str(dump), "--out", str(tmp_path / "probe"))
    rows = [json.loads(line) for line in dump.read_text().splitlines()]
    assert [r["bucket"] for r in rows].count("depth=1") == 4
    results = json.loads((tmp_path / "probe" / "results.json").read_text())
    assert list(results["settings"]) == ["depth=0", "depth=1", "depth=2"]
    assert results["settings"]["depth=0"]["f1"]["depth"] is None
    assert results["answer_words"] == ["A", "B", "C", "D"] and results["shots"] == "per-question"
    assert {len(ids) for ids in results["shot_ids"].values()} == {2}
    assert "depth=2" in proc.stdout
