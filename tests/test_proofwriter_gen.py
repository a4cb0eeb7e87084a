"""make_data.py proofwriter: the release layout, determinism, and every proof re-checked independently.

The checks below read only the written JSON (texts, representations, proof strings) and redo the
closed-world inference themselves, so a prover bug cannot vouch for its own output.
"""

import json
import os
import random
import re
import subprocess
import sys

import pytest
from conftest import ROOT, refused, run_cli

from mechprobe.tasks import proofwriter_gen
from mechprobe.tasks.trees import depth_classes, parse_proofs

DEPTHS = (0, 1, 2, 3, 5)
SPLITS = ("train", "dev", "test")
RECORD_KEYS = ["id", "maxD", "NFact", "NRule", "theory", "triples", "rules", "questions"]
QUESTION_KEYS = ["question", "answer", "QDep", "QLen", "strategy", "proofs", "representation"]
ID = re.compile(r"^(Att|Rel)(Neg|Noneg)-CWA-D(\d)-(\d+)$")
FAILURE = re.compile(r"^\[@(\d+): (.+)\[CWA\. Example of deepest failure = \(((?:rule\d+ <- )*)FAIL\)\]\]$")
VARIABLES = ("something", "someone")


def read_release(out):
    return {(d, s): [json.loads(line) for line in open(out / "CWA" / f"depth-{d}" / f"meta-{s}.jsonl")]
            for d in DEPTHS for s in SPLITS}


@pytest.fixture(scope="module")
def small_release(tmp_path_factory):
    out = tmp_path_factory.mktemp("pw40")
    code, printed, err = run_cli("make_data", "proofwriter", "--out", out, "--n-theories", "40")
    assert code == 0, err
    return out, printed


@pytest.fixture(scope="module")
def sample():
    """50 theories per depth, generated in-process: enough for NAF, OR and failures to occur."""
    return {d: [proofwriter_gen.generate_record(7, d, i) for i in range(50)] for d in DEPTHS}


def test_layout_and_keys(small_release):
    out, stdout = small_release
    assert sorted(os.listdir(out)) == [".mechprobe", "CWA"]                     # no tmp or old folder left
    assert sorted(os.listdir(out / "CWA")) == [f"depth-{d}" for d in DEPTHS]
    records = read_release(out)
    assert sum(len(r) for r in records.values()) == 40
    ids = set()
    for (depth, split), recs in records.items():
        assert sorted(os.listdir(out / "CWA" / f"depth-{depth}")) == [f"meta-{s}.jsonl" for s in sorted(SPLITS)]
        assert [len(records[depth, s]) for s in SPLITS] == [5, 1, 2]  # 8 per depth, 70/10/20
        for rec in recs:
            assert list(rec) == RECORD_KEYS
            match = ID.match(rec["id"])
            assert match and int(match.group(3)) == depth == rec["maxD"]
            ids.add(rec["id"])
            assert 1 <= rec["NFact"] == len(rec["triples"]) <= 16
            assert 1 <= rec["NRule"] == len(rec["rules"]) <= 8
            assert list(rec["triples"]) == [f"triple{i + 1}" for i in range(rec["NFact"])]
            assert list(rec["rules"]) == [f"rule{i + 1}" for i in range(rec["NRule"])]
            texts = [t["text"] for t in rec["triples"].values()] + [r["text"] for r in rec["rules"].values()]
            assert rec["theory"] == " ".join(texts)
            assert 8 <= len(rec["questions"]) <= 12
            assert list(rec["questions"]) == [f"Q{i + 1}" for i in range(len(rec["questions"]))]
            for q in rec["questions"].values():
                assert list(q) == QUESTION_KEYS
                assert isinstance(q["answer"], bool) and isinstance(q["QDep"], int)
                assert q["QLen"] == "" or isinstance(q["QLen"], int)
    assert len(ids) == 40
    assert "depth" in stdout and "max_QDep" in stdout


