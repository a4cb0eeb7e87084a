"""The fine-tuning experiment of Task 1: train a model on minKK and save its best checkpoint."""

import os
import platform
from dataclasses import asdict, dataclass, fields, replace

import torch
from transformers import set_seed

from mechprobe.tasks import ksmallest
from mechprobe.cli import UserError, format_table
from mechprobe.models import check_fits, load_pretrained, resolve_device, resolve_dtype
from mechprobe.tiny_models import TinyConfig, build_tiny
from mechprobe.outputs import atomic_path, discard, make_dirs, write_json
from mechprobe.plots import line_plot, save_figure
from mechprobe.training.loop import CHECKPOINT_FILES, Settings, evaluate, finetune, select_trainable

# Validations are at least this many steps apart (or once, at the end, in shorter runs): a smoke
# run of a few steps should be spent training, not validating at every step.
MIN_EVAL_EVERY = 10
# The default k-th smallest validation sample (n_train/98, 10,000 for the paper's run) is cut to
# the examples trained on between two validations, but never below this: validation then costs
# no more than the training it follows. The documented runs train on more than they validate, so
# their validation sets are whole.
MIN_VAL_SAMPLE = 2000

# Defaults that differ between the tiny model trained from scratch and a pretrained GPT-2.
# The pretrained column is the paper's setting (METHOD.md, Task 1).
DEFAULTS = {
    "tiny": {"lr": 1e-3, "batch_size": 128, "n_train": 245_000, "epochs": 2, "warmup": 200,
             "schedule": "linear"},
    "pretrained": {"lr": 2e-5, "batch_size": 128, "n_train": 980_000, "epochs": 2, "warmup": 500,
                   "schedule": "constant"},
}


@dataclass
class TrainConfig:
    """What finetune_gpt2.py trains (k-th smallest or ProofWriter) and how; unset (None) fields
    take the defaults of the tiny or the pretrained setting (DEFAULTS)."""

    out: str                           # the run's folder: model/, results.json, checkpoint/
    task: str = "min01"                # minKK or proofwriter
    model: str = "tiny"                # tiny (built here) or a hub id / folder
    data: str | None = None            # proofwriter: the release folder
    max_qdep: int = 1                  # proofwriter: questions of at most this depth
    tune: str = "all"                  # which parameters train: all, attn, mlp, ln
    list_len: int = 16
    num_set: int = 512
    n_train: int | None = None
    n_eval: int | None = None
    epochs: int | None = None
    steps: int | None = None
    lr: float | None = None
    warmup: int | None = None
    schedule: str | None = None        # constant or linear after warm-up
    lm_weight: float | None = None     # proofwriter: next-token loss on the prompt
    curriculum: float | None = None    # proofwriter: share of steps on short theories first
    eval_every: int | None = None
    restart: bool = False              # discard an interrupted run's checkpoint
    tiny_layers: int | None = None
    tiny_heads: int | None = None
    tiny_dim: int | None = None
    stop_after: int | None = None      # end after N steps as if interrupted (resume tests)
    seed: int = 0
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int | None = None

    @classmethod
    def from_args(cls, config):
        return cls(**{f.name: getattr(config, f.name) for f in fields(cls) if hasattr(config, f.name)})


