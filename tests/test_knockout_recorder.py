"""Key knockout in the recorder against eager attention run with the same mask built by hand."""

import numpy as np
import pytest
import torch
from test_recorder import build, gpt2, llama_gqa, padded_batch

from mechprobe.attention.recorder import Knockout, Recorder, attention_modules
from mechprobe.cli import UserError

N_LAYERS = 3


def cut_by_hand(lengths, n, hidden, first_query):
    """(batch, n, n) bool: True where query q of example b may not see key k: q from
    first_query[b] on, k among hidden[b], and never a position's own key. Written as loops, apart
    from Knockout's tensor code."""
    cut = torch.zeros(len(lengths), n, n, dtype=torch.bool)
    for b in range(len(lengths)):
        for q in range(first_query[b], n):
            for k in hidden[b]:
                if k != q:
                    cut[b, q, k] = True
    return cut


def eager_with_mask(config_fn, ids, mask, cut_per_layer):
    """Logits and attention weights of the eager model whose every attention layer receives an
    additive mask made here: causal, padding, and that layer's cut pairs at the float minimum."""
    model = build(config_fn, "eager")
    n = ids.shape[1]
    causal = torch.tril(torch.ones(n, n, dtype=torch.bool))
    allowed = causal[None] & mask.bool()[:, None, :]
    lowest = torch.finfo(torch.float32).min
    handles = []
    for layer, module in enumerate(attention_modules(model)):
        keep = allowed & ~cut_per_layer[layer]
        additive = torch.zeros(keep.shape).masked_fill(~keep, lowest)[:, None]

        def hook(module, args, kwargs, additive=additive):
            return args, {**kwargs, "attention_mask": additive}

        handles.append(module.register_forward_pre_hook(hook, with_kwargs=True))
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, output_attentions=True)
    for handle in handles:
        handle.remove()
    return out.logits, out.attentions


def as_positions(hidden, first_query, n):
    keys = torch.zeros(len(hidden), n, dtype=torch.bool)
    queries = torch.zeros(len(hidden), n, dtype=torch.bool)
    for b, (positions, first) in enumerate(zip(hidden, first_query)):
        keys[b, positions] = True
        queries[b, first:] = True
    return keys, queries


@pytest.mark.parametrize("layers", [None, [1], [0, 2]], ids=["all layers", "layer 1", "layers 0,2"])
@pytest.mark.parametrize("config_fn", [gpt2, llama_gqa], ids=lambda f: f.__name__)
def test_knockout_equals_eager_with_the_mask_by_hand(config_fn, layers):
    lengths, n = [12, 9, 11], 12
    ids, mask, _ = padded_batch(lengths, "right", n)
    # Per example its own statement, and its own first query; example 1 cuts a key that is also
    # a query (the own-key rule matters there).
    hidden = [[2, 3, 4], [1, 7], [5]]
    first_query = [8, 6, 9]
    keys, queries = as_positions(hidden, first_query, n)
    cut = cut_by_hand(lengths, n, hidden, first_query)
    cut_per_layer = [cut if layers is None or layer in layers else torch.zeros_like(cut)
                     for layer in range(N_LAYERS)]
    eager_logits, eager_attentions = eager_with_mask(config_fn, ids, mask, cut_per_layer)

    recorder = Recorder(build(config_fn, "eager"))
    last = torch.tensor(lengths) - 1
    rows = torch.stack([last, last - 2, torch.tensor(first_query)], dim=1)
    logits, recorded = recorder.forward(ids, mask, rows=rows, per_head=True, logits_at=last,
                                        knockout=Knockout(keys, queries, layers))
    batch = torch.arange(len(lengths))
    assert torch.allclose(logits, eager_logits[batch, last], atol=1e-5)
    for layer, weights in enumerate(eager_attentions):
        index = rows[:, None, :, None].expand(-1, weights.shape[1], -1, n)
        expected = weights.gather(2, index)
        assert torch.allclose(recorded[layer], expected, atol=1e-5), f"layer {layer}"
        if cut_per_layer[layer].any():     # the cut pairs get no attention at all
            for b, row in enumerate(rows):
                for r, q in enumerate(row.tolist()):
                    blocked = cut_per_layer[layer][b, q]
                    assert torch.all(recorded[layer][b, :, r, blocked] == 0)

    # The cut changes the answer's logits: the test is not passing on an inert mask.
    plain, _ = recorder.forward(ids, mask, logits_at=last)
    assert not torch.allclose(plain, logits, atol=1e-3)


@pytest.mark.parametrize("config_fn", [gpt2, llama_gqa], ids=lambda f: f.__name__)
def test_a_key_hidden_from_every_query_at_every_layer_cannot_reach_the_output(config_fn):
    """Hidden from every other position at every layer, a token's value is invisible at the
    last position: changing it changes no logit there. Without the cut it does."""
    recorder = Recorder(build(config_fn, "eager"))
    ids, _, _ = padded_batch([10], "right", 10)
    changed = ids.clone()
    changed[0, 4] = (ids[0, 4] + 7) % 60 + 3
    keys = torch.zeros(1, 10, dtype=torch.bool)
    keys[0, 4] = True
    last = torch.tensor([9])

    def logits(tokens, knockout):
        return recorder.forward(tokens, logits_at=last, knockout=knockout)[0]

    assert torch.allclose(logits(ids, Knockout(keys)), logits(changed, Knockout(keys)), atol=1e-6)
    assert not torch.allclose(logits(ids, None), logits(changed, None), atol=1e-4)
    # Cut at one layer only, the token reaches the output through the others.
    one = Knockout(keys, layers=[1])
    assert not torch.allclose(logits(ids, one), logits(changed, one), atol=1e-4)


