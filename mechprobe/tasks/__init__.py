"""Tasks: the data, reasoning trees and prompts of k-th smallest, ProofWriter, ARC."""
