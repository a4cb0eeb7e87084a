"""ProofWriter: proof-string parser, loaders of both formats, labels, and bad data."""

import json
import re

import numpy as np
import pytest
from conftest import refused, run_ok

from mechprobe.tasks import proofwriter
from mechprobe.cli import UserError
from mechprobe.tasks.trees import depth_classes, parse_proofs

# Every proof string form of docs/DATA.md, with hand-derived nodes, edges and classes.
PROOFS = {
    "[(triple3)]": [(["triple3"], [], {"triple3": 0})],
    "[(((triple4) -> rule1))]": [(["triple4", "rule1"], [("triple4", "rule1")],
                                  {"triple4": 0, "rule1": 1})],
    "[(((triple6 triple4) -> rule2))]": [(["triple6", "triple4", "rule2"],
                                          [("triple6", "rule2"), ("triple4", "rule2")],
                                          {"triple6": 0, "triple4": 0, "rule2": 1})],
    # rule1 on triple4 gives an intermediate; it and triple4 feed rule2. triple4's longest path
    # to the root is through rule1 (height 2), so it is a class-0 leaf.
    "[(((((triple4) -> rule1) triple4) -> rule2))]": [
        (["triple4", "rule1", "rule2"], [("triple4", "rule1"), ("rule1", "rule2"), ("triple4", "rule2")],
         {"triple4": 0, "rule1": 1, "rule2": 2})],
    "[(((((triple1) -> rule3)) -> rule2))]": [
        (["triple1", "rule3", "rule2"], [("triple1", "rule3"), ("rule3", "rule2")],
         {"triple1": 0, "rule3": 1, "rule2": 2})],
    "[(((triple4) -> rule1) OR ((triple7) -> rule1))]": [
        (["triple4", "rule1"], [("triple4", "rule1")], {"triple4": 0, "rule1": 1}),
        (["triple7", "rule1"], [("triple7", "rule1")], {"triple7": 0, "rule1": 1})],
    "[(((NAF) -> rule6))]": [(["rule6"], [], {"rule6": 0})],
    "[@1: Bob is green.[CWA. Example of deepest failure = (rule2 <- FAIL)]]": [],
}


@pytest.mark.parametrize("text", list(PROOFS))
def test_proof_strings(text):
    proofs = parse_proofs(text)
    assert len(proofs) == len(PROOFS[text])
    for proof, (nodes, edges, classes) in zip(proofs, PROOFS[text]):
        assert proof.nodes == nodes and proof.edges == edges
        assert depth_classes(proof.nodes, proof.edges) == classes
        assert proof.naf == ("NAF" in text)


@pytest.mark.parametrize("text", ["(triple3)", "[(((triple4) -> ))]", "[(((triple4) rule1))]",
                                  "[(triple3) triple4]"])
def test_malformed_proofs_raise(text):
    with pytest.raises(ValueError):
        parse_proofs(text)


def theory_record(**questions):
    """A CWA theory in the release format (after RelNeg-CWA-D2-1420 and RelNeg-OWA-D2-1717)."""
    facts = ["The cow is big.", "The cow chases the dog.", "The tiger likes the dog.",
             "The tiger is red.", "The dog is nice.", "The mouse sees the cow.",
             "The tiger is kind.", "The dog is red.", "The cow is young.", "The mouse is big."]
    rules = ["If the cow chases the dog then the cow sees the rabbit.",
             "If something is big then it chases the dog.",
             "If something is red and kind then it visits the dog."]
    return {
        "id": "RelNeg-CWA-D2-7", "maxD": 2, "NFact": len(facts), "NRule": len(rules),
        "theory": " ".join(facts + rules),
        # keys deliberately out of order: triple10 must come after triple9
        "triples": {f"triple{i}": {"text": t, "representation": "()"}
                    for i, t in reversed(list(enumerate(facts, 1)))},
        "rules": {f"rule{i}": {"text": t, "representation": "()"} for i, t in enumerate(rules, 1)},
        "questions": questions}


