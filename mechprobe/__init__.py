"""MechanisticProbe: does a causal LM's attention carry the reasoning tree of its answer?

The library behind the command-line scripts at the repository root. One module per concept:
`ksmallest` (the k-th smallest task and its reasoning tree), `models` (loading models, devices,
dtypes, the embedded tiny GPT-2), `training` (fine-tuning on last-token targets), `plots`,
`outputs` (atomic files, seeds) and `cli` (argument parsing and one-line errors).
"""

__version__ = "0.1.0"
