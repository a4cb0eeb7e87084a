"""MechanisticProbe: does a causal LM's attention carry the reasoning tree of its answer?

The library behind the command-line scripts at the repository root, one concept per module:

- `tasks/`: the task contract and registry (base, registry), the k-th smallest task, ProofWriter,
  ARC and jsonl files (loaders, generator, reasoning trees, prompts, input-only answerers);
- `attention/`: recording attention rows during a forward pass, per-statement features;
- `probing/`: the part protocol every analysis reads a task through (part, parts; ksmallest,
  text), the probes (kNN, logistic, any scikit-learn classifier) and their cross-validation,
  the one run over a model and its random twin (run), configs, the result, intervals and report;
- `training/`: the fine-tuning loop and the k-th smallest and ProofWriter set-ups;
- `analysis/`: attention maps, causal head pruning, knockout, robustness, runs compared;
- `api`: load a model and probe it from a notebook (the result saves itself);
- `models` (loading, placing, the random twin), `tiny_models`, `pretrained` (SmolLM2
  conversion), `baselines` (the near-chance check), `outputs` (safe files and folders), `cli`
  and `flags` (one-line errors, shared flags), `plots`, `jsonfiles`, `memory`, `seeds`.
"""

__version__ = "0.2.0"

# The notebook API (mechprobe/api.py), imported on first use: the data generators import this
# package too and should start without loading torch.
_API = {"ConfigError", "KSmallestConfig", "ProbeResult", "Question", "ReadConfig", "RunConfig",
        "TextConfig", "TextTask", "load_model", "load_questions", "probe", "probe_ksmallest",
        "probe_task", "record", "register"}


def __getattr__(name):
    if name in _API:
        from mechprobe import api

        return getattr(api, name)
    raise AttributeError(f"module 'mechprobe' has no attribute '{name}'")
