"""Fine-tuning a causal LM on last-token targets, with periodic validation, best-checkpoint
selection and exact resume after an interruption.

Data order is a function of (seed, step) alone and the dropout RNG is checkpointed, so a resumed
run takes the same steps as an uninterrupted one and ends with the same numbers.
"""

import os
import re
import time
from dataclasses import asdict, dataclass, field
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from mechprobe.cli import UserError
from mechprobe.outputs import load_torch, make_dirs, save_torch
from mechprobe.models import input_device

# Which parameters each --tune choice trains, by dotted-name component (GPT-2 and LLaMA-style).
TUNE_PATTERNS = {
    "attn": re.compile(r"(^|\.)(attn|self_attn|attention)\."),
    "mlp": re.compile(r"(^|\.)(mlp|feed_forward)\."),
    "ln": re.compile(r"(^|\.)(ln_\w+|\w*norm\w*)\."),
}
TUNE_CHOICES = ["all", *TUNE_PATTERNS]


def select_trainable(model, tune):
    """Freeze every parameter outside the --tune group; returns the trained parameter names."""
    names = []
    for name, param in model.named_parameters():
        param.requires_grad = tune == "all" or bool(TUNE_PATTERNS[tune].search(name))
        if param.requires_grad:
            names.append(name)
    if not names:
        raise UserError(f"--tune {tune} matches no parameter of this model: use --tune all")
    return names


@dataclass
class Settings:
    lr: float
    batch_size: int
    steps: int
    warmup: int
    eval_every: int
    seed: int
    schedule: str = "constant"  # after warm-up: "constant" (the paper) or "linear" decay to 0
    weight_decay: float = 1e-3
    amp_dtype: torch.dtype = torch.float32  # bf16/fp16 autocast on top of fp32 master weights
    # Weight of an auxiliary next-token loss on the prompt's own tokens (0 = answer loss only).
    # A model trained from scratch on ProofWriter learns to look facts up much sooner with it:
    # predicting the question's words rewards the copying heads that the lookup needs.
    lm_weight: float = 0.0


@dataclass
class Outcome:
    history: list = field(default_factory=list)  # one row per validation
    best_step: int = -1
    best_val_accuracy: float = -1.0
    train_seconds: float = 0.0
    steps: int = 0
    resumed_from: int | None = None


# Not transformers.get_scheduler: its warm-up factor is step/warmup, starting from a step at lr 0,
# where ours is (step + 1)/warmup; the same schedule would change every run's numbers.
def lr_factor(settings, step):
    """Linear warm-up, then constant (the paper) or a linear decay that reaches 0 at the end."""
    if step < settings.warmup:
        return (step + 1) / settings.warmup
    if settings.schedule == "linear":
        return max(0.0, (settings.steps - step) / max(1, settings.steps - settings.warmup))
    return 1.0


def padded_hidden(model, input_ids, lengths):
    """Final hidden states of right-padded rows, the batch cut to its longest row:
    (ids, boolean mask of real tokens, hidden states)."""
    width = int(lengths.max())
    ids = input_ids[:, :width]
    mask = torch.arange(width, device=ids.device)[None] < lengths[:, None]
    hidden = model.base_model(input_ids=ids, attention_mask=mask.long()).last_hidden_state
    return ids, mask, hidden


def last_logits(model, input_ids, lengths=None):
    """Logits at each row's last token, and only there (spares the full-vocabulary projection).

    With `lengths` the rows are right-padded: padding is masked, and each row's logits are taken
    at its own last real token.
    """
    if lengths is None:
        return model(input_ids=input_ids, logits_to_keep=1).logits[:, -1].float()
    ids, _, hidden = padded_hidden(model, input_ids, lengths)
    last = hidden[torch.arange(len(ids), device=ids.device), lengths - 1]
    return model.get_output_embeddings()(last).float()


