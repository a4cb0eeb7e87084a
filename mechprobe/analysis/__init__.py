"""Analyses beyond probing: attention maps, causal head pruning, robustness."""
