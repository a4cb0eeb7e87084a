"""Attention recording: the attention of a few query rows per layer, without N x N matrices.

`output_attentions=True` makes every layer return its full (batch, heads, N, N) attention, which is
what made the old probing code slow and memory-bound. The probe needs only a few query rows. So the
recorder registers its own attention function with transformers' AttentionInterface: each layer
computes its output with the fast sdpa kernel as usual, then recomputes softmax(q k^T * scaling +
mask) in float32 for the selected rows only, grouped by key/value head (GQA), reduces it (head mean
or per head) and keeps that. The same function can zero chosen heads' outputs (head masking for the
causal analysis; transformers 5 ignores `head_mask`) and hide chosen keys from chosen queries
(statement knockout, `Knockout`): those logits become -inf before the softmax, folded into the
mask sdpa receives, so the output keeps sdpa's masked kernel and the recorded rows see the same
mask.

Prompts that share a long beginning (the same in-context shots before every question) can skip
it: `encode_prefix` runs the shared tokens once and keeps their keys and values, and
`forward(..., prefix=...)` runs only the rest of each prompt on top of them. Positions stay those
of the whole prompt; the recorded rows span the prefix's keys too.

Models whose attention does not go through the interface fall back to an eager forward hook per
attention module that slices the rows at once and drops the full matrix before the next layer.
"""

import contextlib
import inspect
import contextvars
from dataclasses import dataclass, field

import torch
from transformers import AttentionInterface, DynamicCache
from transformers.cache_utils import DynamicLayer
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from mechprobe.cli import UserError

IMPLEMENTATION = "mechprobe_recorder"

# The capture of the forward pass in progress; None outside `Recorder.forward` (plain sdpa then).
_ACTIVE = contextvars.ContextVar("mechprobe_capture", default=None)


@dataclass
class Knockout:
    """Attention cut from query positions to key positions: those logits are -inf before the
    softmax, per example of the batch. A position always keeps its own key, so no query row is
    left with nothing to attend to (its own token reaches it through the residual stream anyway).

    Positions count from the start of the prompt (a Prefix's first token), as `rows` do.
    """

    keys: torch.Tensor                   # (batch, N) bool: key positions to hide
    queries: torch.Tensor | None = None  # (batch, N) bool: queries they are hidden from; None = all
    layers: frozenset | None = None      # layer indices where the cut applies; None = every layer

    def __post_init__(self):
        self.keys = torch.as_tensor(self.keys, dtype=torch.bool)
        if self.queries is not None:
            self.queries = torch.as_tensor(self.queries, dtype=torch.bool)
            if self.queries.shape != self.keys.shape:
                raise ValueError(f"knockout queries {tuple(self.queries.shape)} and keys "
                                 f"{tuple(self.keys.shape)} differ in shape")
        if self.layers is not None:
            self.layers = frozenset(int(layer) for layer in self.layers)
        self._blocked = {}

    def applies(self, layer):
        return self.layers is None or layer in self.layers

    def blocked(self, n_queries, n_keys, device):
        """(batch, 1, Q, N) bool, True = cut, for the last Q of N positions (Q < N after a
        cache). Built once per shape and device: every layer of a forward pass shares it, and a
        device map puts layers on several devices."""
        cached = self._blocked.get((n_queries, n_keys, device))
        if cached is not None:
            return cached
        if self.keys.shape[1] != n_keys:
            raise ValueError(f"the knockout covers {self.keys.shape[1]} positions, the attention "
                             f"sees {n_keys} keys: give keys (and queries) for the whole prompt, "
                             "prefix and padding included")
        keys = self.keys.to(device)
        queries = (torch.ones_like(keys) if self.queries is None else self.queries.to(device))
        positions = torch.arange(n_keys, device=device)
        own = positions[n_keys - n_queries:, None] == positions[None, :]
        blocked = queries[:, n_keys - n_queries:, None] & keys[:, None, :] & ~own
        self._blocked[(n_queries, n_keys, device)] = blocked[:, None]
        return blocked[:, None]

    def reaches_into(self, length):
        """Whether a query among the first `length` positions loses a key: those queries ran
        in a Prefix, without the cut."""
        keys, queries = self.keys[:, :length], self.queries
        queries = torch.ones_like(keys) if queries is None else queries[:, :length]
        earlier = keys.long().cumsum(dim=1) - keys.long()    # hidden keys strictly before each
        return bool((queries & (earlier > 0)).any())