def training_loss(model, x, y, lengths, lm_weight):
    """Cross-entropy of the answer at each row's last token, plus lm_weight times the next-token
    loss on the prompt's own tokens."""
    if not lm_weight:
        return F.cross_entropy(last_logits(model, x, lengths), y)
    if lengths is None:
        lengths = torch.full((len(x),), x.shape[1], device=x.device)
    ids, _, hidden = padded_hidden(model, x, lengths)
    head = model.get_output_embeddings()
    last = lengths - 1
    loss = F.cross_entropy(head(hidden[torch.arange(len(ids), device=ids.device), last]).float(), y)
    keep = torch.arange(ids.shape[1] - 1, device=ids.device)[None] < last[:, None]
    if bool(keep.any()):
        loss = loss + lm_weight * F.cross_entropy(head(hidden[:, :-1][keep]).float(), ids[:, 1:][keep])
    return loss


def autocast(device, dtype):
    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)


@torch.inference_mode()
def predict(model, data, batch_size, amp_dtype=torch.float32, candidates=None):
    """(n,) 0/1 correctness and (n,) loss of next-token prediction at each row's last token.

    `data` is (inputs, targets) or, for right-padded rows, (inputs, targets, lengths); padded
    rows are run shortest first so that a batch carries little padding. With `candidates` (token
    ids) the prediction is the candidate with the highest logit, as the probe scores ProofWriter;
    else the top token of the whole vocabulary.
    """
    inputs, targets, *rest = data
    lengths = rest[0] if rest else None
    order = torch.argsort(lengths, stable=True) if lengths is not None else torch.arange(len(inputs))
    device = input_device(model)
    was_training = model.training
    model.eval()
    correct, losses = torch.zeros(len(inputs)), torch.zeros(len(inputs))
    if candidates is not None:
        candidates = torch.as_tensor(list(candidates), device=device)
    for start in range(0, len(inputs), batch_size):
        idx = order[start:start + batch_size]
        y = targets[idx].to(device)
        with autocast(device, amp_dtype):
            logits = last_logits(model, inputs[idx].to(device),
                                 None if lengths is None else lengths[idx].to(device))
        losses[idx] = F.cross_entropy(logits, y, reduction="none").cpu()
        predicted = (logits.argmax(-1) if candidates is None
                     else candidates[logits[:, candidates].argmax(-1)])
        correct[idx] = (predicted == y).float().cpu()
    model.train(was_training)
    return correct.numpy(), losses.numpy()


def evaluate(model, data, batch_size, amp_dtype=torch.float32, candidates=None):
    """(accuracy, mean loss) of next-token prediction at the last token (see predict)."""
    correct, losses = predict(model, data, batch_size, amp_dtype, candidates)
    return float(correct.mean()), float(losses.mean())