def prepare(config):
    """Everything that can fail on bad input, before any output is written."""
    task = ksmallest.parse_task(config.task, config.list_len, config.num_set)
    device = resolve_device(config.device)
    amp_dtype = resolve_dtype(config.dtype, device)
    set_seed(config.seed)
    if config.model == "tiny":
        tiny = TinyConfig(config.tiny_layers or TinyConfig.n_layer, config.tiny_heads or TinyConfig.n_head,
                          config.tiny_dim or TinyConfig.n_embd)
        model, tokenizer = build_tiny(range(task.num_set), tiny, seed=config.seed)
    else:
        model, tokenizer = load_pretrained(config.model)
    numbers = ksmallest.number_set(tokenizer, task.num_set)
    check_fits(model, len(numbers.prefix) + task.list_len)
    n_eval = config.n_eval or max(1, config.n_train // 98)
    splits = ksmallest.make_splits(task, config.n_train, n_eval, config.seed)
    settings = make_settings(config, config.n_train, amp_dtype)
    if not config.n_eval:     # the test split stays whole; an explicit --n-eval is kept as given
        splits.val = splits.val[:validation_size(settings)]
    return task, device, model, tokenizer, numbers, splits, settings


def save_model(model, tokenizer, out, task_info):
    """OUT/model: the weights, tokenizer and task.json, swapped in only once complete."""
    with atomic_path(os.path.join(out, "model"), folder=True) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json(os.path.join(tmp, ksmallest.TASK_FILE), task_info)


def save_curves(outcome, out, title):
    """OUT/loss.{png,pdf} and OUT/accuracy.{png,pdf} from the validation history."""
    steps = [row["step"] for row in outcome.history]
    save_figure(line_plot({"train": (steps, [r["train_loss"] for r in outcome.history]),
                           "validation": (steps, [r["val_loss"] for r in outcome.history])},
                          "step", "cross-entropy", f"{title}: loss"), out, "loss")
    save_figure(line_plot({"validation": (steps, [r["val_accuracy"] for r in outcome.history])},
                          "step", "accuracy", f"{title}: validation accuracy"), out, "accuracy")


def make_settings(config, n_train, amp_dtype):
    """Steps, warm-up and validation interval from the arguments (defaults already filled in)."""
    steps = config.steps or config.epochs * -(-n_train // config.batch_size)
    if steps < 1:
        raise UserError(f"--steps {steps} must be at least 1")
    return Settings(lr=config.lr, batch_size=config.batch_size, steps=steps,
                    warmup=min(config.warmup, steps // 10), seed=config.seed, schedule=config.schedule,
                    eval_every=config.eval_every or max(min(steps, MIN_EVAL_EVERY), steps // 20),
                    amp_dtype=amp_dtype,
                    lm_weight=config.lm_weight or 0.0)


def validation_size(settings):
    """The most validation examples worth running at each validation (see MIN_VAL_SAMPLE)."""
    return max(MIN_VAL_SAMPLE, settings.eval_every * settings.batch_size)


def with_defaults(config, defaults):
    """The config with `defaults[model kind]` where the user left a field unset (a new one: the
    caller's config is not changed)."""
    chosen = defaults["tiny" if config.model == "tiny" else "pretrained"]
    return replace(config, **{name: value for name, value in chosen.items()
                              if getattr(config, name, None) is None})


def train(model, data, settings, config, fingerprint, curriculum=(), candidates=None):
    """Fine-tune with resume in OUT/checkpoint; returns the Outcome with the best weights loaded.
    `candidates`: the answer token ids validation accuracy chooses among (None: whole vocabulary)."""
    checkpoint_dir = os.path.join(config.out, "checkpoint")
    make_dirs(config.out)
    if config.restart:
        discard(checkpoint_dir, CHECKPOINT_FILES)
    outcome, best_state = finetune(model, data["train"], data["val"], settings, checkpoint_dir,
                                   fingerprint, stop_after=config.stop_after, curriculum=curriculum,
                                   candidates=candidates)
    model.load_state_dict(best_state)
    return outcome


def run_summary(settings, outcome):
    """results.json fields every fine-tuning run shares."""
    return {"batch_size": settings.batch_size, "lr": settings.lr, "warmup": settings.warmup,
            "schedule": settings.schedule, "lm_weight": settings.lm_weight,
            "steps": outcome.steps, "best_step": outcome.best_step,
            "best_val_accuracy": outcome.best_val_accuracy,
            "train_seconds": round(outcome.train_seconds, 2),
            "resumed_from_step": outcome.resumed_from, "history": outcome.history,
            "versions": {"python": platform.python_version(), "torch": torch.__version__}}


def tensors(task, numbers, indices):
    inputs = torch.from_numpy(numbers.encode(indices))
    targets = torch.from_numpy(numbers.later_ids[ksmallest.answers(task, indices)])
    return inputs, targets


def run(config):
    config = with_defaults(config, DEFAULTS)
    task, device, model, tokenizer, numbers, splits, settings = prepare(config)
    trained = select_trainable(model, config.tune)
    model.to(device)
    data = {name: tensors(task, numbers, getattr(splits, name)) for name in ("train", "val", "test")}

    out = config.out
    fingerprint = {**task.to_json(), **{k: v for k, v in asdict(settings).items() if k != "amp_dtype"},
                   "amp_dtype": str(settings.amp_dtype), "model": config.model, "tune": config.tune,
                   "n_train": len(splits.train), "n_eval": len(splits.val),
                   "tiny": [config.tiny_layers, config.tiny_heads, config.tiny_dim]}
    outcome = train(model, data, settings, config, fingerprint)
    test_accuracy, test_loss = evaluate(model, data["test"], settings.batch_size, settings.amp_dtype)

    save_model(model, tokenizer, out, {**task.to_json(), "numbers": numbers.numbers.tolist()})
    save_curves(outcome, out, task.name)
    results = {
        **task.to_json(), "model": config.model, "tune": config.tune, "trained_parameters": len(trained),
        "seed": config.seed, "device": str(device), "amp_dtype": str(settings.amp_dtype),
        "n_train": len(splits.train), "n_val": len(splits.val), "n_test": len(splits.test),
        "test_accuracy": test_accuracy, "test_loss": test_loss, **run_summary(settings, outcome),
    }
    write_json(os.path.join(out, "results.json"), results)
    discard(os.path.join(out, "checkpoint"), CHECKPOINT_FILES)

    print()
    print(format_table([{"task": task.name, "model": config.model, "tune": config.tune,
                         "steps": outcome.steps, "best_step": outcome.best_step,
                         "best_val_acc": outcome.best_val_accuracy, "test_acc": test_accuracy,
                         "train_s": round(outcome.train_seconds, 1)}],
                       ["task", "model", "tune", "steps", "best_step", "best_val_acc", "test_acc",
                        "train_s"]))
    print(f"model: {os.path.join(out, 'model')}   results: {os.path.join(out, 'results.json')}")
    return results