def with_knockout(mask, blocked):
    """The attention mask with the knocked-out pairs cut: bool True = may attend, or additive."""
    n_queries, n_keys = blocked.shape[-2:]
    if mask is None:      # plain causal: sdpa's is_causal fast path gives way to an explicit mask
        positions = torch.arange(n_keys, device=blocked.device)
        causal = positions[None, :] <= positions[n_keys - n_queries:, None]
        return causal & ~blocked
    if mask.dtype == torch.bool:
        return mask & ~blocked
    return mask.masked_fill(blocked, torch.finfo(mask.dtype).min)


@dataclass
class Capture:
    rows: torch.Tensor | None            # (batch, R) query positions to record, or None: record nothing
    layers: frozenset | None             # layer indices to record; None = all
    per_head: bool
    head_mask: torch.Tensor | None       # (layers, heads), 0 = zero that head's output
    knockout: Knockout | None = None     # keys hidden from queries
    recorded: dict = field(default_factory=dict)   # layer -> (batch, R, N) or (batch, heads, R, N)
    keys: int | None = None              # with a Prefix: the key count every layer must see
    calls: int = 0                       # attention calls seen, the layer index of modules without one
    ran: set = field(default_factory=set)          # layers whose attention went through this function

    def layer_of(self, module):
        layer = getattr(module, "layer_idx", None)
        self.calls += 1
        return self.calls - 1 if layer is None else layer

    def wants(self, layer):
        return self.rows is not None and (self.layers is None or layer in self.layers)

    def rows_for(self, batch, n_keys, device):
        """The (batch, R) rows of this forward: given, or (record()) resolved against its length."""
        if callable(self.rows):
            return self.rows(batch, n_keys, device)
        return self.rows.to(device)


def row_attention(query, key, mask, rows, scaling, softcap=None, sinks=None):
    """softmax(q k^T * scaling + mask) for the query rows `rows` only, in float32.

    query (b, h, Q, d), key (b, h_kv, N, d), Q <= N: the queries are the last Q of the N positions
    (Q < N when earlier keys come from a cache); mask: bool (b|1, 1, Q, N) True = may attend, a
    float additive mask, or None for plain causal; rows (b, R), positions among the N.
    Returns (b, h, R, N).
    """
    batch, heads, n_queries, dim = query.shape
    kv_heads, n_keys = key.shape[1], key.shape[2]
    n_rows = rows.shape[1]
    local = rows - (n_keys - n_queries)     # the rows' places among the queries
    picked = query.gather(2, local[:, None, :, None].expand(batch, heads, n_rows, dim)).float()
    # GQA: the query heads of one group share a key head, so no repeat of the keys is needed.
    grouped = picked.view(batch, kv_heads, heads // kv_heads, n_rows, dim)
    scores = torch.einsum("bkgrd,bknd->bkgrn", grouped, key.float()).reshape(batch, heads, n_rows, n_keys)
    scores = scores * scaling
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    lowest = torch.finfo(torch.float32).min
    if mask is None:
        allowed = torch.arange(n_keys, device=rows.device)[None, None, :] <= rows[:, :, None]
        scores = scores.masked_fill(~allowed[:, None], lowest)
    else:
        mask_rows = mask.expand(batch, -1, -1, -1).gather(
            2, local[:, None, :, None].expand(batch, mask.shape[1], n_rows, mask.shape[-1]))
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask_rows, lowest)
        else:
            scores = (scores + mask_rows.float()).clamp(min=lowest)
    if sinks is not None:  # attention sinks: an extra logit per head that takes probability mass
        sink = sinks.float().reshape(1, heads, 1, 1).expand(batch, heads, n_rows, 1)
        return torch.softmax(torch.cat([scores, sink], dim=-1), dim=-1)[..., :-1]
    return torch.softmax(scores, dim=-1)


