"""Probing: the kNN probes, the one run over a model and its random twin (run.py) with each task's part, the result, its intervals and report."""
