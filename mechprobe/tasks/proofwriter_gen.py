"""Offline ProofWriter-format data: random theories, a closed-world prover, questions with proofs.

Writes what the release V2020.12.3 holds under CWA/ (docs/DATA.md), so the loaders and
the ProofWriter experiments run without a download. Facts are atoms (subject, verb, object): the
subject is an entity or VAR ("something"/"someone"), the object an attribute ("is" atoms) or an
entity (relations). Objects are always constants; a rule has at most one variable, its subject.

Closed-world negation: a rule may only negate a predicate (verb, object) that no rule of the
theory concludes. "Not derivable" is then "not a given fact", the program is trivially
stratified, and forward chaining to a fixpoint is well defined. The CWA domain of VAR is the
entities the theory's text mentions, so a reader of the file can redo every inference.

A theory in the depth-N file has maxD = N: the deepest derivable fact needs exactly N rule
applications on its shallowest proof. A chain of N rules is planted, random facts and rules are
added around it, and the theory is redrawn until the prover confirms maxD = N.
"""

import itertools
import json
import os
import random
from dataclasses import dataclass, field

from mechprobe.outputs import atomic_path
from mechprobe.tasks.proofwriter import DEPTHS  # the release's folders, which the generator writes
from mechprobe.tasks.trees import CycleError, heights

SPLITS = (("train", 0.7), ("dev", 0.1), ("test", 0.2))  # roughly the release's proportions
MAX_PROOFS = 4           # OR alternatives kept per fact, shallowest first
MAX_ATTEMPTS = 500       # redraws of one theory before giving up (a bug, not bad luck)
VAR = "?"

PEOPLE = ("Anne", "Bob", "Charlie", "Dave", "Erin", "Fiona", "Gary", "Harry")
PEOPLE_ATTRIBUTES = ("red", "blue", "green", "kind", "nice", "big", "cold", "young", "round",
                     "rough", "white", "smart", "quiet", "furry")
ANIMALS = ("cat", "dog", "bald eagle", "rabbit", "mouse", "tiger", "lion", "bear", "squirrel", "cow")
ANIMAL_ATTRIBUTES = ("red", "blue", "green", "kind", "nice", "big", "cold", "young", "round", "rough")
RELATIONS = ("likes", "chases", "eats", "sees", "visits", "needs")


@dataclass(frozen=True)
class Literal:
    """A rule condition: an atom pattern, possibly negated (closed-world negation)."""

    subject: str
    verb: str
    obj: str
    negated: bool = False

    @property
    def atom(self):
        return (self.subject, self.verb, self.obj)


@dataclass(frozen=True)
class Rule:
    conditions: tuple        # of Literal
    conclusion: tuple        # atom pattern
    var_word: str = "something"
    text: str = ""

    @property
    def has_var(self):
        return VAR in (self.conclusion[0], *(c.subject for c in self.conditions))


@dataclass
class Theory:
    kind: str                # "Att" (people, attributes) or "Rel" (animals, relations)
    negation: bool           # a "Neg" theory: negated conditions and negated questions
    facts: list              # atoms, in triple order
    rules: list              # Rules, in rule order

    @property
    def domain(self):
        """Entities the text mentions, in order of first mention: what VAR ranges over."""
        seen = {}
        for s, v, o in self.facts:
            seen.setdefault(s)
            if v != "is":
                seen.setdefault(o)
        for rule in self.rules:
            for s, v, o in (rule.conclusion, *(c.atom for c in rule.conditions)):
                if s != VAR:
                    seen.setdefault(s)
                if v != "is":
                    seen.setdefault(o)
        return list(seen)


# --- text and representations ---------------------------------------------------------------

def _name(kind, entity, start=False):
    if kind == "Att":
        return entity
    return ("The " if start else "the ") + entity