@pytest.mark.e2e
def test_same_seed_same_bytes_in_any_process(tmp_path):
    def generate(out, seed, hash_seed):
        subprocess.run([sys.executable, "make_data.py", "proofwriter", "--out", str(out),
                        "--n-theories", "30", "--seed", str(seed)], cwd=ROOT, check=True,
                       capture_output=True, env={**os.environ, "PYTHONHASHSEED": hash_seed})
        return {(d, s): (out / "CWA" / f"depth-{d}" / f"meta-{s}.jsonl").read_bytes()
                for d in DEPTHS for s in SPLITS}

    first = generate(tmp_path / "a", 3, "1")
    assert first == generate(tmp_path / "b", 3, "2")
    other = generate(tmp_path / "c", 4, "1")
    assert all(first[k] != other[k] for k in first)


# --- an independent closed-world reasoner over the written JSON ------------------------------

def atom_of(representation):
    """'("Bob" "is" "smart" "+")' -> (('Bob', 'is', 'smart'), '+')."""
    words = re.findall(r'"([^"]*)"', representation)
    assert len(words) == 4, representation
    return tuple(words[:3]), words[3]


def rule_of(representation):
    """-> (conditions [(atom, negated)], conclusion atom); the variable stays 'something'/'someone'."""
    words = re.findall(r'"([^"]*)"', representation)
    assert len(words) % 4 == 0 and representation.startswith("((") and " -> " in representation
    groups = [tuple(words[i:i + 4]) for i in range(0, len(words), 4)]
    conditions = [(g[:3], {"+": False, "~": True}[g[3]]) for g in groups[:-1]]
    assert groups[-1][3] == "+"
    return conditions, groups[-1][:3]


def ground(atom, value):
    return (value,) + atom[1:] if atom[0] in VARIABLES else atom


class World:
    def __init__(self, record):
        self.facts = {k: atom_of(t["representation"]) for k, t in record["triples"].items()}
        assert all(sign == "+" for _, sign in self.facts.values())
        self.facts = {k: a for k, (a, _) in self.facts.items()}
        self.rules = {k: rule_of(r["representation"]) for k, r in record["rules"].items()}
        domain = []
        for s, v, o in list(self.facts.values()) + [a for conds, concl in self.rules.values()
                                                    for a in [concl] + [c for c, _ in conds]]:
            for e in (s, o) if v != "is" else (s,):
                if e not in VARIABLES and e not in domain:
                    domain.append(e)
        self.domain = domain
        # The generator's semantics: nothing a rule negates is concluded by any rule.
        concluded = {concl[1:] for _, concl in self.rules.values()}
        assert not any(neg and a[1:] in concluded for conds, _ in self.rules.values() for a, neg in conds)
        self.closure = self._close()

    def bindings(self, rule):
        conds, concl = rule
        uses_var = any(a[0] in VARIABLES for a in [concl] + [c for c, _ in conds])
        return self.domain if uses_var else [None]

    def _close(self):
        known = set(self.facts.values())
        while True:
            new = set()
            for rule in self.rules.values():
                conds, concl = rule
                for value in self.bindings(rule):
                    if all((ground(a, value) in known) != neg for a, neg in conds):
                        new.add(ground(concl, value))
            if new <= known:
                return known
            known |= new


TOKENS = re.compile(r"\(|\)|->|OR|NAF|triple\d+|rule\d+")


def parse_tree(text):
    """'[(p OR q)]' -> list of trees: 'tripleK', 'NAF' or (rule id, [item trees])."""
    tokens = TOKENS.findall(text[1:-1])
    position = 0

    def take(expected=None):
        nonlocal position
        token = tokens[position]
        assert expected is None or token == expected, (expected, token, text)
        position += 1
        return token

    def proof():
        if tokens[position].startswith("triple"):
            return take()
        take("(")
        take("(")
        items = []
        while tokens[position] != ")":
            items.append(take() if tokens[position] == "NAF" else proof())
        take(")")
        take("->")
        rule = take()
        take(")")
        return rule, items

    take("(")
    trees = [proof()]
    while tokens[position] == "OR":
        take("OR")
        trees.append(proof())
    take(")")
    assert position == len(tokens)
    return trees


