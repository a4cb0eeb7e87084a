"""ARC (STREET annotations): loader labels against the hand-derived ones, flattened proofs, bad
records, and the probe end to end on the shipped records."""

import json
import os
import re

import pytest
from conftest import ROOT, refused, run_ok

from mechprobe.tasks import arc
from mechprobe.cli import UserError
from mechprobe.tasks.trees import heights

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
        assert q.qdep == depth and q.bucket == (f"depth={depth}" if any(q.useful) else None)
        assert q.statement_ids == [key for key, _, _ in rows]
        assert q.useful == [u for _, u, _ in rows], record_id
        assert q.depth == [c for _, _, c in rows], record_id
        assert len(q.choices) in (3, 4) and q.answer in q.choices


def as_preprocessed(record):
    """One STREET record as the authors' preprocessing writes it (docs/DATA.md): the units
    but the answer as triples; edges into the answer dropped; the longest path of the rest, the
    other units on it in parentheses with the path's first unit. Returns (depth key, record)."""
    units = {str(k): v for k, v in record["textual_logical_units"].items()}
    answer = next(k for k, v in units.items() if "The answer is" in v)
    edges = [(str(a), str(e["consequent"])) for e in record["reasoning_graph_edges"]
             for a in e["antecedents"] if answer not in (str(a), str(e["consequent"]))]
    nodes = list(dict.fromkeys(n for edge in edges for n in edge))
    height = heights(nodes, edges)
    path = [max(nodes, key=height.get)]
    while height[path[-1]]:
        path.append(next(c for p, c in edges if p == path[-1] and height[c] == height[p] - 1))
    group = [n for n in nodes if n not in path] + path[:1]
    return str(len(path) - 1), {
        "context": record["context"], "triples": {k: v for k, v in units.items() if k != answer},
        "rules": {}, "options": record["options"],
        "question": record["question"] + " ".join(record["options"]), "answer": record["answer"][0],
        "proof": f"({' '.join(group)}) -> " + " -> ".join(path[1:])}


def test_both_loaders_label_a_record_alike(tmp_path):
    """Record 05: units 1 and 2 give 10; 10 and 3 give the answer. Unit 3 only feeds the answer,
    so it is not on the tree (METHOD.md), in either format."""
    lines = open(os.path.join(SHIPPED, "reasoning_annotated_test.jsonl")).read().splitlines()
    record = json.loads(lines[4])
    (tmp_path / "street").mkdir()
    (tmp_path / "street" / "reasoning_annotated_test.jsonl").write_text(json.dumps(record) + "\n")
    depth_key, flat = as_preprocessed(record)
    assert flat["proof"] == "(2 1) -> 10"
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "test.json").write_text(json.dumps({depth_key: [flat]}))
    (street,) = arc.load(str(tmp_path / "street"), "test")
    (preprocessed,) = arc.load(str(tmp_path / "flat"), "test")
    assert street.statement_ids == preprocessed.statement_ids
    assert street.statements == preprocessed.statements
    assert street.useful == preprocessed.useful == [1, 1, 0, 0, 0, 0, 0, 0, 0, 1]
    assert street.depth == preprocessed.depth
    assert street.qdep == preprocessed.qdep == 1 and street.bucket == preprocessed.bucket == "depth=1"
    # The gold tree's edges as statement positions (units 1 and 2 -> 10), the same either way:
    # what the report's example browser draws.
    assert sorted(street.edges) == sorted(preprocessed.edges) == [[0, 9], [1, 9]]
    assert street.kinds == ["fact"] * 10 and street.answer in street.choices


def test_a_record_with_no_step_among_its_statements_is_not_probed():
    (q,) = [q for q in arc.load(SHIPPED, "test") if q.id == "ARC_offline_test_02"]
    assert q.useful == [0] * 8 and q.qdep == 0 and q.bucket is None


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
    refused("probe", "--task", "arc", "--data", tmp_path, "--dump-examples", tmp_path / "dump.jsonl",
            words=[record_id])
    assert not (tmp_path / "dump.jsonl").exists()


def test_a_record_without_its_answer_unit_is_a_clear_error(tmp_path):
    def drop_answer(record):
        units = record["textual_logical_units"]
        del units[max(units, key=int)]
    broken(tmp_path, drop_answer)
    with pytest.raises(UserError, match="no 'The answer is ...' unit"):
        arc.load(str(tmp_path), "test")


def test_dump_and_probe_the_shipped_records(tmp_path):
    from mechprobe.tiny_models import build_word_llama

    texts = [s for split in arc.SPLITS for q in arc.load(SHIPPED, split) for s in q.statements + [q.question]]
    model, tokenizer = build_word_llama(texts, hidden=32, layers=2, heads=4, kv_heads=2, intermediate=64)
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    run_ok("make_data", "arc", "--out", tmp_path / "data")
    dump = tmp_path / "dump.jsonl"
    printed = run_ok("probe", "--task", "arc", "--data", tmp_path / "data", "--model",
                     tmp_path / "model", "--icl", "2", "--folds", "3", "--device", "cpu",
                     "--dump-examples", dump, "--out", tmp_path / "probe")
    rows = [json.loads(line) for line in dump.read_text().splitlines()]
    assert [r["bucket"] for r in rows].count("depth=1") == 4
    results = json.loads((tmp_path / "probe" / "results.json").read_text())
    assert list(results["settings"]) == ["depth=1", "depth=2"]
    assert results["cv_groups"] == "record"
    # with --model the dump carries the prompt's token ids and spans, checkable with the tokenizer
    questions = {q.id: q for q in arc.load(SHIPPED, "test")}
    for row in rows:
        tokens = tokenizer.convert_ids_to_tokens(row["input_ids"])
        for statement, (start, end) in zip(questions[row["id"]].statements, row["statement_spans"]):
            assert tokens[start:end] == tokenizer.tokenize(statement)
        start, end = row["query_span"]
        assert tokens[start:end] == tokenizer.tokenize(row["question"] + arc.SUFFIX)
        assert end == len(row["input_ids"])
    assert results["answer_words"] == ["A", "B", "C", "D"] and results["shots"] == "per-question"
    assert {len(ids) for ids in results["shot_ids"].values()} == {2}
    assert "depth=2" in printed