def sentence(kind, atom, negated=False):
    """'Bob is smart.', 'The mouse likes the dog.', 'The tiger does not visit the mouse.'"""
    subject, verb, obj = atom
    if verb == "is":
        predicate = f"is not {obj}" if negated else f"is {obj}"
    else:
        predicate = f"does not {verb[:-1]} the {obj}" if negated else f"{verb} the {obj}"
    return f"{_name(kind, subject, start=True)} {predicate}."


def representation(atom, sign="+", var_word="something"):
    subject, verb, obj = atom
    words = (var_word if subject == VAR else subject, verb, obj, sign)
    return "(" + " ".join(f'"{w}"' for w in words) + ")"


def rule_representation(rule):
    conditions = " ".join(representation(c.atom, "~" if c.negated else "+", rule.var_word)
                          for c in rule.conditions)
    return f"(({conditions}) -> {representation(rule.conclusion, '+', rule.var_word)})"


def _predicate(verb, obj, negated, plural):
    if verb == "is":
        return ("are" if plural else "is") + (" not " if negated else " ") + obj
    if negated:
        return ("do not " if plural else "does not ") + f"{verb[:-1]} the {obj}"
    return (verb[:-1] if plural else verb) + f" the {obj}"


def rule_text(kind, conditions, conclusion, var_word, rng):
    """The English of a rule, in the release's templates."""
    people = var_word == "someone"
    simple = (conclusion[0] == VAR and conclusion[1] == "is"
              and all(c.subject == VAR and c.verb == "is" and not c.negated for c in conditions))
    if simple and rng.random() < 0.5:
        # "All white, round things are big." / "Young things are white." / "Blue people are furry."
        noun = "people" if people else "things"
        adjectives = ", ".join(c.obj for c in conditions)
        if rng.random() < 0.5:
            return f"All {adjectives} {noun} are {conclusion[2]}."
        return f"{adjectives[0].upper()}{adjectives[1:]} {noun} are {conclusion[2]}."
    pronoun = "they" if people else "it"
    parts, previous = [], None
    for c in conditions:
        # "is smart and nice", "is big and not red"; but not "is not white and round" (ambiguous)
        if (previous is not None and previous.subject == c.subject and previous.verb == c.verb == "is"
                and (c.negated or not previous.negated)):
            parts[-1] += f" and {'not ' if c.negated else ''}{c.obj}"
        else:
            if c.subject == VAR:
                # the first mention is "something"/"someone", later ones "it"/"they"
                mentioned = any(p.subject == VAR for p in conditions[:conditions.index(c)])
                subject, plural = (pronoun, people) if mentioned else (var_word, False)
            else:
                subject, plural = _name(kind, c.subject), False
            parts.append(f"{subject} {_predicate(c.verb, c.obj, c.negated, plural)}")
        previous = c
    if conclusion[0] == VAR:
        then = f"{pronoun} {_predicate(conclusion[1], conclusion[2], False, people)}"
    else:
        then = f"{_name(kind, conclusion[0])} {_predicate(conclusion[1], conclusion[2], False, False)}"
    return f"If {' and '.join(parts)} then {then}."


# --- the prover -----------------------------------------------------------------------------

def _ground(pattern, value):
    return (value, pattern[1], pattern[2]) if pattern[0] == VAR else pattern


@dataclass(frozen=True)
class Derivation:
    """One proof tree, rendered in the release's grammar, with what QDep/QLen and checks need."""

    text: str                # "triple3", "((triple4) -> rule1)", "NAF"
    root: object             # node id of the conclusion: "tripleK", "ruleK" or ("NAF", atom)
    depth: int               # rule applications on the longest chain (a fact or NAF: 0)
    nodes: frozenset         # triple ids, rule ids and ("NAF", atom): QLen is their number
    edges: frozenset         # (premise node, rule node)
    facts: frozenset = frozenset()   # atoms concluded anywhere inside, to refuse circular proofs

    @property
    def size(self):
        return len(self.nodes)


def _leaf(node, atom=None):
    text = "NAF" if isinstance(node, tuple) else node
    return Derivation(text, node, 0, frozenset([node]), frozenset(),
                      frozenset([atom]) if atom else frozenset())


