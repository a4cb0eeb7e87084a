"""ProofWriter data (docs/METHOD.md Task 2, docs/DATA.md): loading, filtering, labels.

Two on-disk formats are read: the raw release (`CWA/depth-N/meta-{split}.jsonl`, one theory per
line) and the paper's preprocessed files (`{split}.json`, one object keyed by depth). Both become
Questions: statements = the theory's facts then rules in id order; labels come from the parsed
proof (useful = in the proof tree, depth = height class).
"""

import os
import re
from dataclasses import dataclass, field

from mechprobe.tasks import dataroot
from mechprobe.cli import UserError
from mechprobe.tasks.base import TextTask, register
from mechprobe.tasks.corruptions import CORRUPTIONS, corrupt
from mechprobe.tasks.shortcuts import proofwriter_answers
from mechprobe.jsonfiles import check_unique_ids, read_by_depth, read_jsonl
from mechprobe.tasks.trees import CycleError, ProofSyntaxError, depth_classes, parse_proofs

DEPTHS = (0, 1, 2, 3, 5)   # the release's depth-N folders, as the paper uses them (no depth-4)
SPLITS = ("train", "dev", "test")
BUCKETS = (2, 4, 8, 12, 16, 20, 24)   # depth-1 questions by statement count m (paper's buckets)
# "exact": the paper keeps depth-1 questions whose theory has exactly m statements; "upto": each
# goes to the smallest bucket >= m (the earlier grouping, so older runs can be reproduced).
BUCKETING = ("exact", "upto")
SUFFIX = ": True or False?"           # the prompt's question suffix (METHOD.md)
GROUPED_BY = "theory"                 # cross-validation unit: questions of a theory share its context
HOW_TO_GET = ("download the ProofWriter release V2020.12.3 (CWA/depth-N/meta-*.jsonl) or the "
              "paper's preprocessed files (proofwriter/CWA/{train,dev,test}.json), or write "
              "offline data with `python make_data.py proofwriter --out DIR`; see data/README.md")


@dataclass
class Question:
    """A ProofWriter question. It keeps the task contract (mechprobe/tasks/base.py) with
    ProofWriter's own fields: answer is a bool (target the word), and bucket, kinds and edges
    follow from the theory and its proof string."""

    id: str
    statement_ids: list          # triple/rule ids, facts first, in id order
    statements: list             # their texts
    question: str
    answer: bool
    proofs: str                  # the raw proofs string
    qdep: int
    source: str = ""             # "file:line", for error messages
    group: str = ""              # cross-validation group (questions of one theory); "" = the id
    bucketing: str = "exact"     # one of BUCKETING
    useful: list = field(default_factory=list)   # 0/1 per statement
    depth: list = field(default_factory=list)    # class per statement, None where not useful

    def __post_init__(self):
        self.group = self.group or self.id

    @property
    def bucket(self):
        """'m=1' for depth-0 questions; depth-1 questions by statement count; else None."""
        if self.qdep == 0:
            return "m=1"
        if self.qdep == 1:
            m = len(self.statements)
            if self.bucketing == "exact":
                return f"m={m}" if m in BUCKETS else None
            for size in BUCKETS:
                if m <= size:
                    return f"m={size}"
        return None

    @property
    def target(self):
        """The answer as the word the model should say next."""
        return "True" if self.answer else "False"

    @property
    def choices(self):
        return ("True", "False")

    @property
    def context(self):
        return " ".join(self.statements)

    @property
    def kinds(self):
        """Per statement "fact" or "rule": the release names them triple<N> and rule<N>."""
        return ["rule" if sid.startswith("rule") else "fact" for sid in self.statement_ids]

    @property
    def edges(self):
        """The first proof's (premise, conclusion) pairs as statement positions (the gold tree
        the report draws); [] for a question with no proof."""
        if not self.proofs.startswith("[("):
            return []
        position = {sid: i for i, sid in enumerate(self.statement_ids)}
        proof = parse_proofs(self.proofs)[0]
        return [[position[a], position[b]] for a, b in proof.edges
                if a in position and b in position]

    def dump(self):
        return {"id": self.id, "statements": self.statements, "question": self.question,
                "answer": self.answer, "useful": self.useful, "depth": self.depth,
                "kinds": self.kinds, "qdep": self.qdep, "bucket": self.bucket}