def question(text, answer, qdep, proofs, qlen=2):
    return {"question": text, "answer": answer, "QDep": qdep, "QLen": qlen, "strategy": "proof",
            "proofs": proofs, "representation": "()"}


QUESTIONS = {
    "Q1": question("The cow is big.", True, 0, "[(triple1)]", 1),
    "Q2": question("The cow sees the rabbit.", True, 2, "[(((((triple1) -> rule2)) -> rule1))]", 3),
    "Q3": question("The tiger visits the dog.", True, 1, "[(((triple4 triple7) -> rule3))]", 3),
    "Q4": question("The mouse chases the dog.", True, 1, "[(((triple10) -> rule2))]", 2),
    "Q5": question("The dog does not visit the cow.", False, 1, "[(((NAF) -> rule3))]"),
    "Q6": question("The cow chases the dog.", True, 1,
                   "[(triple2) OR (((triple1) -> rule2))]"),
    "Q7": {**question("The dog is green.", False, 0,
                      "[@0: The dog is green.[CWA. Example of deepest failure = (FAIL)]]"), "QLen": ""},
}


def write_release(root, questions=QUESTIONS, depth=2, split="test"):
    folder = root / "CWA" / f"depth-{depth}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"meta-{split}.jsonl").write_text(json.dumps(theory_record(**questions)) + "\n")
    return folder / f"meta-{split}.jsonl"


def test_release_loader_filters_and_labels(tmp_path):
    write_release(tmp_path)
    loaded = {q.id: q for q in proofwriter.load(str(tmp_path), "test")}
    # NAF (Q5), OR (Q6) and no proof (Q7) are dropped
    assert sorted(loaded) == ["RelNeg-CWA-D2-7-Q1", "RelNeg-CWA-D2-7-Q2", "RelNeg-CWA-D2-7-Q3",
                              "RelNeg-CWA-D2-7-Q4"]
    q2 = loaded["RelNeg-CWA-D2-7-Q2"]
    assert q2.statement_ids == [f"triple{i}" for i in range(1, 11)] + ["rule1", "rule2", "rule3"]
    assert q2.statements[9] == "The mouse is big." and q2.statements[10].startswith("If the cow")
    # triple1 -> rule2 -> rule1: classes 0, 1, 2
    assert q2.useful == [1] + [0] * 9 + [1, 1, 0]
    assert q2.depth == [0] + [None] * 9 + [2, 1, None]
    assert q2.bucket is None                       # depth 2: not in the paper's buckets
    assert loaded["RelNeg-CWA-D2-7-Q1"].bucket == "m=1"
    assert loaded["RelNeg-CWA-D2-7-Q3"].bucket is None     # 13 statements: no paper bucket
    assert loaded["RelNeg-CWA-D2-7-Q3"].group == "RelNeg-CWA-D2-7"
    assert loaded["RelNeg-CWA-D2-7-Q3"].depth[3] == loaded["RelNeg-CWA-D2-7-Q3"].depth[6] == 0
    # the CWA folder itself works as --data too
    assert len(proofwriter.load(str(tmp_path / "CWA"), "test")) == 4


def test_buckets_exact_by_default_upto_on_request(tmp_path):
    path = write_release(tmp_path)
    upto = {q.id: q for q in proofwriter.load(str(tmp_path), "test", buckets="upto")}
    assert upto["RelNeg-CWA-D2-7-Q3"].bucket == "m=16"     # 13 statements -> the m <= 16 bucket
    record = theory_record(Q3=QUESTIONS["Q3"])
    del record["triples"]["triple10"]                      # 12 statements: exactly m=12
    path.write_text(json.dumps(record) + "\n")
    (exact,) = proofwriter.load(str(tmp_path), "test")
    (grouped,) = proofwriter.load(str(tmp_path), "test", buckets="upto")
    assert exact.bucket == grouped.bucket == "m=12"
    with pytest.raises(UserError, match="--buckets nearest: use one of exact, upto"):
        proofwriter.load(str(tmp_path), "test", buckets="nearest")