def _graph_depth(nodes, edges):
    """Longest path (in edges) of the proof's node graph, None on a cycle.

    The node graph merges repeated ids (trees.py does the same), so a rule used in two branches
    is one node; a proof whose merged graph is cyclic or deeper than its tree would give the
    probing code a different depth than QDep, and is not emitted.
    """
    try:
        return max(heights(nodes, edges).values(), default=0)
    except CycleError:
        return None


def _apply(rule_id, conclusion, items):
    """The proof of `conclusion` by rule_id from item proofs (in condition order), or None."""
    facts = frozenset().union(*(i.facts for i in items))
    if conclusion in facts:
        return None                                  # it would prove the fact from itself
    nodes = frozenset([rule_id]).union(*(i.nodes for i in items))
    edges = frozenset((i.root, rule_id) for i in items).union(*(i.edges for i in items))
    depth = 1 + max(i.depth for i in items)
    if _graph_depth(nodes, edges) != depth:
        return None
    text = "((" + " ".join(i.text for i in items) + f") -> {rule_id})"
    return Derivation(text, rule_id, depth, nodes, edges, facts | {conclusion})


@dataclass
class Closure:
    """Everything derivable from a theory under the closed-world assumption."""

    known: set                                   # derivable atoms (membership only)
    depth: dict = field(default_factory=dict)    # atom -> rule applications on its shallowest proof
    proofs: dict = field(default_factory=dict)   # atom -> Derivations, shallowest (<= MAX_PROOFS)
    derived: list = field(default_factory=list)  # derived (not given) atoms, shallowest first

    @property
    def max_depth(self):
        return max(self.depth.values(), default=0)


def _satisfied(rule, value, known):
    """The grounded positive and negated conditions if the rule fires for VAR = value, else None."""
    grounded = [(c.negated, _ground(c.atom, value)) for c in rule.conditions]
    if all((atom not in known) if negated else (atom in known) for negated, atom in grounded):
        return grounded
    return None


def prove(theory):
    """Forward chaining to a fixpoint, then the shallowest depth and up to MAX_PROOFS proofs per fact."""
    check_negation(theory.rules)
    domain = theory.domain
    groundings = [(i, rule, v) for i, rule in enumerate(theory.rules)
                  for v in (domain if rule.has_var else [None])]
    known, order = set(theory.facts), []
    changed = True
    while changed:
        changed = False
        for _, rule, value in groundings:
            if _satisfied(rule, value, known) is not None:
                atom = _ground(rule.conclusion, value)
                if atom not in known:
                    known.add(atom)
                    order.append(atom)
                    changed = True
    # Every rule firing at the fixpoint, as (rule id, condition items) per concluded atom. Negated
    # conditions can be checked against the final set: no rule concludes what a rule negates.
    derivations = {}
    for i, rule, value in groundings:
        grounded = _satisfied(rule, value, known)
        atom = _ground(rule.conclusion, value)
        if grounded is not None and atom not in theory.facts:
            derivations.setdefault(atom, []).append((f"rule{i + 1}", grounded))
    closure = Closure(known=known, depth={atom: 0 for atom in theory.facts})
    changed = True
    while changed:                                   # shortest-path relaxation of the depths
        changed = False
        for atom in order:
            for _, grounded in derivations[atom]:
                if all(a in closure.depth for neg, a in grounded if not neg):
                    d = 1 + max((closure.depth[a] for neg, a in grounded if not neg), default=0)
                    if d < closure.depth.get(atom, d + 1):
                        closure.depth[atom] = d
                        changed = True
    closure.derived = sorted(order, key=lambda a: (closure.depth[a], a))
    closure.proofs = {atom: [_leaf(f"triple{i + 1}", atom)] for i, atom in enumerate(theory.facts)}
    _collect_proofs(closure, derivations)
    return closure