def id_order(key):
    """'triple10' sorts after 'triple9'."""
    match = re.search(r"(\d+)$", key)
    return (re.sub(r"\d+$", "", key), int(match.group(1)) if match else 0)


def statements_of(triples, rules):
    """Facts then rules, each in id order; values are texts (preprocessed) or {'text': ...}."""
    ids, texts = [], []
    for group in (triples, rules):
        for key in sorted(group, key=id_order):
            value = group[key]
            ids.append(key)
            texts.append(value["text"] if isinstance(value, dict) else value)
    return ids, texts


def label(question):
    """Fill useful/depth from the proof; raise UserError naming the record when it is inconsistent."""
    try:
        proofs = parse_proofs(question.proofs)
    except ProofSyntaxError as err:
        raise UserError(f"{question.source}: question {question.id} has a malformed proof ({err}): "
                        "the file is damaged; download or generate it again") from None
    proof = proofs[0]
    missing = [node for node in proof.nodes if node not in question.statement_ids]
    if missing:
        raise UserError(f"{question.source}: the proof of question {question.id} names {missing[0]}, "
                        "which its theory does not have: the file is damaged or from another "
                        "release; download or generate it again")
    classes = depth_classes(proof.nodes, proof.edges)   # CycleError: the caller skips the question
    question.useful = [int(s in classes) for s in question.statement_ids]
    question.depth = [classes.get(s) for s in question.statement_ids]
    return question


def keep_for_probing(proofs):
    """METHOD.md filters: a proof exists, no negation as failure, a single proof."""
    return proofs.startswith("[(") and "NAF" not in proofs and " OR " not in proofs


def labelled(question, skipped):
    """The labelled question, or None (its id appended to `skipped`) when its proof passes
    through a rule twice: one odd proof in a deep file must not cost the rest of the file."""
    try:
        return label(question)
    except CycleError:
        skipped.append(question.id)
        return None


def release_questions(path, everything=False, skipped=None):
    """Questions of one meta-{split}.jsonl file that pass the probing filters, labelled; with
    `everything`, every question (proved or not, for training), unlabelled. Ids of questions
    whose proof cannot be labelled go to `skipped`."""
    skipped = [] if skipped is None else skipped
    out = []
    for number, theory in read_jsonl(path):
        try:
            ids, texts = statements_of(theory["triples"], theory["rules"])
            items = sorted(theory["questions"].items(), key=lambda kv: id_order(kv[0]))
            for qid, q in items:
                probed = q.get("QLen", "") != "" and keep_for_probing(q["proofs"])
                if not (probed or everything):
                    continue
                question = Question(
                    id=f"{theory['id']}-{qid}", statement_ids=ids, statements=texts,
                    question=q["question"], answer=bool(q["answer"]), proofs=q["proofs"],
                    qdep=int(q["QDep"]), source=f"{path}:{number}", group=theory["id"])
                question = question if everything else labelled(question, skipped)
                if question is not None:
                    out.append(question)
        except (KeyError, TypeError, AttributeError, ValueError) as err:
            raise UserError(f"{path}:{number}: not a ProofWriter theory record (missing or bad "
                            f"field {err}): {HOW_TO_GET}") from None
    return out


def preprocessed_questions(path, split, skipped=None):
    skipped = [] if skipped is None else skipped
    out = []
    for depth, index, record, where in read_by_depth(path, "ProofWriter"):
        try:
            ids, texts = statements_of(record["triples"], record["rules"])
            if not keep_for_probing(record["proof"]):
                continue
            question = labelled(Question(
                id=f"{split}-{depth}-{index}", statement_ids=ids, statements=texts,
                question=record["question"], answer=bool(record["answer"]),
                proofs=record["proof"], qdep=depth, source=where, group=record["context"]), skipped)
            if question is not None:
                out.append(question)
        except (KeyError, TypeError, AttributeError, ValueError) as err:
            raise UserError(f"{where}: not a preprocessed ProofWriter record (missing or bad field "
                            f"{err}): {HOW_TO_GET}") from None
    return out