def replay(world, tree):
    """The set of atoms this proof tree establishes; asserts nothing is made up."""
    if isinstance(tree, str):
        assert tree in world.facts, tree
        return {world.facts[tree]}
    rule_id, items = tree
    assert rule_id in world.rules, rule_id
    conds, concl = world.rules[rule_id]
    assert len(items) == len(conds), (rule_id, items)
    below = [None if item == "NAF" else replay(world, item) for item in items]
    proved = set()
    for value in world.bindings(world.rules[rule_id]):
        ok = True
        for (atom, negated), item, atoms in zip(conds, items, below):
            fact = ground(atom, value)
            if negated:        # NAF: a negated condition whose fact is not derivable
                ok &= item == "NAF" and fact not in world.closure
            else:
                ok &= item != "NAF" and fact in atoms
        if ok:
            proved.add(ground(concl, value))
    assert proved, f"{rule_id} does not apply to {items}"
    return proved


def tree_depth(tree):
    if isinstance(tree, str):
        return 0
    return 1 + max(0 if item == "NAF" else tree_depth(item) for item in tree[1])


def check_record(record):
    world = World(record)
    for q in record["questions"].values():
        atom, sign = atom_of(q["representation"])
        negated = sign == "-"
        assert q["question"].count(" not ") == negated
        derivable = atom in world.closure
        assert q["answer"] == (derivable != negated), q
        if q["QLen"] == "":
            assert not derivable
            match = FAILURE.match(q["proofs"])
            assert match, q["proofs"]
            chain = re.findall(r"rule\d+", match.group(3))
            assert all(r in world.rules for r in chain)
            assert q["QDep"] == int(match.group(1)) == len(chain) <= record["maxD"]
            assert q["strategy"] == ("inv-" if negated else "") + ("rconc" if chain else "random")
            assert parse_proofs(q["proofs"]) == []
            continue
        assert derivable and q["strategy"] == ("inv-proof" if negated else "proof")
        trees = parse_tree(q["proofs"])
        parsed = parse_proofs(q["proofs"])
        assert 1 <= len(trees) == len(parsed) <= proofwriter_gen.MAX_PROOFS
        assert len(set(map(str, trees))) == len(trees)               # no repeated alternative
        for tree, proof in zip(trees, parsed):
            assert atom in replay(world, tree)
            assert all(n in world.facts or n in world.rules for n in proof.nodes)
            if not proof.naf:   # trees.py leaves NAF out of the graph; without NAF the depths agree
                assert max(depth_classes(proof.nodes, proof.edges).values()) == tree_depth(tree)
        depths = [tree_depth(t) for t in trees]
        assert depths == sorted(depths)                               # shallowest first
        assert q["QDep"] == depths[0] <= record["maxD"]
        if parsed[0].naf:       # QLen also counts each NAF leaf, as the release does ([((NAF) -> r)]: 2)
            assert len(parsed[0].nodes) < q["QLen"] <= len(parsed[0].nodes) + q["proofs"].count("NAF")
        else:
            assert q["QLen"] == len(parsed[0].nodes)


def test_every_question_is_reproved(small_release, sample):
    records = [r for recs in read_release(small_release[0]).values() for r in recs]
    records += [r for recs in sample.values() for r in recs]
    for record in records:
        check_record(record)
    proved = [q for r in records for q in r["questions"].values() if q["QLen"] != ""]
    # the sample exercises every shape of proof the checks above are meant for
    assert any("NAF" in q["proofs"] for q in proved)
    assert any(" OR " in q["proofs"] for q in proved)
    assert any(q["strategy"] == "inv-proof" for q in proved)
    strategies = {q["strategy"] for r in records for q in r["questions"].values()}
    assert {"rconc", "inv-rconc", "random", "inv-random"} <= strategies


def test_qdep_reaches_the_depth_of_each_file(small_release, sample):
    for (depth, _), recs in read_release(small_release[0]).items():
        for rec in recs:           # every theory reaches its depth with a question
            assert max(q["QDep"] for q in rec["questions"].values() if q["QLen"] != "") == depth
    for depth, recs in sample.items():
        qdeps = {q["QDep"] for r in recs for q in r["questions"].values()}
        assert max(qdeps) == depth and {0, 1, 2, 3} & set(range(depth + 1)) <= qdeps


