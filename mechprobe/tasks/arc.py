"""ARC with STREET's reasoning annotations (docs/METHOD.md Task 3, docs/DATA.md).

Two on-disk formats: STREET's `reasoning_annotated_{split}.jsonl` (one question per line, with its
textual logical units and reasoning-graph edges) and the paper's preprocessed `{split}.json` (keyed
by depth, a flattened proof string like "(5 2 1) -> 7 -> 9"). Statements = the logical units except
the final "The answer is ..." unit, in key order; the tree = the graph's edges among them.
"""

import os
import re
from dataclasses import dataclass

from mechprobe.tasks import dataroot
from mechprobe.cli import UserError
from mechprobe.jsonfiles import check_unique_ids, read_by_depth, read_jsonl
from mechprobe.tasks.base import Question, TextTask, register
from mechprobe.tasks.proofwriter import id_order
from mechprobe.tasks.trees import depth_classes

SPLITS = ("train", "dev", "test")
MAX_DEPTH = 2   # the paper keeps trees of depth <= 2
SUFFIX = " Answer:"
GROUPED_BY = "record"                 # cross-validation unit
HOW_TO_GET = ("download STREET's ARC files (reasoning_annotated_{train,dev,test}.jsonl) or the "
              "paper's preprocessed data/arc/{train,dev,test}.json, or use the records shipped in "
              "data/arc_offline; see data/README.md")
ANSWER_UNIT = re.compile(r"\bthe answer is\b", re.IGNORECASE)


@dataclass(kw_only=True)
class ArcQuestion(Question):
    """An ARC question: answer and choices are option letters; statements are facts."""

    statement_ids: list                # the logical units' keys
    proofs: str = ""                   # the preprocessed files' flat proof string
    qdep: int = 0                      # the tree's depth

    def __post_init__(self):
        super().__post_init__()
        # No bucket for trees deeper than the paper keeps, nor for records with no step among
        # the statements (every premise feeds the answer directly): nothing there to probe.
        self.bucket = (f"depth={self.qdep}" if any(self.useful) and self.qdep <= MAX_DEPTH
                       else None)


def checked(question):
    """An answer outside the question's options, or an option letter twice, is a bad record."""
    if len(set(question.choices)) < len(question.choices):
        raise ValueError(f"options {list(question.choices)} share a letter")
    if question.answer not in question.choices:
        raise ValueError(f"answer {question.answer!r} is not one of the options "
                         f"{list(question.choices)}")
    return question


def letters(options):
    """'A) ice' -> 'A', for each option."""
    return tuple(option.strip()[0] for option in options)


def tree_labels(statement_ids, edges, where):
    """useful/depth per statement from (premise, conclusion) edges among statements and the
    premises that feed the answer directly; the tree depth is the largest height."""
    nodes = []
    for premise, conclusion in edges:
        for node in (premise, conclusion):
            if node is not None and node not in nodes:
                nodes.append(node)
    inner = [(p, c) for p, c in edges if c is not None]
    missing = [n for n in nodes if n not in statement_ids]
    if missing:
        raise UserError(f"{where}: the reasoning graph names unit {missing[0]}, which the record does "
                        "not have: the file is damaged; download it again or fix the record")
    try:
        classes = depth_classes(nodes, inner)
    except ValueError as err:
        raise UserError(f"{where}: {err}: fix the record") from None
    useful = [int(s in classes) for s in statement_ids]
    depth = [classes.get(s) for s in statement_ids]
    position = {s: i for i, s in enumerate(statement_ids)}
    return useful, depth, max(classes.values(), default=0), [[position[p], position[c]]
                                                              for p, c in inner]


