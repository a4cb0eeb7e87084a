"""Probing: kNN probes, the pipeline over a model and its random twin, the task runners."""