def test_theory_size_limits():
    """Short theories for learning-speed experiments: at most max_facts facts besides the planted
    chain's, and no rules beyond the chain when max_rules allows none; maxD still exact."""
    rng = random.Random(3)
    for depth in (0, 1, 2):
        for _ in range(20):
            theory, closure = proofwriter_gen.random_theory(depth, rng, max_facts=3, max_rules=0)
            assert len(theory.rules) == depth and closure.max_depth == depth
            assert 1 <= len(theory.facts) <= max(3, 1 + depth)   # the chain plants 1 + depth at most


def test_failure_questions_have_no_proof(sample):
    failures = [q for recs in sample.values() for r in recs for q in r["questions"].values()
                if q["proofs"].startswith("[@")]
    assert failures and all(q["QLen"] == "" and parse_proofs(q["proofs"]) == [] for q in failures)


def test_proof_grammar_matches_release_examples():
    theory = proofwriter_gen.Theory("Att", False, [("Bob", "is", "red"), ("Bob", "is", "big")], [
        proofwriter_gen.Rule((proofwriter_gen.Literal("?", "is", "red"),), ("?", "is", "kind")),
        proofwriter_gen.Rule((proofwriter_gen.Literal("?", "is", "kind"),
                              proofwriter_gen.Literal("?", "is", "red")), ("?", "is", "nice")),
        proofwriter_gen.Rule((proofwriter_gen.Literal("?", "is", "big"),), ("?", "is", "kind")),
    ])
    closure = proofwriter_gen.prove(theory)
    kind, nice = closure.proofs[("Bob", "is", "kind")], closure.proofs[("Bob", "is", "nice")]
    assert proofwriter_gen.proofs_string(kind) == "[(((triple1) -> rule1) OR ((triple2) -> rule3))]"
    assert nice[0].text == "((((triple1) -> rule1) triple1) -> rule2)" and nice[0].size == 3
    assert closure.depth[("Bob", "is", "nice")] == 2
    assert proofwriter_gen.failure_string("Att", ("Bob", "is", "green"), [1]) == \
        "[@1: Bob is green.[CWA. Example of deepest failure = (rule2 <- FAIL)]]"


def test_negated_condition_gives_naf():
    rules = [proofwriter_gen.Rule((proofwriter_gen.Literal("?", "is", "big", negated=True),),
                                  ("?", "is", "kind"))]
    closure = proofwriter_gen.prove(proofwriter_gen.Theory("Att", True, [("Bob", "is", "red")], rules))
    assert proofwriter_gen.proofs_string(closure.proofs[("Bob", "is", "kind")]) == "[(((NAF) -> rule1))]"
    assert closure.proofs[("Bob", "is", "kind")][0].size == 2
    with pytest.raises(ValueError, match="negates"):
        proofwriter_gen.check_negation(rules + [proofwriter_gen.Rule(
            (proofwriter_gen.Literal("?", "is", "red"),), ("?", "is", "big"))])


def test_failed_run_keeps_the_old_release(tmp_path, monkeypatch):
    proofwriter_gen.write_release(str(tmp_path), 15, seed=0)
    before = (tmp_path / "CWA" / "depth-5" / "meta-test.jsonl").read_bytes()
    calls = []

    def failing(seed, depth, index):
        calls.append(depth)
        if len(calls) > 20:
            raise RuntimeError("disk full")
        return real(seed, depth, index)

    real = proofwriter_gen.generate_record
    monkeypatch.setattr(proofwriter_gen, "generate_record", failing)
    with pytest.raises(RuntimeError):
        proofwriter_gen.write_release(str(tmp_path), 30, seed=1)
    assert sorted(os.listdir(tmp_path)) == ["CWA"]
    assert (tmp_path / "CWA" / "depth-5" / "meta-test.jsonl").read_bytes() == before
    monkeypatch.undo()
    proofwriter_gen.write_release(str(tmp_path), 30, seed=1)          # a complete run replaces it
    assert sorted(os.listdir(tmp_path)) == ["CWA"]
    assert sum(1 for _ in open(tmp_path / "CWA" / "depth-0" / "meta-train.jsonl")) == 4


def test_cli_rejects_too_few_theories(tmp_path):
    refused("make_data", "proofwriter", "--out", tmp_path, "--n-theories", 5, words=["--n-theories"])
    assert not (tmp_path / "CWA").exists()
