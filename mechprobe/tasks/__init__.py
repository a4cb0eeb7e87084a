"""Tasks: the task contract and registry, the data, reasoning trees and prompts of the k-th smallest task, ProofWriter, ARC and a jsonl file."""