def eager_output(query, key, value, mask, scaling, softcap=None, sinks=None):
    """The full attention output, for what sdpa cannot do (softcap, sinks); one layer at a time."""
    heads = query.shape[1]
    rows = torch.arange(query.shape[2], device=query.device).expand(query.shape[0], -1)
    weights = row_attention(query, key, mask, rows, scaling, softcap, sinks).to(value.dtype)
    groups = heads // value.shape[1]
    value = value.repeat_interleave(groups, dim=1)
    return torch.matmul(weights, value).transpose(1, 2).contiguous()


def recording_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None,
                        is_causal=None, **kwargs):
    """An AttentionInterface function: sdpa's output, plus the selected rows' weights on the side."""
    if kwargs.get("head_mask") is not None:
        # transformers 5 passes it along and ignores it: a silently unmasked run would mislead.
        raise UserError("head_mask= is ignored by transformers 5: pass head_mask to "
                        "Recorder.forward instead (per layer and head, 1 keeps, 0 zeroes the output)")
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    softcap, sinks = kwargs.get("softcap"), kwargs.get("s_aux")
    capture = _ACTIVE.get()
    layer = None if capture is None else capture.layer_of(module)
    if capture is not None and capture.knockout is not None and capture.knockout.applies(layer):
        blocked = capture.knockout.blocked(query.shape[2], key.shape[2], query.device)
        attention_mask = with_knockout(attention_mask, blocked)
    if softcap is not None or sinks is not None:
        output = eager_output(query, key, value, attention_mask, scaling, softcap, sinks)
    else:
        output, _ = sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                           scaling=scaling, is_causal=is_causal, **kwargs)
    if capture is None:
        return output, None
    capture.ran.add(layer)
    if capture.keys is not None and key.shape[2] != capture.keys:
        raise UserError(f"layer {layer} of {type(module).__name__} saw {key.shape[2]} keys, not the "
                        f"{capture.keys} of prefix and prompt: its cache drops keys; run the "
                        "prompts whole (extract(..., reuse_prefix=False))")
    if capture.wants(layer):
        rows = capture.rows_for(query.shape[0], key.shape[2], query.device)
        weights = row_attention(query, key, attention_mask, rows, scaling, softcap, sinks)
        capture.recorded[layer] = weights if capture.per_head else weights.mean(dim=1)
    if capture.head_mask is not None:
        keep = capture.head_mask[layer].to(output.device, output.dtype)
        output = output * keep[None, None, :, None]  # output is (batch, N, heads, head_dim)
    return output, None


def recording_mask(*args, **kwargs):
    """sdpa's boolean mask (None when plain causal with no padding, so sdpa keeps its fast path)."""
    return sdpa_mask(*args, **kwargs)


AttentionInterface.register(IMPLEMENTATION, recording_attention)
AttentionMaskInterface.register(IMPLEMENTATION, recording_mask)


def attention_modules(model):
    """The self-attention modules in layer order: the outermost modules named '*Attention'."""
    found = []
    for name, module in model.named_modules():
        if type(module).__name__.endswith("Attention") and not any(
                name.startswith(f"{outer}.") for outer, _ in found):
            found.append((name, module))
    return [module for _, module in found]


