"""The library from a notebook or a script: load a model, probe it on a task's questions or on
your own, look at the result, save it. The command-line scripts call the same functions.

    import mechprobe
    model, tokenizer = mechprobe.load_model("runs/tiny-min01/model")
    result = mechprobe.probe(model, tokenizer, rows, mechprobe.RunConfig(folds=5))
    result.summary()          # one row per setting: accuracy, F1s, S_P1, S_P2, best layers
    result.layerwise()        # per layer, single and cumulative
    result.save("runs/my-probe")

Every probe function takes the loaded model and tokenizer; a RunConfig's device, dtype and
device_map say how load_model placed the model, so one that disagrees with the model is refused.
"""

from dataclasses import replace

from mechprobe.attention.record import record
from mechprobe.cli import ConfigError, require
from mechprobe.models import input_device, load_model, resolve_device, resolve_dtype
from mechprobe.probing.config import KSmallestConfig, ReadConfig, RunConfig, TextConfig
from mechprobe.probing.ksmallest import KSmallestPart
from mechprobe.probing.result import ProbeResult
from mechprobe.probing.run import probe_model
from mechprobe.probing.text import TextPart, load_questions
from mechprobe.tasks.base import Question, TextTask, register
from mechprobe.tasks.jsonl import JsonlTask, from_rows

__all__ = ["ConfigError", "KSmallestConfig", "ProbeResult", "Question", "ReadConfig", "RunConfig",
           "TextConfig", "TextTask", "load_model", "load_questions", "probe", "probe_ksmallest",
           "probe_task", "record", "register"]


def run_for_model(model, run):
    """`run` for this model: its device, dtype (unless auto) and device_map must be how the
    model was loaded, and an unnamed model is recorded by its folder or hub id."""
    run = run or RunConfig()
    if run.device != "auto":
        wanted, there = resolve_device(run.device), input_device(model)
        require(wanted.type == there.type and wanted.index in (None, there.index),
                f"RunConfig.device is {run.device} but the model is on {there}: move the model, "
                "or leave device at auto")
    if run.dtype != "auto":
        require(resolve_dtype(run.dtype, input_device(model)) == model.dtype,
                f"RunConfig.dtype is {run.dtype} but the model is {model.dtype}: convert the "
                "model, or leave dtype at auto")
    require(run.device_map is None or getattr(model, "hf_device_map", None),
            f"RunConfig.device_map is {run.device_map} but the model sits on one device: load it "
            "with load_model(name, placement=run.placement())")
    return run if run.model else replace(run, model=model.name_or_path)


def probe(model, tokenizer, rows, run=None, icl=0, shots=None, n_examples=1024):
    """Probe `model` and its random twin on your own questions: `rows` are dicts in the jsonl
    task's schema (mechprobe/tasks/jsonl.py: statements, question, useful, depth; optional
    answer/choices, group, bucket, id). With `icl`, that many shots per prompt are drawn from
    `shots` (rows of the same schema; default: the other rows). Returns a ProbeResult."""
    require(isinstance(rows, (list, tuple)) and all(isinstance(r, dict) for r in rows),
            "rows must be a list of dicts in the jsonl schema (statements, question, useful, "
            f"depth; docs/DATA.md), got {type(rows).__name__}")
    require(shots is None or isinstance(shots, (list, tuple)), "shots must be a list of dicts "
            f"or None, got {type(shots).__name__}")
    config = TextConfig(task="jsonl", data="rows", icl=icl, n_examples=n_examples)
    run = run_for_model(model, run)
    task = JsonlTask(config)
    records = from_rows(enumerate(rows, 1), "rows", task)
    train = from_rows(enumerate(shots, 1), "shots") if shots else records
    return probe_model(model, tokenizer, TextPart(config, records, task, train if icl else []),
                       run)


def probe_task(model, tokenizer, config, run=None):
    """Probe on a text task (a TextConfig names the task, data, split, shots): ProofWriter, ARC,
    a jsonl file, or a task you registered (mechprobe.register)."""
    return probe_model(model, tokenizer, TextPart(config), run_for_model(model, run))


def probe_ksmallest(model, tokenizer, config=None, run=None):
    """Probe `model` on the k-th smallest task (KSmallestConfig: k, or all_k for every k; unset
    fields from the task.json in the model's folder, model.name_or_path)."""
    return probe_model(model, tokenizer, KSmallestPart(config or KSmallestConfig()),
                       run_for_model(model, run))