def _collect_proofs(closure, derivations, max_rounds=10):
    """Bottom-up proof sets: each round rebuilds every derived fact's best MAX_PROOFS proofs from
    its premises' current ones, shallowest first, until nothing changes."""
    for _ in range(max_rounds):
        changed = False
        for atom in closure.derived:
            candidates = {}
            for rule_id, grounded in derivations[atom]:
                pools = [[_leaf(("NAF", a))] if neg else closure.proofs.get(a, []) for neg, a in grounded]
                for items in itertools.product(*pools):
                    proof = _apply(rule_id, atom, items)
                    if proof is not None:
                        candidates.setdefault(proof.text, proof)
            best = sorted(candidates.values(), key=lambda p: (p.depth, p.size, p.text))[:MAX_PROOFS]
            if [p.text for p in best] != [p.text for p in closure.proofs.get(atom, [])]:
                closure.proofs[atom] = best
                changed = True
        if not changed:
            return


def check_negation(rules):
    """Raise ValueError if a rule negates a predicate that some rule concludes (see module doc)."""
    concluded = {r.conclusion[1:] for r in rules}
    for i, rule in enumerate(rules):
        for c in rule.conditions:
            if c.negated and c.atom[1:] in concluded:
                raise ValueError(f"rule{i + 1} negates '{c.verb} {c.obj}', which a rule concludes")


def proofs_string(proofs):
    return "[(" + " OR ".join(p.text for p in proofs) + ")]"


def failure_chain(theory, closure, goal, limit):
    """The deepest failed rule chain for a non-derivable goal, as rule indices, at most `limit` long.

    A rule that could conclude the goal failed because one of its conditions did; the chain
    follows the failed positive condition whose own chain is deepest (ties: the first).
    """
    subjects = {}
    for s, v, o in sorted(closure.known):
        subjects.setdefault((v, o), []).append(s)

    def holds(pattern):
        found = subjects.get(pattern[1:], [])
        return bool(found) if pattern[0] == VAR else pattern[0] in found

    def chain(pattern, path, budget):
        best = []
        if budget == 0:
            return best
        for i, rule in enumerate(theory.rules):
            c = rule.conclusion
            if i in path or c[1:] != pattern[1:]:
                continue
            if c[0] != VAR and pattern[0] != VAR and c[0] != pattern[0]:
                continue
            value = pattern[0] if c[0] == VAR and pattern[0] != VAR else VAR
            failed = [_ground(x.atom, value) for x in rule.conditions
                      if not x.negated and not holds(_ground(x.atom, value))]
            below = max((chain(a, path + (i,), budget - 1) for a in failed), key=len, default=[])
            if 1 + len(below) > len(best):
                best = [i] + below
        return best

    return chain(goal, (), limit)


def failure_string(kind, atom, chain):
    rules = "".join(f"rule{i + 1} <- " for i in chain)
    return (f"[@{len(chain)}: {sentence(kind, atom)}"
            f"[CWA. Example of deepest failure = ({rules}FAIL)]]")


# --- random theories ------------------------------------------------------------------------

def _keys(kind, entities):
    """Predicates (verb, object) a theory over these entities can use."""
    if kind == "Att":
        return [("is", a) for a in PEOPLE_ATTRIBUTES]
    return [("is", a) for a in ANIMAL_ATTRIBUTES] + [(v, e) for v in RELATIONS for e in entities]


