"""MechanisticProbe: does a causal LM's attention carry the reasoning tree of its answer?

The library behind the command-line scripts at the repository root, one concept per module:

- `tasks/`: the k-th smallest task, ProofWriter and ARC (loaders, generator, reasoning trees,
  input-only answerers);
- `attention/`: recording attention rows during a forward pass, per-statement features;
- `probing/`: the kNN probes, the pipeline over a model and its random twin, the task runners;
- `training/`: the fine-tuning loop and the k-th smallest and ProofWriter set-ups;
- `analysis/`: attention maps, causal head pruning, robustness;
- `models`, `pretrained` (loading and converting models), `outputs` (safe files and folders),
  `cli` (flags and one-line errors), `plots`, `jsonfiles`.
"""

__version__ = "0.2.0"