def street_question(record, where):
    """One STREET record -> ArcQuestion. Edges into or out of the answer unit are dropped
    (METHOD.md), so a unit that only feeds the answer is not on the tree: the same labels as the
    preprocessed files, which the authors flattened from the graph without the answer unit."""
    try:
        units = {str(k): v for k, v in record["textual_logical_units"].items()}
        keys = sorted(units, key=lambda k: int(k))
        answer_keys = [k for k in keys if ANSWER_UNIT.search(units[k])]
        if not answer_keys:
            raise UserError(f"{where}: record {record['id']} has no 'The answer is ...' unit: "
                            "is it a STREET reasoning_annotated record?")
        answer_key = answer_keys[-1]
        statement_ids = [k for k in keys if k != answer_key]
        edges = []
        for edge in record["reasoning_graph_edges"]:
            conclusion = str(edge["consequent"])
            for premise in map(str, edge["antecedents"]):
                if premise not in units or conclusion not in units:
                    bad = premise if premise not in units else conclusion
                    raise UserError(f"{where}: record {record['id']} has an edge naming unit {bad}, "
                                    "which it does not have: fix or re-download the record")
                if answer_key not in (premise, conclusion):
                    edges.append((premise, conclusion))
        useful, depth, tree_depth, positions = tree_labels(statement_ids, edges,
                                                           f"{where} ({record['id']})")
        return checked(ArcQuestion(
            id=record["id"], statement_ids=statement_ids,
            statements=[units[k] for k in statement_ids],
            question=f"{record['question']} {' '.join(record['options'])}",
            answer=record["answer"].strip()[0], qdep=tree_depth, source=where,
            useful=useful, depth=depth, choices=letters(record["options"]), edges=positions,
            kinds=["fact"] * len(statement_ids)))
    except (KeyError, TypeError, AttributeError, IndexError, ValueError) as err:
        raise UserError(f"{where}: not a STREET ARC record (missing or bad field {err}): "
                        f"{HOW_TO_GET}") from None


def parse_flat_proof(proof):
    """'(5 2 1) -> 7 -> 9' -> edges: 5->7, 2->7, 1->7, 7->9 (units in the parentheses feed the
    first unit of the path, then the path runs left to right). '(5 2)' alone: leaves, no edges."""
    proof = proof.strip()
    group, path = [], proof
    match = re.match(r"^\(([^)]*)\)\s*(?:->\s*)?(.*)$", proof)
    if match:
        group, path = match.group(1).split(), match.group(2)
    steps = [s.strip() for s in path.split("->") if s.strip()]
    edges = [(g, steps[0]) for g in group] if steps else [(g, None) for g in group]
    edges += list(zip(steps, steps[1:]))
    if len(steps) == 1 and not group:
        edges = [(steps[0], None)]
    return edges


def preprocessed_questions(path, split):
    out = []
    for file_depth, index, record, where in read_by_depth(path, "ARC"):
        try:
            statement_ids = sorted(map(str, record["triples"]), key=id_order)
            edges = parse_flat_proof(record["proof"])
            useful, depth, tree_depth, positions = tree_labels(statement_ids, edges, where)
            out.append(checked(ArcQuestion(
                id=f"{split}-{file_depth}-{index}", statement_ids=statement_ids,
                statements=[record["triples"][k] for k in statement_ids],
                question=record["question"], answer=record["answer"].strip()[0],
                proofs=record["proof"], qdep=tree_depth, source=where, useful=useful, depth=depth,
                choices=letters(record["options"]), edges=positions,
                kinds=["fact"] * len(statement_ids))))
        except (KeyError, TypeError, AttributeError, IndexError, ValueError) as err:
            raise UserError(f"{where}: not a preprocessed ARC record (missing or bad field "
                            f"{err}): {HOW_TO_GET}") from None
    return out


def load(root, split):
    """Every question of one split, labelled, in file order."""
    root = dataroot.resolve(root, "arc")
    if not os.path.isdir(root):
        raise UserError(f"--data {root} is not a folder: {HOW_TO_GET}")
    street = os.path.join(root, f"reasoning_annotated_{split}.jsonl")
    if os.path.isfile(street):
        return check_unique_ids([street_question(record, f"{street}:{number}")
                                 for number, record in read_jsonl(street)], "ARC")
    preprocessed = os.path.join(root, f"{split}.json")
    if os.path.isfile(preprocessed):
        return preprocessed_questions(preprocessed, split)
    raise UserError(f"no ARC files for split '{split}' under {root}: {HOW_TO_GET}")


@register
class Arc(TextTask):
    """ARC with STREET's trees in the task contract: questions by tree depth, each record its
    own cross-validation group. No input-only answerer: the options are too varied for a cheap
    rule to mean much."""

    name = "arc"
    suffix = SUFFIX
    grouped_by = GROUPED_BY
    how_to_get = HOW_TO_GET

    def load(self, split):
        return load(self.config.data, split)