def test_bucket_sizes_line(tmp_path):
    from mechprobe.probing.buckets import bucket_sizes

    write_release(tmp_path)
    questions = proofwriter.load(str(tmp_path), "test")
    assert bucket_sizes(questions, "test") == "test: questions per bucket: m=1 1; in no bucket: 3"
    questions = proofwriter.load(str(tmp_path), "test", buckets="upto")
    assert bucket_sizes(questions, "test") == "test: questions per bucket: m=1 1, m=16 2; in no bucket: 1"


def test_a_proof_that_reuses_a_rule_is_skipped_and_counted(tmp_path, capsys):
    """Deeper proofs can apply one rule twice; the tree cannot label that statement, and the
    rest of the file must still load."""
    reused = question("The cow sees the rabbit.", True, 3,
                      "[(((((((triple1) -> rule1)) -> rule2)) -> rule1))]", 4)
    write_release(tmp_path, {"Q1": QUESTIONS["Q4"], "Q2": reused}, depth=3)
    (kept,) = proofwriter.load(str(tmp_path), "test")
    assert kept.id == "RelNeg-CWA-D2-7-Q1" and kept.qdep == 1
    assert ("test: skipped 1 of 2 questions whose proof passes through a rule twice"
            in capsys.readouterr().out)
    preprocessed = tmp_path / "pre"
    preprocessed.mkdir()
    record = theory_record()
    (preprocessed / "test.json").write_text(json.dumps({"3": [{
        "context": record["theory"], "triples": {k: v["text"] for k, v in record["triples"].items()},
        "rules": {k: v["text"] for k, v in record["rules"].items()}, "question": reused["question"],
        "answer": True, "proof": reused["proofs"]}]}))
    assert proofwriter.load(str(preprocessed), "test") == []
    assert "skipped 1 of 1 questions" in capsys.readouterr().out


def test_cross_validation_groups_follow_the_theory():
    """Questions of one theory share its context: their statements never straddle a split."""
    from mechprobe.probing.crossval import ProbeConfig, Samples, cross_validated_f1

    features = [np.full((2, 1, 1), i, dtype=np.float32) for i in range(6)]
    useful = [np.array([1, 0])] * 6
    theories = ["t0", "t1", "t0", "t2", "t1", "t3"]
    samples = Samples.from_examples(features, useful, useful, theories)
    assert samples.groups.tolist() == [0, 0, 1, 1, 0, 0, 2, 2, 1, 1, 3, 3]
    assert Samples.from_examples(features, useful, useful).groups.tolist() == [
        i for i in range(6) for _ in range(2)]
    with pytest.raises(UserError, match="only 4 independent examples"):
        cross_validated_f1(samples.X, samples.useful, samples.groups, ProbeConfig(folds=5))


def test_preprocessed_loader(tmp_path):
    record = theory_record()
    examples = {"1": [{"context": record["theory"],
                       "triples": {k: v["text"] for k, v in record["triples"].items()},
                       "rules": {k: v["text"] for k, v in record["rules"].items()},
                       "question": "The mouse chases the dog.", "answer": True,
                       "proof": "[(((triple10) -> rule2))]"}]}
    (tmp_path / "test.json").write_text(json.dumps(examples))
    (q,) = proofwriter.load(str(tmp_path), "test")
    assert q.id == "test-1-0" and q.qdep == 1 and q.answer is True
    assert q.group == record["theory"]       # no theory id in these files: the context stands in
    assert q.useful[9] == 1 and q.depth[9] == 0 and q.depth[11] == 1 and sum(q.useful) == 2


def test_dump_examples_of_a_release_record(tmp_path):
    write_release(tmp_path)
    out = tmp_path / "dump.jsonl"
    printed = run_ok("probe", "--task", "proofwriter", "--data", tmp_path,
                     "--dump-examples", out, "--buckets", "upto")
    assert "wrote 4 examples" in printed
    assert "test: questions per bucket: m=1 1, m=16 2; in no bucket: 1" in printed
    rows = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    q3 = rows["RelNeg-CWA-D2-7-Q3"]
    assert set(q3) == {"id", "statements", "question", "answer", "useful", "depth", "qdep", "bucket",
                       "choices", "group", "suffix", "kinds"}   # the jsonl schema: a dump reads back
    assert q3["kinds"] == ["fact"] * 10 + ["rule"] * 3
    assert q3["useful"] == [0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1]
    assert q3["depth"] == [None, None, None, 0, None, None, 0, None, None, None, None, None, 1]
    assert q3["qdep"] == 1 and q3["bucket"] == "m=16" and q3["answer"] == "True"
    assert q3["choices"] == ["True", "False"] and q3["group"] == "RelNeg-CWA-D2-7"