class _Builder:
    """Accumulates one theory's facts and rules, keeping closed-world negation well defined."""

    def __init__(self, rng, kind, negation):
        self.rng, self.kind, self.negation = rng, kind, negation
        self.entities = (rng.sample(PEOPLE, rng.randint(1, 4)) if kind == "Att"
                         else rng.sample(ANIMALS, rng.randint(2, 4)))
        self.keys = _keys(kind, self.entities)
        self.facts, self.rules = [], []
        self.concluded, self.negated = set(), set()   # predicate keys, membership only

    def key_for(self, subject, exclude=()):
        """A random predicate not in `exclude` that makes sense for subject (no 'the cat likes the cat')."""
        options = [k for k in self.keys if k not in exclude and k[1] != subject]
        return self.rng.choice(options)

    def add_fact(self, atom):
        if atom not in self.facts:
            self.facts.append(atom)

    def add_rule(self, conditions, conclusion):
        var_word = "someone" if self.kind == "Att" and self.rng.random() < 0.5 else "something"
        text = rule_text(self.kind, conditions, conclusion, var_word, self.rng)
        self.rules.append(Rule(tuple(conditions), conclusion, var_word, text))
        self.concluded.add(conclusion[1:])
        self.negated.update(c.atom[1:] for c in conditions if c.negated)

    def negatable(self, key):
        return self.negation and key not in self.concluded

    def plant_chain(self, depth):
        """A fact and `depth` rules, each concluding what the next one needs."""
        rng = self.rng
        subject = rng.choice(self.entities)
        key = self.key_for(subject)
        self.add_fact((subject,) + key)
        used = {key}
        for _ in range(depth):
            r = rng.random()
            if r < 0.15 and len(self.entities) > 1:
                # "If something likes the tiger then the tiger visits the dog."
                new_subject = rng.choice([e for e in self.entities if e != subject])
                nxt = self.key_for(new_subject, exclude=used | self.negated)
                main, conclusion = Literal(VAR, *key), (new_subject,) + nxt
            else:
                new_subject = subject
                nxt = self.key_for(subject, exclude=used | self.negated)
                if r < 0.25:                          # "If Bob is big then Bob is red."
                    main, conclusion = Literal(subject, *key), (subject,) + nxt
                else:
                    main, conclusion = Literal(VAR, *key), (VAR,) + nxt
            conditions = [main]
            r = rng.random()
            if r < 0.3:                               # a second condition met by a given fact
                extra = self.key_for(subject, exclude=used | {nxt})
                self.add_fact((subject,) + extra)
                conditions.append(Literal(main.subject, *extra))
            elif r < 0.55 and self.negation:           # a negated condition met by its absence
                extra = self.key_for(subject, exclude=used | {nxt} | self.concluded)
                if (subject,) + extra not in self.facts:
                    conditions.append(Literal(main.subject, *extra, negated=True))
            rng.shuffle(conditions)
            self.add_rule(conditions, conclusion)
            used.add(nxt)
            subject, key = new_subject, nxt

    def random_fact(self):
        subject = self.rng.choice(self.entities)
        self.add_fact((subject,) + self.key_for(subject))

    def random_rule(self):
        rng = self.rng
        conclusion_key = self.key_for(None, exclude=self.negated)
        var = rng.random() < 0.8
        subject = VAR if var else rng.choice(self.entities)
        if not var and conclusion_key[1] == subject:
            return
        conditions = []
        for i in range(rng.choice((1, 1, 1, 2, 2, 3))):
            key = self.key_for(None, exclude={conclusion_key} | {c.atom[1:] for c in conditions})
            on_var = (i == 0 or rng.random() < 0.85) if var else rng.random() < 0.5
            # the conclusion's key is not negatable here: key_for excluded it from the conditions
            negated = rng.random() < 0.3 and self.negatable(key)
            condition_subject = VAR if on_var else rng.choice(self.entities)
            if condition_subject == key[1]:
                return                                 # "the cat likes the cat"
            conditions.append(Literal(condition_subject, *key, negated))
        self.add_rule(conditions, (subject,) + conclusion_key)


def _attempt(depth, rng, kind, negation, max_facts, max_rules):
    builder = _Builder(rng, kind, negation)
    if depth > 0:
        builder.plant_chain(depth)
    least_facts = max(1, len(builder.facts))
    n_facts = rng.randint(least_facts, max(max_facts, least_facts))
    n_rules = rng.randint(max(depth, min(1, max_rules)), max(max_rules, depth))
    for _ in range(100):
        if len(builder.facts) >= n_facts:
            break
        builder.random_fact()
    for _ in range(100):
        if len(builder.rules) >= n_rules:
            break
        builder.random_rule()
    facts, rules = list(builder.facts), list(builder.rules)
    rng.shuffle(facts)
    rng.shuffle(rules)
    return Theory(kind, negation, facts, rules)