def locate(root):
    """('release', CWA folder) or ('preprocessed', folder with {split}.json); clear errors else."""
    if not os.path.isdir(root):
        raise UserError(f"--data {root} is not a folder: {HOW_TO_GET}")
    base = os.path.basename(os.path.normpath(root))
    if base == "OWA" or (os.path.isdir(os.path.join(root, "OWA"))
                         and not os.path.isdir(os.path.join(root, "CWA"))):
        raise UserError(f"--data {root} is the open-world (OWA) data; the method uses the closed-world "
                        "folder: pass the release root or its CWA folder")
    for folder in (root, os.path.join(root, "CWA")):
        if any(os.path.isdir(os.path.join(folder, f"depth-{d}")) for d in DEPTHS):
            return "release", folder
        if any(os.path.isfile(os.path.join(folder, f"{s}.json")) for s in SPLITS):
            return "preprocessed", folder
    raise UserError(f"no ProofWriter files under {root}: {HOW_TO_GET}")


def report_skipped(split, skipped, total):
    if skipped:
        print(f"{split}: skipped {len(skipped)} of {total} questions whose proof passes "
              f"through a rule twice (a cycle no tree can label), e.g. {skipped[0]}")


def load(root, split, everything=False, buckets="exact"):
    """Every probing-eligible question of one split, labelled, in a fixed order; with
    `everything`, every question of the release files, unlabelled (training data). `buckets`
    (one of BUCKETING) sets how depth-1 questions are bucketed. A question whose proof cannot be
    labelled is skipped, and the count printed."""
    if buckets not in BUCKETING:
        raise UserError(f"--buckets {buckets}: use one of {', '.join(BUCKETING)}")
    root = dataroot.resolve(root, "proofwriter")
    kind, folder = locate(root)
    if kind == "preprocessed" and everything:
        raise UserError(f"{root} holds the paper's preprocessed files, which keep only proved "
                        "questions; training needs the release format (meta-*.jsonl), e.g. from "
                        "`python make_data.py proofwriter --out DIR`")
    skipped = []
    if kind == "preprocessed":
        path = os.path.join(folder, f"{split}.json")
        if not os.path.isfile(path):
            raise UserError(f"{path} is missing: {HOW_TO_GET}")
        questions = preprocessed_questions(path, split, skipped)
    else:
        paths = [os.path.join(folder, f"depth-{d}", f"meta-{split}.jsonl") for d in DEPTHS]
        present = [p for p in paths if os.path.isfile(p)]
        if not present:
            raise UserError(f"no meta-{split}.jsonl under {folder}/depth-*: {HOW_TO_GET}")
        questions = [q for path in present for q in release_questions(path, everything, skipped)]
    check_unique_ids(questions, "ProofWriter")
    report_skipped(split, skipped, len(questions) + len(skipped))
    for q in questions:
        q.bucketing = buckets
    return questions


@register
class ProofWriter(TextTask):
    """ProofWriter in the task contract: questions by bucket (m=1, then depth-1 by statement
    count), grouped by theory for cross-validation."""

    name = "proofwriter"
    suffix = SUFFIX
    grouped_by = GROUPED_BY
    how_to_get = HOW_TO_GET
    options = ("buckets",)

    def load(self, split):
        return load(self.config.data, split, buckets=self.config.buckets)

    def shots(self):
        return load(self.config.data, "train")

    def everything(self, split):
        try:
            return load(self.config.data, split, everything=True, buckets=self.config.buckets)
        except UserError:     # the paper's preprocessed files hold probed questions only
            return None

    def shortcuts(self, questions):
        return proofwriter_answers(questions)

    robustness_label = "depth-1"
    corruptions = CORRUPTIONS

    def robustness_pool(self, questions):
        """The paper's: the depth-1 questions."""
        return [q for q in questions if q.qdep == 1]

    def corrupt(self, question, kind, rng, pool):
        return corrupt(question, kind, rng)