def test_a_cut_that_hides_nothing_visible_is_the_plain_model():
    recorder = Recorder(build(llama_gqa, "eager"))
    lengths, n = [10, 7], 10
    ids, mask, _ = padded_batch(lengths, "right", n)
    last = torch.tensor(lengths) - 1
    plain, plain_rows = recorder.forward(ids, mask, rows=last[:, None], logits_at=last)
    later = torch.zeros(2, n, dtype=torch.bool)
    later[0, 9], later[1, 8:] = True, True       # keys after each example's last query
    queries = torch.zeros(2, n, dtype=torch.bool)
    queries[:, :9] = True
    for knockout in (Knockout(torch.zeros(2, n, dtype=torch.bool)), Knockout(later, queries)):
        logits, rows = recorder.forward(ids, mask, rows=last[:, None], logits_at=last,
                                        knockout=knockout)
        assert torch.allclose(logits, plain, atol=1e-6)
        assert all(torch.allclose(rows[layer], plain_rows[layer], atol=1e-6) for layer in rows)


@pytest.mark.parametrize("config_fn", [gpt2, llama_gqa], ids=lambda f: f.__name__)
def test_knockout_after_a_shared_prefix_equals_the_whole_prompt(config_fn):
    """The shared-prefix path (keys and values of the prefix from a cache) cuts the same pairs as
    the whole prompt run at once, hidden keys inside the prefix included."""
    gen = torch.Generator().manual_seed(3)
    prefix_ids = torch.randint(3, 64, (1, 20), generator=gen)
    rest = torch.randint(3, 64, (2, 10), generator=gen)
    whole = torch.cat([prefix_ids.expand(2, -1), rest], dim=1)
    n = whole.shape[1]
    keys = torch.zeros(2, n, dtype=torch.bool)
    keys[0, [3, 4, 22]] = True
    keys[1, [15, 25]] = True
    queries = torch.zeros(2, n, dtype=torch.bool)
    queries[0, 24:], queries[1, 20:] = True, True
    recorder = Recorder(build(config_fn, "eager"))
    last = torch.full((2,), n - 1)
    rows = torch.tensor([[24, 29], [21, 29]])
    knockout = Knockout(keys, queries, layers=[0, 2])
    expected, expected_rows = recorder.forward(whole, rows=rows, logits_at=last, knockout=knockout)
    prefix = recorder.encode_prefix(prefix_ids)
    got, got_rows = recorder.forward(rest, rows=rows, logits_at=last, prefix=prefix,
                                     knockout=Knockout(keys, queries, layers=[0, 2]))
    assert torch.allclose(got, expected, atol=1e-5)
    for layer in expected_rows:
        assert torch.allclose(got_rows[layer], expected_rows[layer], atol=1e-5)
    plain, _ = recorder.forward(rest, logits_at=last, prefix=prefix)
    assert not torch.allclose(plain, got, atol=1e-3)

    # A query inside the prefix that would lose a key ran without the cut: refused.
    inside = queries.clone()
    inside[0, 10:] = True
    with pytest.raises(UserError, match="inside the shared prefix"):
        recorder.forward(rest, logits_at=last, prefix=prefix, knockout=Knockout(keys, inside))


def test_knockout_on_a_model_split_over_cpu_and_disk_equals_the_whole_model(bpe_gpt2_dir, tmp_path):
    from test_placement import LAYOUT

    from mechprobe.models import load_model

    whole, _ = load_model(bpe_gpt2_dir, "cpu", "float32")
    split, _ = load_model(bpe_gpt2_dir, "cpu", "float32",
                          {"device_map": LAYOUT, "offload_folder": str(tmp_path / "off")})
    rng = np.random.default_rng(0)
    ids = torch.as_tensor(rng.integers(1, 500, size=(3, 12)))
    keys = torch.zeros(3, 12, dtype=torch.bool)
    keys[0, 2], keys[1, 5:7], keys[2, 0] = True, True, True
    last = torch.full((3,), 11)
    results = [Recorder(model).forward(ids, rows=last[:, None], logits_at=last,
                                       knockout=Knockout(keys, layers=[1]))
               for model in (whole, split)]
    (a_logits, a_rows), (b_logits, b_rows) = results
    assert torch.allclose(a_logits, b_logits, atol=1e-5)
    assert all(torch.allclose(a_rows[layer], b_rows[layer], atol=1e-6) for layer in a_rows)
    plain, _ = Recorder(whole).forward(ids, logits_at=last)
    assert not torch.allclose(plain, a_logits, atol=1e-4)


def test_knockout_needs_the_attention_interface():
    from test_recorder import bypassing_gpt2

    recorder = Recorder(bypassing_gpt2(), mode="hook")
    keys = torch.zeros(1, 6, dtype=torch.bool)
    with pytest.raises(UserError, match="knockout needs the attention interface"):
        recorder.forward(torch.tensor([[3, 4, 5, 6, 7, 8]]), knockout=Knockout(keys))


def test_a_knockout_of_the_wrong_width_is_an_error():
    recorder = Recorder(build(gpt2, "eager"))
    with pytest.raises(ValueError, match="covers 5 positions"):
        recorder.forward(torch.tensor([[3, 4, 5, 6, 7, 8]]),
                         knockout=Knockout(torch.zeros(1, 5, dtype=torch.bool)))