def bad_truncated(root):
    path = write_release(root)
    path.write_text(path.read_text()[:200] + "\n")
    return f"{path}:1: not valid JSON"


def bad_missing_triple(root):
    write_release(root, {"Q1": question("The cow is big.", True, 1, "[(((triple42) -> rule2))]")})
    return "names triple42, which its theory does not have"


def bad_empty(root):
    (root / "empty").mkdir()
    return "no ProofWriter files under"


def bad_owa(root):
    (root / "OWA" / "depth-1").mkdir(parents=True)
    return "open-world (OWA)"


@pytest.mark.parametrize("make_bad", [bad_truncated, bad_missing_triple, bad_empty, bad_owa],
                         ids=lambda f: f.__name__)
def test_bad_data_is_one_line(tmp_path, make_bad):
    message = make_bad(tmp_path)
    data = tmp_path / "empty" if make_bad is bad_empty else tmp_path
    with pytest.raises(UserError, match=re.escape(message.split(":")[-1].strip())):
        proofwriter.load(str(data), "test")
    refused("probe", "--task", "proofwriter", "--data", data, "--dump-examples",
            tmp_path / "out.jsonl", words=[message])
    assert not (tmp_path / "out.jsonl").exists()


def test_generated_data_reads_back(generated):
    questions = proofwriter.load(str(generated / "data"), "test")
    assert questions and all(sum(q.useful) >= 1 for q in questions)
    for q in questions:
        assert q.id.count("-CWA-D") == 1 and q.id.split("-")[-1].startswith("Q")
        classes = [d for d in q.depth if d is not None]
        assert max(classes) == q.qdep        # the tree is as deep as the question says


@pytest.mark.parametrize("icl", [0, 2])
def test_probe_proofwriter_end_to_end(generated, tmp_path, icl):
    out = tmp_path / "probe"
    printed = run_ok("probe", "--task", "proofwriter", "--data", generated / "data",
                     "--model", generated / "model", "--icl", icl, "--n-examples", "12",
                     "--layers", "0,2", "--device", "cpu", "--out", out)
    assert "S_P1" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["icl"] == icl and results["layers"] == [0, 2]
    if icl:     # shots drawn for each probed question, by default
        assert results["shots"] == "per-question" and results["skipped_long"] == 0
        assert {len(ids) for ids in results["shot_ids"].values()} == {icl}
        assert len({tuple(ids) for ids in results["shot_ids"].values()}) > 1
    else:
        assert results["shots"] is None and results["shot_ids"] == []
    assert results["buckets"] == "exact" and results["cv_groups"] == "theory"
    assert results["query_pool"] == ("max" if icl else "mean")
    assert "m=1" in results["settings"]
    from mechprobe.baselines import near_chance

    for name, setting in results["settings"].items():
        n = setting["n_examples"]
        assert n <= 12
        assert setting["accuracy"] * n == pytest.approx(round(setting["accuracy"] * n))  # a share of n
        assert setting["baseline_rate"] == max(setting["input_only_rates"].values())
        assert setting["near_chance"] is near_chance(setting["accuracy"], setting["baseline_rate"], n)
        assert [r["layer"] for r in setting["layerwise"]] == [0, 2, 0, 2]
        assert (setting["f1"]["depth"] is None) == (name == "m=1")
    tokenizer_ids = results["answer_token_ids"]
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(generated / "model")
    assert tokenizer.convert_ids_to_tokens(tokenizer_ids) == ["True", "False"]


