"""The recorder for a notebook: attention of chosen query rows from ordinary forward passes.

    import mechprobe
    with mechprobe.record(model, rows=-1) as attention:      # the last position's attention
        logits = model(**tokenizer(texts, return_tensors="pt", padding=True)).logits
    attention[5]          # layer 5: (batch, 1, N) float32, averaged over heads
    attention.layers      # the layers recorded

Inside the block every forward pass of `model` runs as usual (sdpa, same output) and keeps, per
layer, the attention of the query rows asked for over every key, never the N x N matrices that
`output_attentions=True` builds. `rows`: one position or a list (negative counts from the end of
the padded input, so pad on the left, as for generation), or a (batch, R) tensor of positions per
example. A key/value cache (`past_key_values`) works: positions then count from the cache's first
token. On leaving the block the model gets its own attention implementation back.
"""

from contextlib import contextmanager

import torch

from mechprobe.attention.recorder import _ACTIVE, Capture, Recorder
from mechprobe.cli import ConfigError


class Recorded(dict):
    """{layer: (batch, R, N), or (batch, heads, R, N) with per_head} of the last forward pass."""

    @property
    def layers(self):
        return sorted(self)


def whole_number(value):
    """An int, not a bool: Python counts True as 1, but rows=True or layers=[True] is a mistake."""
    return isinstance(value, int) and not isinstance(value, bool)


def row_positions(rows):
    """A function (batch, n_keys, device) -> (batch, R) positions, for Capture.rows."""
    if isinstance(rows, torch.Tensor):
        whole = not (rows.is_floating_point() or rows.is_complex() or rows.dtype == torch.bool)
        if rows.ndim != 2 or not whole:
            raise ConfigError(f"rows as a tensor must be (batch, R) whole-number positions, got "
                              f"shape {tuple(rows.shape)} of {rows.dtype}")
        given = rows.long()
        return lambda batch, n_keys, device: torch.where(given < 0, given + n_keys, given).to(device)
    positions = ([rows] if whole_number(rows) else list(rows) if isinstance(rows, (list, tuple))
                 else None)
    if not positions or not all(whole_number(p) for p in positions):
        raise ConfigError(f"rows must be a position (an int, negative from the end), a non-empty "
                          f"list of them or a (batch, R) tensor of positions, got {rows!r}")

    def resolve(batch, n_keys, device):
        resolved = torch.tensor([p + n_keys if p < 0 else p for p in positions], device=device)
        if (resolved < 0).any() or (resolved >= n_keys).any():
            raise ValueError(f"rows {positions} fall outside the {n_keys} positions of this input")
        return resolved.expand(batch, -1)

    return resolve


@contextmanager
def record(model, rows=-1, layers=None, per_head=False):
    """Record the attention of query `rows` at `layers` (default all) during the forward passes
    run inside the block; yields a Recorded dict filled by each pass (the last one's rows)."""
    config = getattr(model, "config", None)
    if not (isinstance(model, torch.nn.Module) and hasattr(config, "get_text_config")):
        raise ConfigError(f"record needs a transformers model (a PreTrainedModel with a config, "
                          f"e.g. from AutoModelForCausalLM.from_pretrained), got "
                          f"{type(model).__name__}")
    n_layers = config.get_text_config().num_hidden_layers
    if layers is not None:
        listed = isinstance(layers, (list, tuple, range, set, frozenset))
        given = list(layers) if listed else []
        # An index past the model would record nothing, silently.
        if not given or not all(whole_number(n) and 0 <= n < n_layers for n in given):
            raise ConfigError(f"layers must be a non-empty list of layer indices, and "
                              f"{type(model).__name__} has layers 0-{n_layers - 1} (0-based), "
                              f"got {layers!r}")
    capture = Capture(rows=row_positions(rows), layers=None if layers is None else frozenset(layers),
                      per_head=per_head, head_mask=None)   # checked before the model is touched
    before = getattr(model.config, "_attn_implementation", None)
    recorder = Recorder(model)
    recorded = Recorded()

    def new_pass(module, args, kwargs):
        # Layer indices of modules that carry none are counted per pass.
        capture.calls = 0
        capture.recorded = recorded
        recorded.clear()

    handles = [model.register_forward_pre_hook(new_pass, with_kwargs=True)]
    if recorder.mode == "hook":
        handles += recorder._install_hooks(capture)
    token = _ACTIVE.set(capture)
    try:
        yield recorded
    finally:
        _ACTIVE.reset(token)
        for handle in handles:
            handle.remove()
        if before is not None:
            model.set_attn_implementation(before)
    missing = sorted(set(range(n_layers) if layers is None else layers)
                     - set(recorded))
    if recorded and missing:
        raise RuntimeError(f"attention of layers {missing} was not recorded: "
                           f"{type(model).__name__}'s attention bypassed the recorder")
