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


class Recorded(dict):
    """{layer: (batch, R, N), or (batch, heads, R, N) with per_head} of the last forward pass."""

    @property
    def layers(self):
        return sorted(self)


def row_positions(rows):
    """A function (batch, n_keys, device) -> (batch, R) positions, for Capture.rows."""
    if isinstance(rows, torch.Tensor):
        given = rows.long()
        if given.ndim != 2:
            raise ValueError(f"rows as a tensor must be (batch, R) positions, got shape "
                             f"{tuple(given.shape)}")
        return lambda batch, n_keys, device: torch.where(given < 0, given + n_keys, given).to(device)
    positions = [rows] if isinstance(rows, int) else list(rows)
    if not positions or not all(isinstance(p, int) for p in positions):
        raise ValueError(f"rows must be a position, a list of positions or a (batch, R) tensor, "
                         f"got {rows!r}")

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
    text_config = model.config.get_text_config()
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
    missing = sorted(set(range(text_config.num_hidden_layers) if layers is None else layers)
                     - set(recorded))
    if recorded and missing:
        raise RuntimeError(f"attention of layers {missing} was not recorded: "
                           f"{type(model).__name__}'s attention bypassed the recorder")