def test_prompt_spans(generated):
    from transformers import AutoTokenizer

    from mechprobe.tasks.prompts import to_example
    from mechprobe.tasks.proofwriter import SUFFIX

    tokenizer = AutoTokenizer.from_pretrained(generated / "model")
    q = proofwriter.load(str(generated / "data"), "test")[0]
    example = to_example(tokenizer, q, [q], SUFFIX)       # the question as its own shot
    tokens = tokenizer.convert_ids_to_tokens(example.input_ids)
    for statement, positions in zip(q.statements, example.statements):
        assert " ".join(tokens[p] for p in positions) == " ".join(tokenizer.tokenize(statement))
    query = " ".join(tokens[p] for p in example.query)
    assert query == " ".join(tokenizer.tokenize(q.question + SUFFIX))
    assert example.query[-1] == len(example.input_ids) - 1
    shot = tokenizer.decode(example.input_ids[:example.statements[0][0]])
    assert shot.rstrip().endswith(("True", "False"))     # the shot ends with its answer


def test_text_control_and_chance_warning(generated, tmp_path):
    """The untrained model answers at chance: the probe says so, and prints the text-only control."""
    from mechprobe.probing.text_control import text_features

    q = next(q for q in proofwriter.load(str(generated / "data"), "test") if q.qdep == 1)
    features = text_features(q)
    assert features.shape == (len(q.statements), 1, 3)
    assert features[:, 0, 0].tolist() == [float(s.startswith("rule")) for s in q.statement_ids]
    assert features[0, 0, 2] == 0 and features[-1, 0, 2] == 1

    out = tmp_path / "probe"
    printed = run_ok("probe", "--task", "proofwriter", "--data", generated / "data",
                     "--model", generated / "model", "--n-examples", "12", "--device", "cpu",
                     "--out", out)
    results = json.loads((out / "results.json").read_text())
    for setting in results["settings"].values():
        assert set(setting["f1_text_control"]) == {"useful", "depth"}
        assert setting["near_chance"] is True       # an untrained model cannot beat the majority
        # ... nor can any model beat "True exactly when not negated", right on every probed
        # question: the report says so instead of calling the model unable, and measures the
        # accuracy on unprobed same-bucket questions that rule gets wrong
        assert setting["baseline_exact"] and setting["baseline"] == "True exactly when not negated"
        control = setting["shortcut_control"]
        assert control["answerer"] == setting["baseline"]
        assert 0 < control["n"] <= setting["n_examples"] and control["n"] <= control["pool"]
        assert control["accuracy"] * control["n"] == pytest.approx(round(control["accuracy"]
                                                                         * control["n"]))
    assert "f1_text_useful" in printed and "acc_control" in printed
    assert "caveat:" in printed and "warning:" not in printed


def test_hard_questions_are_those_the_answerer_gets_wrong():
    from types import SimpleNamespace

    from mechprobe.probing.shortcut_control import hard_questions

    pool = [SimpleNamespace(id=str(i), target="True" if i % 3 else "False") for i in range(30)]
    probed = [SimpleNamespace(target=t) for t in ("True", "True", "False")]
    always = lambda questions: {"always False": ["False"] * len(questions)}  # noqa: E731
    hard = hard_questions(pool, probed, "always False", always, limit=100, seed=0)
    assert [q.id for q in hard] == [str(i) for i in range(30) if i % 3]
    # the commonest probed answer ("True") stands for 'commonest answer'
    assert {q.target for q in hard_questions(pool, probed, "commonest answer", always, 100, 0)} \
        == {"False"}
    few = hard_questions(pool, probed, "always False", always, limit=5, seed=0)
    assert len(few) == 5 and few == hard_questions(pool, probed, "always False", always, 5, 0)
    assert [int(q.id) for q in few] == sorted(int(q.id) for q in few)      # file order kept


def test_near_chance():
    from mechprobe.baselines import near_chance

    assert near_chance(0.55, 0.5, 100) and not near_chance(0.75, 0.5, 100)
    assert near_chance(0.8, 0.8, 1000) and not near_chance(0.95, 0.8, 200)