class Recorder:
    """Records selected query rows of a model's attention during ordinary forward passes.

    mode 'interface' (the fast path) or 'hook' (eager attention, rows sliced by a forward hook on
    each attention module); 'auto' tries the interface and falls back when the model bypasses it.
    """

    def __init__(self, model, mode="auto"):
        self.model = model
        self.n_layers = model.config.get_text_config().num_hidden_layers
        # what the caller's model used, given back by restore() (or leaving a `with` block)
        self.implementation = getattr(model.config, "_attn_implementation", None)
        self.mode = None
        if mode in ("auto", "interface"):
            try:
                model.set_attn_implementation(IMPLEMENTATION)
                self.mode = "interface"
            except (ValueError, NotImplementedError, AttributeError):
                if mode == "interface":
                    raise
        if self.mode is None:
            self._use_hooks()
        self._auto = mode == "auto"
        # transformers 5.24 renamed the forward argument past_key_values to cache.
        self._cache_argument = ("cache" if "cache" in inspect.signature(model.forward).parameters
                                else "past_key_values")

    def restore(self):
        """Give the model its own attention implementation back."""
        if self.implementation is not None and getattr(
                self.model.config, "_attn_implementation", None) != self.implementation:
            with contextlib.suppress(ValueError, NotImplementedError, AttributeError):
                self.model.set_attn_implementation(self.implementation)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.restore()

    def _use_hooks(self):
        with contextlib.suppress(ValueError, NotImplementedError, AttributeError):
            self.model.set_attn_implementation("eager")
        if not attention_modules(self.model):
            raise UserError(f"cannot record the attention of {type(self.model).__name__}: it has no "
                            "modules named *Attention; use a transformers causal LM that supports "
                            "attn_implementation='eager'")
        self.mode = "hook"

    @torch.inference_mode()
    def encode_prefix(self, input_ids):
        """The keys and values of tokens that begin every prompt to come, (1, P) ids; a Prefix,
        or None when the model's cache is not a plain per-layer one (sliding windows, recurrent
        layers) or its attention bypasses the interface (hook mode, whose modules may not use a
        cache at all): then prompts run whole."""
        if self.mode != "interface":
            return None
        outputs = self.model(input_ids=input_ids, use_cache=True, logits_to_keep=1)
        cache = getattr(outputs, "cache", None) or outputs.past_key_values
        layers = getattr(cache, "layers", None)
        if not layers or any(type(layer) is not DynamicLayer for layer in layers):
            return None
        return Prefix(input_ids.shape[1], [(layer.keys, layer.values) for layer in layers])

    def forward(self, input_ids, attention_mask=None, rows=None, layers=None, per_head=False,
                head_mask=None, logits_at=None, prefix=None, knockout=None):
        """One forward pass; returns (logits at `logits_at` or None, {layer: weights}).

        rows: (batch, R) query positions whose attention is kept, as (batch, R, N) per layer, or
        (batch, heads, R, N) with per_head. logits_at: (batch,) positions whose next-token logits
        are returned, (batch, vocab) in float32, computed for those positions only.
        prefix: a Prefix from encode_prefix that precedes `input_ids` (and the attention mask,
        which covers `input_ids` only); rows and logits_at count positions from the prefix's start.
        knockout: a Knockout, keys hidden from queries at its layers (positions from the prefix's
        start too; its queries must not reach into the prefix, which ran without it).
        """
        edits = [name for name, given in (("head masking", head_mask is not None),
                                          ("knockout", knockout is not None)) if given]
        if edits and self.mode == "hook":
            raise UserError(f"{' and '.join(edits)} needs the attention interface, which "
                            f"{type(self.model).__name__} bypasses: use a model that supports "
                            "transformers' AttentionInterface (GPT-2, Llama, Mistral, Qwen ...)")
        if knockout is not None and prefix is not None and knockout.reaches_into(prefix.length):
            raise UserError("the knockout cuts attention of queries inside the shared prefix, "
                            "which ran without it: cut from queries after the prefix only, or run "
                            "the prompts whole")
        capture = Capture(rows=rows, layers=None if layers is None else frozenset(layers),
                          per_head=per_head, head_mask=head_mask, knockout=knockout,
                          keys=None if prefix is None else prefix.length + input_ids.shape[1])
        logits = self._run(capture, input_ids, attention_mask, logits_at, prefix)
        if edits and len(capture.ran) < self.n_layers:
            # A layer that bypassed the recording function was not edited: pruning or knockout
            # would silently run as the plain model.
            missing = sorted(set(range(self.n_layers)) - capture.ran)
            raise UserError(f"{' and '.join(edits)} did not reach layers {missing} of "
                            f"{type(self.model).__name__}: their attention bypasses transformers' "
                            "AttentionInterface (was attn_implementation changed after the recorder "
                            "was set up?); reload the model, or use one whose attention calls the "
                            "interface (GPT-2, Llama, Mistral, Qwen ...)")
        wanted = set(range(self.n_layers)) if layers is None else set(layers)
        if rows is not None and not wanted <= set(capture.recorded):
            if self.mode == "interface" and self._auto and not edits:
                self._use_hooks()  # the model computed attention without calling the interface
                return self.forward(input_ids, attention_mask, rows, layers, per_head, head_mask,
                                    logits_at, prefix)
            missing = sorted(wanted - set(capture.recorded))
            raise UserError(f"cannot record the attention of {type(self.model).__name__} at layers "
                            f"{missing}: it neither calls transformers' AttentionInterface nor "
                            "returns eager attention weights; use another architecture")
        return logits, capture.recorded

    @torch.inference_mode()
    def _run(self, capture, input_ids, attention_mask, logits_at, prefix):
        # use_cache=False: without a prefix no key/value cache is wanted (it would copy them all).
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask, "use_cache": False}
        if prefix is not None:
            kwargs.update(prefix.inputs(input_ids, attention_mask, self._cache_argument))
            if logits_at is not None:
                logits_at = logits_at - prefix.length
        if logits_at is not None:
            # Only the positions asked for go through the vocabulary projection.
            keep, inverse = torch.unique(logits_at, return_inverse=True)
            kwargs["logits_to_keep"] = keep
        else:
            kwargs["logits_to_keep"] = 1
        handles = self._install_hooks(capture) if self.mode == "hook" else []
        token = _ACTIVE.set(capture)
        try:
            outputs = self.model(**kwargs)
        finally:
            _ACTIVE.reset(token)
            for handle in handles:
                handle.remove()
        if logits_at is None:
            return None
        batch = torch.arange(len(logits_at), device=outputs.logits.device)
        return outputs.logits[batch, inverse.to(outputs.logits.device)].float()

    def _install_hooks(self, capture):
        def hook(module, args, output):
            weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
            layer = capture.layer_of(module)
            if weights is None or not capture.wants(layer):
                return None
            batch, heads, n_queries, n_keys = weights.shape
            # among the queries
            rows = capture.rows_for(batch, n_keys, weights.device) - (n_keys - n_queries)
            picked = weights.gather(2, rows[:, None, :, None].expand(batch, heads, rows.shape[1], n_keys))
            picked = picked.float()
            capture.recorded[layer] = picked if capture.per_head else picked.mean(dim=1)
            # Drop the full matrix now, so no caller keeps every layer's N x N.
            return (output[0], None, *output[2:])

        # prepend: run before transformers' own output-capturing hooks, which then see None.
        return [module.register_forward_hook(hook, prepend=True)
                for module in attention_modules(self.model)]


@dataclass
class Prefix:
    """Tokens shared by the start of every prompt, as each layer's keys and values (batch 1)."""

    length: int
    keys_values: list        # per layer (keys, values), each (1, kv_heads, length, head_dim)

    def inputs(self, input_ids, attention_mask, cache_argument="past_key_values"):
        """The model's extra inputs to run `input_ids` after the prefix: a cache holding the
        prefix once per prompt (passed as `cache_argument`), and the attention mask extended
        over it."""
        batch = input_ids.shape[0]
        # A fresh cache per call: the forward pass appends the prompts' own keys to it.
        cache = DynamicCache([(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1))
                              for k, v in self.keys_values])
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        ones = attention_mask.new_ones(batch, self.length)
        return {cache_argument: cache, "use_cache": True,
                "attention_mask": torch.cat([ones, attention_mask], dim=1)}