def _consistent(closure, depth):
    """maxD is the wanted depth, and every derived fact's first proof is a shallowest one."""
    if closure.max_depth != depth:
        return False
    return all(closure.proofs.get(a) and closure.proofs[a][0].depth == closure.depth[a]
               for a in closure.derived)


def random_theory(depth, rng, max_facts=16, max_rules=8):
    """A Theory with maxD == depth and its Closure, drawn from rng (random.Random).

    Up to max_facts facts and max_rules rules besides the planted chain (the defaults are the
    released data's sizes; smaller ones give the short theories of learning-speed experiments).
    """
    kind = rng.choice(("Att", "Rel"))
    negation = rng.random() < 0.5
    for _ in range(MAX_ATTEMPTS):
        theory = _attempt(depth, rng, kind, negation, max_facts, max_rules)
        closure = prove(theory)
        if _consistent(closure, depth):
            return theory, closure
    raise RuntimeError(f"no depth-{depth} theory after {MAX_ATTEMPTS} attempts")


# --- questions and records ------------------------------------------------------------------

def _question(theory, closure, atom, negated, chain=None):
    if atom in closure.known:
        best = closure.proofs[atom]
        answer, strategy = not negated, "proof"
        qdep, qlen, proofs = best[0].depth, best[0].size, proofs_string(best)
    else:
        answer, strategy = negated, ("rconc" if chain else "random")
        qdep, qlen, proofs = len(chain), "", failure_string(theory.kind, atom, chain)
    return {"question": sentence(theory.kind, atom, negated), "answer": answer, "QDep": qdep,
            "QLen": qlen, "strategy": ("inv-" if negated else "") + strategy, "proofs": proofs,
            "representation": representation(atom, "-" if negated else "+")}


def questions(theory, closure, depth, rng):
    """8-12 questions: about half on derivable facts (one at the theory's full depth), half not.

    Derivable facts are drawn depth by depth so that every depth occurs; failures alternate
    between rule conclusions that failed (rconc) and random atoms (random), keeping only those
    whose failure chain is at most `depth` long (QDep never exceeds maxD).
    """
    n = rng.randint(8, 12)
    by_depth = {}
    for atom in list(theory.facts) + closure.derived:
        by_depth.setdefault(closure.depth[atom], []).append(atom)
    chosen = [rng.choice(by_depth[depth])]
    by_depth[depth].remove(chosen[0])
    while len(chosen) < (n + rng.randint(0, 1)) // 2:
        depths = [d for d in sorted(by_depth) if by_depth[d]]
        if not depths:
            break
        pool = by_depth[rng.choice(depths)]
        chosen.append(pool.pop(rng.randrange(len(pool))))
    items = [(atom, None) for atom in chosen]

    domain = theory.domain
    conclusions, others = [], []
    for rule in theory.rules:
        for value in (domain if rule.conclusion[0] == VAR else [None]):
            atom = _ground(rule.conclusion, value)
            if atom not in closure.known and atom not in conclusions:
                conclusions.append(atom)
    for subject in domain:
        for key in _keys(theory.kind, domain):
            atom = (subject,) + key
            if key[1] != subject and atom not in closure.known and atom not in conclusions:
                others.append(atom)
    rng.shuffle(conclusions)
    rng.shuffle(others)
    pools = [conclusions, others]
    turn = rng.randint(0, 1)
    while len(items) < n and (conclusions or others):
        pool = pools[turn] if pools[turn] else pools[1 - turn]
        turn = 1 - turn
        atom = pool.pop()
        chain = failure_chain(theory, closure, atom, depth + 1)
        if len(chain) <= depth:
            items.append((atom, chain))
    rng.shuffle(items)
    return [_question(theory, closure, atom, theory.negation and rng.random() < 0.5, chain)
            for atom, chain in items]