def batch_indices(n_train, batch_size, seed, step, lengths=None):
    """Example indices of one step: a fresh permutation per epoch, fixed by (seed, epoch).

    With `lengths` (variable-length rows) each run of 50 batches of the permutation is sorted by
    length before it is cut into batches, and the batches of the epoch are shuffled: batches of
    similar lengths carry little padding, and the order is still random and reproducible.
    """
    per_epoch = -(-n_train // batch_size)
    epoch, position = divmod(step, per_epoch)
    rng = np.random.default_rng([*np.atleast_1d(seed), epoch])
    order = rng.permutation(n_train)
    if lengths is not None:
        pool = 50 * batch_size
        order = np.concatenate([chunk[np.argsort(lengths[chunk], kind="stable")]
                                for chunk in np.split(order, range(pool, n_train, pool))])
        position = rng.permutation(per_epoch)[position]
    return order[position * batch_size:(position + 1) * batch_size]


def step_indices(n_train, batch_size, seed, step, lengths=None, curriculum=()):
    """Example indices of one step. `curriculum` is a list of (end_step, pool of indices): until
    a phase's end_step, batches come from its pool only (a random order of its own per phase);
    after the last phase, from the whole training set. A function of the step alone, so a
    resumed run sees the same batches."""
    begin = 0
    for phase, (end, pool) in enumerate(curriculum):
        if step < end:
            pool = np.asarray(pool)
            local = batch_indices(len(pool), batch_size, [seed, 100 + phase], step - begin,
                                  None if lengths is None else lengths[pool])
            return pool[local]
        begin = end
    return batch_indices(n_train, batch_size, seed, step, lengths)


CHECKPOINT_FILES = ("state.pt", "best.pt")   # what a run keeps in its checkpoint folder


def finetune(model, train, val, settings, checkpoint_dir, fingerprint, stop_after=None,
             curriculum=(), candidates=None):
    """Train `model` in place on (inputs, targets) tensors, or (inputs, targets, lengths) for
    right-padded rows of different lengths; returns the Outcome and the best weights.
    `curriculum`: easier subsets first, see step_indices. `candidates`: answer token ids that
    validation accuracy (and so the best checkpoint) chooses among, see predict.

    Checkpoints go to checkpoint_dir at every validation. A checkpoint from an earlier run with
    the same fingerprint (the settings that determine the result) is resumed; one with another
    fingerprint is an error, so two different runs never mix. `stop_after` ends this call after
    that many steps as if interrupted (for chunked runs and the resume test).
    """
    device = input_device(model)
    train_x, train_y, *rest = train
    train_lengths = rest[0] if rest else None
    numpy_lengths = None if train_lengths is None else train_lengths.numpy()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, partial(lr_factor, settings))
    scaler = torch.amp.GradScaler(device.type, enabled=settings.amp_dtype == torch.float16)
    outcome = Outcome()
    state_path, best_path = (os.path.join(checkpoint_dir, name) for name in CHECKPOINT_FILES)

    start = 0
    if os.path.isfile(state_path):
        # weights_only: a checkpoint holds tensors and plain types only, so loading one found in
        # a folder never runs code (a pickle could).
        state = load_torch(state_path, device, "training checkpoint")
        if not isinstance(state, dict) or state.get("fingerprint") != fingerprint:
            raise UserError(f"{checkpoint_dir} holds an interrupted run with other settings: rerun "
                            "with the same arguments to resume, pass --restart to discard it, "
                            "or choose another --out")
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            torch.set_rng_state(state["rng"])
            if state.get("cuda_rng") is not None and device.type == "cuda":
                torch.cuda.set_rng_state(state["cuda_rng"], device)
            outcome = Outcome(**state["outcome"])
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise UserError(f"{state_path} is damaged ({type(err).__name__}): rerun with --restart "
                            "to discard it") from None
        start = outcome.resumed_from = state["step"]

    def save_checkpoint(step):
        save_torch(state_path, {
            "fingerprint": fingerprint, "step": step, "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(), "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            "outcome": asdict(outcome)})

    model.train()
    interval_losses = []
    clock = time.perf_counter()
    bar = tqdm(range(start, settings.steps), desc="fine-tuning", initial=start,
               total=settings.steps, dynamic_ncols=True)
    for step in bar:
        idx = torch.from_numpy(step_indices(len(train_x), settings.batch_size, settings.seed, step,
                                            numpy_lengths, curriculum))
        x, y = train_x[idx].to(device), train_y[idx].to(device)
        lengths = None if train_lengths is None else train_lengths[idx].to(device)
        with autocast(device, settings.amp_dtype):
            loss = training_loss(model, x, y, lengths, settings.lm_weight)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        interval_losses.append(loss.item())

        done = step + 1
        if done % settings.eval_every == 0 or done == settings.steps:
            # Made at the first save: a run stopped before it leaves no empty checkpoint/ behind.
            make_dirs(checkpoint_dir)
            val_acc, val_loss = evaluate(model, val, settings.batch_size, settings.amp_dtype,
                                         candidates)
            outcome.train_seconds += time.perf_counter() - clock
            outcome.steps = done
            outcome.history.append({"step": done, "train_loss": float(np.mean(interval_losses)),
                                    "val_loss": val_loss, "val_accuracy": val_acc})
            interval_losses = []
            if val_acc > outcome.best_val_accuracy:
                outcome.best_val_accuracy, outcome.best_step = val_acc, done
                save_torch(best_path, model.state_dict())
            save_checkpoint(done)
            bar.set_postfix(loss=f"{outcome.history[-1]['train_loss']:.3f}", val_acc=f"{val_acc:.3f}")
            clock = time.perf_counter()
        if stop_after is not None and done - start >= stop_after and done < settings.steps:
            bar.close()
            raise KeyboardInterrupt
    bar.close()
    best_state = load_torch(best_path, device, "training checkpoint")
    return outcome, best_state
