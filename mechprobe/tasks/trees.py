"""Reasoning trees: ProofWriter proof strings parsed into nodes and edges, and height classes.

Edges run from premise to conclusion. Height = length of the longest path from a node to a sink
(the root); tree depth = the largest height; class = tree depth - height, so the leaves of the
deepest branch are class 0 and the root is class tree depth (METHOD.md).

Grammar of ProofWriter's `proofs` field (docs/DATA.md):
    proofs  := "[" "(" proof (" OR " proof)* ")" "]"  |  "[" failure "]"
    proof   := TRIPLE | "(" "(" item (" " item)* ")" " -> " RULE ")"
    item    := TRIPLE | "NAF" | proof
    failure := "@" INT ": " sentence "[CWA. Example of deepest failure = (" chain ")]"
"""

import re
from dataclasses import dataclass, field

TOKEN = re.compile(r"\(|\)|->|OR|NAF|triple\d+|rule\d+|int\d+|\S")


class ProofSyntaxError(ValueError):
    pass


class CycleError(ValueError):
    """A proof that passes through a statement twice (ProofWriter's deeper proofs can apply one
    rule twice): a statement would need two heights, so the tree cannot label it."""


@dataclass
class ParsedProof:
    """One proof: the statement ids it uses, premise -> conclusion edges, and whether NAF occurs."""

    nodes: list = field(default_factory=list)     # ids in order of first appearance
    edges: list = field(default_factory=list)     # (premise id, rule id), no duplicates
    naf: bool = False

    def add_node(self, node):
        if node not in self.nodes:
            self.nodes.append(node)

    def add_edge(self, premise, conclusion):
        if (premise, conclusion) not in self.edges:
            self.edges.append((premise, conclusion))


def parse_proofs(text):
    """A `proofs` string -> list of alternative ParsedProofs; [] for a failure ("[@...]")."""
    text = text.strip()
    if not (text.startswith("[") and text.endswith("]")):
        raise ProofSyntaxError(f"a proofs string starts with '[' and ends with ']': {text[:60]!r}")
    inner = text[1:-1].strip()
    if inner.startswith("@"):
        return []
    tokens = TOKEN.findall(inner)
    if not tokens or tokens[0] != "(" or tokens[-1] != ")":
        raise ProofSyntaxError(f"expected '(proof OR ...)' inside the brackets: {text[:60]!r}")
    parser = _Parser(tokens[1:-1], text)
    proofs = [parser.proof_tree()]
    while parser.peek() == "OR":
        parser.take("OR")
        proofs.append(parser.proof_tree())
    if parser.peek() is not None:
        raise ProofSyntaxError(f"unexpected '{parser.peek()}' in {text[:80]!r}")
    return proofs


class _Parser:
    def __init__(self, tokens, text):
        self.tokens, self.position, self.text = tokens, 0, text

    def peek(self):
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self, expected=None):
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise ProofSyntaxError(f"expected {expected or 'more'} at token {self.position} "
                                   f"of {self.text[:80]!r}, found {token!r}")
        self.position += 1
        return token

    def proof_tree(self):
        proof = ParsedProof()
        self.proof(proof)
        return proof

    def proof(self, proof):
        """Parse one proof into `proof`; returns the id of its conclusion (a triple or a rule)."""
        token = self.peek()
        if token is not None and token.startswith("triple"):
            self.take()
            proof.add_node(token)
            return token
        self.take("(")
        self.take("(")
        premises = []
        while self.peek() != ")":
            premises.append(self.item(proof))
        self.take(")")
        self.take("->")
        rule = self.take()
        if not rule.startswith("rule"):
            raise ProofSyntaxError(f"expected a rule id after '->' in {self.text[:80]!r}, found {rule!r}")
        self.take(")")
        proof.add_node(rule)
        for premise in premises:
            if premise is not None:
                proof.add_edge(premise, rule)
        return rule

    def item(self, proof):
        token = self.peek()
        if token == "NAF":
            self.take()
            proof.naf = True
            return None
        if token is not None and token.startswith("triple"):
            self.take()
            proof.add_node(token)
            return token
        return self.proof(proof)


def heights(nodes, edges):
    """Longest path from each node to a sink; raises CycleError on a cycle."""
    successors = {node: [] for node in nodes}
    for premise, conclusion in edges:
        successors[premise].append(conclusion)
    memo, visiting = {}, set()

    def height(node):
        if node in memo:
            return memo[node]
        if node in visiting:
            raise CycleError(f"the reasoning graph has a cycle through {node}")
        visiting.add(node)
        memo[node] = max((height(s) + 1 for s in successors[node]), default=0)
        visiting.discard(node)
        return memo[node]

    return {node: height(node) for node in nodes}


def depth_classes(nodes, edges):
    """{node: tree depth - height}: leaves of the deepest branch 0, the root tree depth."""
    h = heights(nodes, edges)
    depth = max(h.values(), default=0)
    return {node: depth - value for node, value in h.items()}