def theory_record(theory, closure, depth, index, rng):
    """One line of meta-*.jsonl, with the release's keys in the release's order."""
    facts = [sentence(theory.kind, atom) for atom in theory.facts]
    qs = questions(theory, closure, depth, rng)
    return {
        "id": f"{theory.kind}{'Neg' if theory.negation else 'Noneg'}-CWA-D{depth}-{index}",
        "maxD": depth,
        "NFact": len(theory.facts),
        "NRule": len(theory.rules),
        "theory": " ".join(facts + [r.text for r in theory.rules]),
        "triples": {f"triple{i + 1}": {"text": text, "representation": representation(atom)}
                    for i, (text, atom) in enumerate(zip(facts, theory.facts))},
        "rules": {f"rule{i + 1}": {"text": r.text, "representation": rule_representation(r)}
                  for i, r in enumerate(theory.rules)},
        "questions": {f"Q{i + 1}": q for i, q in enumerate(qs)},
    }


def generate_record(seed, depth, index):
    """Theory `index` of the depth-`depth` set: depends only on (seed, depth, index)."""
    # random.Random hashes a str seed with SHA-512: the same in every process, unlike hash().
    rng = random.Random(f"proofwriter:{seed}:{depth}:{index}")
    theory, closure = random_theory(depth, rng)
    return theory_record(theory, closure, depth, index, rng)


def split_sizes(n_theories):
    """{depth: [(split, count), ...]}: n_theories in total, spread evenly over DEPTHS, then
    70/10/20 train/dev/test within a depth (dev and test at least one theory each)."""
    if n_theories < 3 * len(DEPTHS):
        raise ValueError(f"{n_theories} theories cannot fill train, dev and test of {len(DEPTHS)} depths")
    sizes = {}
    for j, depth in enumerate(DEPTHS):
        n = n_theories // len(DEPTHS) + (j < n_theories % len(DEPTHS))
        dev, test = max(1, round(n * 0.1)), max(1, round(n * 0.2))
        sizes[depth] = [("train", n - dev - test), ("dev", dev), ("test", test)]
    return sizes


def record_stats(records):
    """Counts for the summary table: theories, questions, and questions by kind of proof."""
    qs = [q for r in records for q in r["questions"].values()]
    proved = [q for q in qs if q["QLen"] != ""]
    return {"theories": len(records), "questions": len(qs), "proved": len(proved),
            "NAF": sum("NAF" in q["proofs"] for q in proved),
            "OR": sum(" OR " in q["proofs"] for q in proved),
            "failed": len(qs) - len(proved),
            "max_QDep": max((q["QDep"] for q in qs), default=0)}


def write_release(out_dir, n_theories, seed):
    """Write OUT/CWA/depth-N/meta-{train,dev,test}.jsonl; returns one stats row per depth.

    Everything goes to a temporary folder first and replaces OUT/CWA only once complete, so a
    failed or interrupted run leaves the previous CWA/ (or nothing) and no half-written file.
    """
    rows = []
    with atomic_path(os.path.join(out_dir, "CWA"), folder=True) as tmp:
        for depth, sizes in split_sizes(n_theories).items():
            folder = os.path.join(tmp, f"depth-{depth}")
            os.makedirs(folder)
            index, records = 0, []
            row = {"depth": depth}
            for split, count in sizes:
                lines = []
                for _ in range(count):
                    record = generate_record(seed, depth, index)
                    lines.append(json.dumps(record, separators=(",", ":")) + "\n")
                    records.append(record)
                    index += 1
                with open(os.path.join(folder, f"meta-{split}.jsonl"), "w") as f:
                    f.writelines(lines)
                row[split] = count
            row.update(record_stats(records))
            rows.append(row)
    return rows
