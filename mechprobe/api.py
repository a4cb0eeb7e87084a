"""The library from a notebook or a script: load a model, probe it on a task's questions or on
your own, look at the result, save it. The command-line scripts call the same functions.

    import mechprobe
    model, tokenizer, _ = mechprobe.load_model("runs/tiny-min01/model")
    result = mechprobe.probe(model, tokenizer, rows, mechprobe.RunConfig(folds=5))
    result.summary()          # one row per setting: accuracy, F1s, S_P1, S_P2, best layers
    result.layerwise()        # per layer, single and cumulative
    mechprobe.save(result, "runs/my-probe")
"""

from dataclasses import replace

from mechprobe.attention.record import record
from mechprobe.cli import ConfigError, require
from mechprobe.outputs import output_dir
from mechprobe.probing.ksmallest import KSmallestConfig, load_task_model, probe_numbers
from mechprobe.probing.pipeline import ProbeResult, ReadConfig, RunConfig, load_model
from mechprobe.probing.text import TextConfig, load_questions, probe_questions
from mechprobe.tasks.jsonl import JsonlTask, from_rows

__all__ = ["ConfigError", "KSmallestConfig", "record", "ProbeResult", "ReadConfig", "RunConfig", "TextConfig", "load_model",
           "load_questions", "probe", "probe_ksmallest", "probe_task", "save"]


def probe(model, tokenizer, rows, run=None, icl=0, shots=None, n_examples=1024):
    """Probe `model` and its random twin on your own questions: `rows` are dicts in the jsonl
    task's schema (mechprobe/tasks/jsonl.py: statements, question, useful, depth; optional
    answer/choices, group, bucket, id). With `icl`, that many shots per prompt are drawn from
    `shots` (rows of the same schema; default: the other rows). Returns a ProbeResult."""
    run = run or RunConfig()
    require(isinstance(rows, (list, tuple)) and all(isinstance(r, dict) for r in rows),
            "rows must be a list of dicts in the jsonl schema (statements, question, useful, "
            f"depth; docs/DATA.md), got {type(rows).__name__}")
    require(shots is None or isinstance(shots, (list, tuple)), "shots must be a list of dicts "
            f"or None, got {type(shots).__name__}")
    config = TextConfig(task="jsonl", data="rows", icl=icl, n_examples=n_examples)
    task = JsonlTask("rows")
    records = from_rows(enumerate(rows, 1), "rows", task)
    train = from_rows(enumerate(shots, 1), "shots") if shots else records
    return probe_questions(model, tokenizer, records, run, config, task, train if icl else ())


def probe_task(model, tokenizer, config, run=None):
    """Probe on ProofWriter or ARC (a TextConfig names the task, data folder, split, shots)."""
    run = run or RunConfig()
    data, questions = load_questions(config)
    train = data.load(config.data, "train") if config.icl else ()
    return probe_questions(model, tokenizer, questions, run, config, data, train)


def probe_ksmallest(name, config=None, run=None):
    """Load the model `name` and probe it on the k-th smallest task (KSmallestConfig: k, or
    all_k for every k; unset fields from the model's task.json)."""
    config = config or KSmallestConfig()
    run = replace(run, model=name) if run else RunConfig(model=name)
    model, tokenizer, task, numbers = load_task_model(run, config, multi_token=True)
    return probe_numbers(model, tokenizer, task, numbers, run, config)


def save(result, out, force=False):
    """OUT/results.json and the layer-wise figures, with the command line's safety: a folder of
    files this tool did not write is refused unless force, nothing is left half-written."""
    with output_dir(out, force, flag="out", command="probe.py"):
        return result.save(out)
