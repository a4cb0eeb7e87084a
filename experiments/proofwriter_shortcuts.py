"""What shortcuts the generated ProofWriter questions offer a model that does not reason.

    python experiments/proofwriter_shortcuts.py                       # depth-0 theories, <= 4 facts, <= 2 rules
    python experiments/proofwriter_shortcuts.py --balanced            # answers balanced within plain/negated
    python experiments/proofwriter_shortcuts.py --data runs/data/proofwriter   # the train split instead
    python experiments/proofwriter_shortcuts.py --data runs/data/proofwriter --split test --all-sizes

Draws fresh theories (proofwriter_gen.random_theory) and their questions, or reads a split's
questions of QDep <= 1, and prints, for plain and negated questions, how many there are and how
many are True, then the accuracy of three rules that read no theory:

- not-is-true: True exactly when the question says "not";
- word-in-fact: True when the question's last word occurs in a fact, flipped by "not" (also by
  question depth, to set beside a model's held-out accuracy by depth);
- and, for the non-derivable atoms asked, the share whose last word a rule puts in the text (the
  word rule then needs telling facts from rules).

Counting only; seconds to run.
"""

import argparse
import random
import sys
from types import SimpleNamespace

from tqdm.auto import tqdm

from mechprobe.cli import UserError, format_table
from mechprobe.tasks import proofwriter
from mechprobe.tasks import proofwriter_gen as gen
from mechprobe.tasks.shortcuts import facts_of, negated, word_in_facts, word_rule
from mechprobe.training.proofwriter import SHORT, training_questions


def generated(args):
    """(question, answer, fact text, rule text, QDep) for fresh theories."""
    rng = random.Random(args.seed)
    items = []
    for _ in tqdm(range(args.theories), desc="theories"):
        theory, closure = gen.random_theory(args.depth, rng, args.max_facts, args.max_rules)
        facts = " ".join(gen.sentence(theory.kind, atom) for atom in theory.facts)
        rules = " ".join(rule.text for rule in theory.rules).lower()
        questions = [(q["question"], q["answer"], q["QDep"])
                     for q in gen.questions(theory, closure, args.depth, rng) if q["QDep"] <= 1]
        if args.balanced:
            questions = balance(questions, rng)
        items += [(text, answer, facts, rules, qdep) for text, answer, qdep in questions]
    return items


def balance(questions, rng):
    """As many True as False answers within plain and within negated questions."""
    kept = []
    for plain in (True, False):
        true = [q for q in questions if is_negated(q[0]) != plain and q[1]]
        false = [q for q in questions if is_negated(q[0]) != plain and not q[1]]
        n = min(len(true), len(false))
        kept += rng.sample(true, n) + rng.sample(false, n)
    return kept


def from_split(args):
    """The same items from a data folder's split, theories of at most SHORT statements."""
    items = []
    for q in training_questions(args.data, args.split, 1):
        if args.all_sizes or len(q.statements) <= SHORT:
            rules = " ".join(s for i, s in zip(q.statement_ids, q.statements) if i.startswith("rule"))
            items.append((q.question, q.answer, facts_of(q), rules.lower(), q.qdep))
    return items


def is_negated(text):
    return negated(SimpleNamespace(question=text))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--theories", type=int, default=2000)
    parser.add_argument("--depth", type=int, default=0, choices=proofwriter.DEPTHS)
    parser.add_argument("--max-facts", type=int, default=4)
    parser.add_argument("--max-rules", type=int, default=2)
    parser.add_argument("--balanced", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data", help="read this folder's questions instead of generating")
    parser.add_argument("--split", default="train", choices=["train", "dev", "test"],
                        help="with --data: which split")
    parser.add_argument("--all-sizes", action="store_true",
                        help=f"with --data: every theory, not only those of <= {SHORT} statements")
    args = parser.parse_args()
    try:
        items = from_split(args) if args.data else generated(args)
    except UserError as error:
        sys.exit(f"error: {error}")
    if not items:
        sys.exit("error: no questions: use more --theories, or a --data folder with a train split")

    rows = []
    for label, plain in (("plain", True), ("negated", False)):
        answers = [answer for text, answer, *_ in items if is_negated(text) != plain]
        rows.append({"questions": label, "n": len(answers), "true": sum(answers),
                     "share_true": sum(answers) / max(1, len(answers))})
    print(format_table(rows, ["questions", "n", "true", "share_true"]))

    not_is_true = sum(answer == is_negated(text) for text, answer, *_ in items) / len(items)
    word_right = [word_rule(SimpleNamespace(question=text), facts) == answer
                  for text, answer, facts, *_ in items]
    word_in_fact = sum(word_right) / len(items)
    underivable = [(text, rules) for text, answer, _, rules, _ in items if answer == is_negated(text)]
    in_rule = sum(word_in_facts(SimpleNamespace(question=text), rules)
                  for text, rules in underivable) / max(1, len(underivable))
    print(f"\nshortcut: not-is-true {not_is_true:.3f}, word-in-fact {word_in_fact:.3f}; "
          f"non-derivable asked with their word in a rule {in_rule:.3f} (of {len(underivable)})")
    by_depth = {}
    for right, item in zip(word_right, items):
        by_depth.setdefault(item[4], []).append(right)
    print("word-in-fact by depth: " + ", ".join(f"depth {d} {sum(v) / len(v):.3f} (of {len(v)})"
                                                for d, v in sorted(by_depth.items())))


if __name__ == "__main__":
    main()
