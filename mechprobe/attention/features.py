"""Per-statement attention features (METHOD.md, 'Features').

An example is a token sequence with some query positions and some statements, each statement a
set of token positions. Its features are, per layer (and optionally per head), the attention from
the query tokens to each statement: token weights pooled over the statement's tokens, query rows
pooled by mean or max. One example gives an array (statements, layers, heads or 1).
"""

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence
from tqdm.auto import tqdm

from mechprobe.models import input_device

POOLS = ("mean", "max", "sum")


@dataclass
class Example:
    input_ids: list          # token ids of the whole prompt
    query: list              # positions of the query tokens
    statements: list         # per statement, the list of its token positions


def segment_tokens(tokenizer, segments, add_special_tokens=True):
    """Tokenize the concatenation of `segments`; return (ids, per segment its token positions).

    A token belongs to every segment its characters overlap, so a BPE token merged across a
    segment boundary (" 17" after "3") counts for both, and no non-empty segment is left without
    a token. Special tokens (BOS) belong to no segment.
    """
    text = "".join(segments)
    encoded = tokenizer(text, return_offsets_mapping=True, add_special_tokens=add_special_tokens)
    bounds = np.cumsum([0] + [len(s) for s in segments])
    positions = [[] for _ in segments]
    for index, (start, end) in enumerate(encoded["offset_mapping"]):
        if end <= start:
            continue
        # segments i with bounds[i] < end and bounds[i+1] > start
        first = np.searchsorted(bounds, start, side="right") - 1
        for seg in range(first, len(segments)):
            if bounds[seg] >= end:
                break
            if bounds[seg + 1] > start:
                positions[seg].append(index)
    return list(encoded["input_ids"]), positions


def pool(values, how, axis):
    if how == "mean":
        return values.mean(axis=axis)
    if how == "max":
        return values.max(axis=axis)
    if how == "sum":
        return values.sum(axis=axis)
    raise ValueError(f"unknown pooling '{how}': use one of {POOLS}")


def example_features(weights, example, query_pool="mean", statement_pool="mean"):
    """weights: (layers, heads, R, N) attention of this example's query rows -> (S, layers, heads)."""
    rows = pool(weights[:, :, :len(example.query)], query_pool, axis=2)   # (layers, heads, N)
    return np.stack([pool(rows[:, :, tokens], statement_pool, axis=2)
                     for tokens in example.statements])


def batches_by_length(examples, batch_size, max_tokens):
    """Index batches of similar length (less padding), each at most batch_size examples and
    max_tokens padded tokens (one long example still forms its own batch). Memory grows with the
    tokens in flight, while on a CPU long prompts gain nothing from batching."""
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
    batches, current = [], []
    for i in order:
        width = len(examples[i].input_ids)  # the longest so far, as the order is ascending
        if current and (len(current) == batch_size or (len(current) + 1) * width > max_tokens):
            batches.append(current)
            current = []
        current.append(i)
    return batches + [current] if current else batches


# A shared beginning shorter than this is run with each prompt: caching it would save little.
MIN_PREFIX = 32


def shared_prefix(examples, min_length=MIN_PREFIX):
    """How many first tokens every example shares and none queries or ends in (0 when fewer
    than min_length): the same in-context shots before every question."""
    first = np.asarray(examples[0].input_ids)
    length = min(min(len(e.input_ids) for e in examples) - 1, min(min(e.query) for e in examples))
    for example in examples[1:]:
        if length < min_length:
            break
        same = first[:length] == np.asarray(example.input_ids[:length])
        length = length if same.all() else int(np.argmin(same))
    return length if length >= min_length else 0


def forward_batches(recorder, examples, batch_size, max_tokens=1024, pad_id=0, layers=None,
                    per_head=False, desc="attention", reuse_prefix=True, knockout=None):
    """Run the examples in batches; yield per batch (its indices, its examples, the next-token
    logits at each one's last position (batch, vocab), the recorded rows {layer: weights}).

    Batches hold similar lengths (batches_by_length) and are right-padded: a real token never
    attends to a pad, so results equal unpadded runs. With layers, each example's query rows are
    recorded. reuse_prefix: tokens every example begins with (fixed in-context shots) run once,
    their keys and values reused by every batch (the same numbers up to float rounding).
    knockout(batch indices, width): the batch's Knockout (recorder.py) or None, `width` its
    positions counted from the prompt's start."""
    device = input_device(recorder.model)
    start = shared_prefix(examples) if reuse_prefix and examples else 0
    prefix = None
    if start:
        prefix = recorder.encode_prefix(
            torch.tensor([examples[0].input_ids[:start]], dtype=torch.long, device=device))
        start = start if prefix is not None else 0
    for batch in tqdm(batches_by_length(examples, batch_size, max_tokens), desc=desc,
                      unit="batch", leave=False):
        group = [examples[i] for i in batch]
        ids = pad_sequence([torch.tensor(e.input_ids[start:], dtype=torch.long) for e in group],
                           batch_first=True, padding_value=pad_id)
        mask = pad_sequence([torch.ones(len(e.input_ids) - start, dtype=torch.long) for e in group],
                            batch_first=True)
        rows = None
        if layers:
            n_rows = max(len(e.query) for e in group)
            # Unused row slots repeat the last query row; example_features ignores them.
            rows = torch.tensor([e.query + [e.query[-1]] * (n_rows - len(e.query)) for e in group],
                                dtype=torch.long).to(device)
        last = start + mask.sum(dim=1) - 1
        logits, recorded = recorder.forward(
            ids.to(device), mask.to(device), rows=rows, layers=layers, per_head=per_head,
            logits_at=last.to(device), prefix=prefix,
            knockout=None if knockout is None else knockout(batch, start + ids.shape[1]))
        yield batch, group, logits, recorded


def extract(recorder, examples, layers, batch_size, per_head=False, query_pool="mean",
            statement_pool="mean", pad_id=0, logit_ids=None, max_tokens=1024, desc="attention",
            reuse_prefix=True):
    """Features of every example and its next-token prediction at the last position.

    Returns (list of (S_i, len(layers), heads or 1) float32 arrays, (n,) argmax token ids, and
    (n, len(logit_ids)) logits of the tokens `logit_ids` or None).
    With no layers nothing is recorded (predictions only) and the features are None.
    Batching, padding and the shared prefix: forward_batches.
    """
    features = [None] * len(examples)
    predicted = np.zeros(len(examples), dtype=np.int64)
    chosen = None if logit_ids is None else np.zeros((len(examples), len(logit_ids)), np.float32)
    for batch, group, batch_logits, recorded in forward_batches(
            recorder, examples, batch_size, max_tokens, pad_id, layers, per_head, desc,
            reuse_prefix):
        if layers:
            # (batch, layers, heads, R, N); head-mean recordings get a heads axis of 1
            # .cpu() per layer: with a device map the layers' rows live on different devices.
            stacked = torch.stack([(recorded[layer] if per_head else recorded[layer][:, None]).cpu()
                                   for layer in layers], dim=1).numpy()
            for j, i in enumerate(batch):
                features[i] = example_features(stacked[j], group[j], query_pool, statement_pool)
        predicted[batch] = batch_logits.argmax(dim=-1).cpu().numpy()
        if chosen is not None:
            chosen[batch] = batch_logits[:, list(logit_ids)].cpu().numpy()
    return features, predicted, chosen


def normalise_by_max(features):
    """Divide each example's features by its maximum (the k-th smallest setting of the paper)."""
    return [f / max(float(f.max()), np.finfo(np.float32).tiny) for f in features]
