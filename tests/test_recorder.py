"""The recorder against eager attention with output_attentions=True, per architecture."""

import pytest
import torch
import transformers

from mechprobe.cli import UserError
from mechprobe.attention.recorder import Recorder

VOCAB = 64
SMALL = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
             num_attention_heads=4, max_position_embeddings=64, pad_token_id=0, bos_token_id=1,
             eos_token_id=2)


def gpt2():
    return transformers.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=3, n_head=4, n_positions=64,
                                   bos_token_id=1, eos_token_id=2)


def llama_gqa():
    return transformers.LlamaConfig(**SMALL, num_key_value_heads=2)


def mistral_sliding():
    return transformers.MistralConfig(**SMALL, num_key_value_heads=2, sliding_window=5)


def qwen3():
    return transformers.Qwen3Config(**SMALL, num_key_value_heads=2, head_dim=8)


def neox_partial_rotary():
    return transformers.GPTNeoXConfig(**{k: v for k, v in SMALL.items() if k != "intermediate_size"},
                                      intermediate_size=64, rope_parameters={
                                          "rope_type": "default", "rope_theta": 10000.0,
                                          "partial_rotary_factor": 0.25})


def gemma2_softcap():
    return transformers.Gemma2Config(**SMALL, num_key_value_heads=2, head_dim=8, sliding_window=5,
                                     attn_logit_softcapping=2.0, final_logit_softcapping=5.0,
                                     query_pre_attn_scalar=8)


CONFIGS = [gpt2, llama_gqa, mistral_sliding, qwen3, neox_partial_rotary, gemma2_softcap]


def build(config_fn, implementation):
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config_fn(), attn_implementation=implementation)
    return model.eval()


def padded_batch(lengths, side, n):
    """Random token ids of the given lengths, padded to n on one side; returns ids, mask, offsets."""
    gen = torch.Generator().manual_seed(1)
    ids = torch.zeros(len(lengths), n, dtype=torch.long)
    mask = torch.zeros(len(lengths), n, dtype=torch.long)
    offsets = []
    for i, length in enumerate(lengths):
        start = n - length if side == "left" else 0
        ids[i, start:start + length] = torch.randint(3, VOCAB, (length,), generator=gen)
        mask[i, start:start + length] = 1
        offsets.append(start)
    return ids, mask, torch.tensor(offsets)


def eager_rows(config_fn, ids, mask, rows):
    model = build(config_fn, "eager")
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, output_attentions=True)
    index = rows[:, None, :, None]
    picked = [a.gather(2, index.expand(a.shape[0], a.shape[1], rows.shape[1], a.shape[3]))
              for a in out.attentions]
    return out.logits, picked


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("config_fn", CONFIGS, ids=lambda f: f.__name__)
def test_rows_equal_eager_attentions(config_fn, side):
    lengths, n = [12, 7, 10], 12
    ids, mask, offsets = padded_batch(lengths, side, n)
    # Rows inside each example: its last token, and two earlier ones (sliding window cuts in).
    last = offsets + torch.tensor(lengths) - 1
    rows = torch.stack([last, last - 6, offsets + 1], dim=1)
    eager_logits, eager = eager_rows(config_fn, ids, mask, rows)

    recorder = Recorder(build(config_fn, "eager"))
    assert recorder.mode == "interface"
    logits, recorded = recorder.forward(ids, mask, rows=rows, per_head=True, logits_at=last)
    assert sorted(recorded) == list(range(3))
    for layer, expected in enumerate(eager):
        assert torch.allclose(recorded[layer], expected, atol=1e-5), f"layer {layer}"
    batch = torch.arange(len(lengths))
    # The model's own output is untouched by recording.
    assert torch.allclose(logits, eager_logits[batch, last], atol=1e-4)

    _, mean = recorder.forward(ids, mask, rows=rows, layers=[0, 2])
    assert sorted(mean) == [0, 2]
    assert torch.allclose(mean[2], eager[2].mean(dim=1), atol=1e-5)


def test_sliding_window_really_cuts_in():
    ids, mask, _ = padded_batch([12], "right", 12)
    rows = torch.tensor([[11]])
    _, recorded = Recorder(build(mistral_sliding, "sdpa")).forward(ids, mask, rows=rows)
    weights = recorded[0][0, 0]
    assert torch.all(weights[:7] == 0) and torch.all(weights[7:] > 0)


def bypassing_gpt2():
    """A GPT-2 whose attention modules compute eager attention themselves, ignoring the interface."""
    model = build(gpt2, "eager")
    for module in model.transformer.h:
        attn = module.attn

        def legacy_forward(hidden_states, attention_mask=None, attn=attn, **kwargs):
            q, k, v = attn.c_attn(hidden_states).split(attn.split_size, dim=2)
            shape = (*q.shape[:-1], attn.num_heads, attn.head_dim)
            q, k, v = (t.view(shape).transpose(1, 2) for t in (q, k, v))
            scores = q @ k.transpose(-1, -2) * attn.scaling
            if attention_mask is not None:
                scores = scores + attention_mask
            weights = scores.softmax(-1)
            out = (weights @ v).transpose(1, 2).reshape(hidden_states.shape)
            return attn.c_proj(out), weights

        attn.forward = legacy_forward
    return model


def test_bypassing_model_falls_back_to_hooks():
    ids, mask, _ = padded_batch([9, 12], "right", 12)
    rows = torch.tensor([[8], [11]])
    _, eager = eager_rows(gpt2, ids, mask, rows)
    recorder = Recorder(bypassing_gpt2())
    _, recorded = recorder.forward(ids, mask, rows=rows, per_head=True)
    assert recorder.mode == "hook"
    for layer, expected in enumerate(eager):
        assert torch.allclose(recorded[layer], expected, atol=1e-5)
    with pytest.raises(UserError, match="head masking"):
        recorder.forward(ids, mask, rows=rows, head_mask=torch.ones(3, 4))


def test_unrecordable_model_is_a_clear_error():
    model = bypassing_gpt2()
    for module in model.transformer.h:
        legacy = module.attn.forward
        module.attn.forward = lambda *a, legacy=legacy, **k: (legacy(*a, **k)[0], None)
    ids, mask, _ = padded_batch([6], "right", 6)
    with pytest.raises(UserError, match="cannot record the attention"):
        Recorder(model).forward(ids, mask, rows=torch.tensor([[5]]))


def masked_logits(model, ids, head_mask):
    last = torch.full((len(ids),), ids.shape[1] - 1)
    logits, _ = Recorder(model).forward(ids, head_mask=head_mask, logits_at=last)
    return logits


def hooked_logits(model, module, hook, pre=False):
    ids, _, _ = padded_batch([10, 10], "right", 10)
    handle = (module.register_forward_pre_hook(hook) if pre else module.register_forward_hook(hook))
    with torch.no_grad():
        logits = model(input_ids=ids).logits[:, -1]
    handle.remove()
    return logits


def test_masking_nothing_changes_no_logit():
    model = build(llama_gqa, "eager")
    ids, _, _ = padded_batch([10, 10], "right", 10)
    with torch.no_grad():
        eager = model(input_ids=ids).logits[:, -1]
    assert torch.allclose(masked_logits(model, ids, torch.ones(3, 4)), eager, atol=1e-5)
    assert torch.allclose(masked_logits(model, ids, None), eager, atol=1e-5)


@pytest.mark.parametrize("config_fn", [llama_gqa, gpt2], ids=lambda f: f.__name__)
def test_masking_a_whole_layer_removes_its_attention_output(config_fn):
    model = build(config_fn, "eager")
    ids, _, _ = padded_batch([10, 10], "right", 10)
    mask = torch.ones(3, 4)
    mask[1] = 0
    masked = masked_logits(model, ids, mask)
    if config_fn is gpt2:   # every head's contribution removed; the projection's bias stays
        attn = model.transformer.h[1].attn
        removed = hooked_logits(model, attn, lambda m, a, out: (m.c_proj.bias.expand_as(out[0]), None))
    else:
        attn = model.model.layers[1].self_attn
        removed = hooked_logits(model, attn, lambda m, a, out: (torch.zeros_like(out[0]), None))
    assert torch.allclose(masked, removed, atol=1e-5)
    assert not torch.allclose(masked, masked_logits(model, ids, None), atol=1e-3)


def test_masking_one_head_zeroes_its_slice_of_the_output_projection():
    model = build(llama_gqa, "eager")
    ids, _, _ = padded_batch([10, 10], "right", 10)
    mask = torch.ones(3, 4)
    mask[2, 1] = 0
    head_dim = 32 // 4

    def zero_head(module, args):
        x = args[0].clone()
        x[..., head_dim:2 * head_dim] = 0
        return (x,)

    removed = hooked_logits(model, model.model.layers[2].self_attn.o_proj, zero_head, pre=True)
    assert torch.allclose(masked_logits(model, ids, mask), removed, atol=1e-5)


def test_head_mask_passed_to_the_model_is_refused():
    model = build(gpt2, "eager")
    Recorder(model)
    with pytest.raises(UserError, match="head_mask= is ignored"):
        model(input_ids=torch.tensor([[3, 4, 5]]), head_mask=torch.ones(3, 4))


@pytest.mark.parametrize("rows", [None, torch.tensor([[9], [9]])], ids=["logits only", "with rows"])
def test_head_mask_on_a_layer_that_bypasses_the_interface_is_an_error(rows):
    model = build(gpt2, "eager")
    recorder = Recorder(model)
    assert recorder.mode == "interface"
    # One layer's attention stops calling the interface after the recorder was set up: its heads
    # cannot be masked, and the run must not pass for a pruned one.
    model.transformer.h[1].attn.forward = bypassing_gpt2().transformer.h[1].attn.forward
    ids, mask, _ = padded_batch([10, 10], "right", 10)
    with pytest.raises(UserError, match=r"head masking did not reach layers \[1\]"):
        recorder.forward(ids, mask, rows=rows, head_mask=torch.ones(3, 4),
                         logits_at=torch.tensor([9, 9]))


@pytest.mark.parametrize("config_fn", CONFIGS, ids=lambda f: f.__name__)
def test_shared_prefix_run_once_gives_the_same_features(config_fn):
    """Fixed in-context shots: the shared beginning runs once and its keys and values serve every
    batch (features.extract); features, predictions and logits equal running each prompt whole.
    Sliding-window models keep fewer keys in their cache, so they run whole (shared_prefix
    declines)."""
    from mechprobe.attention.features import MIN_PREFIX, Example, extract, shared_prefix

    gen = torch.Generator().manual_seed(2)
    prefix = torch.randint(3, VOCAB, (MIN_PREFIX + 2,), generator=gen).tolist()
    examples = []
    for length in (9, 14, 11, 14, 6):
        ids = prefix + torch.randint(3, VOCAB, (length,), generator=gen).tolist()
        n = len(ids)
        examples.append(Example(ids, [n - 3, n - 1], [[1, 2, 3], [n - 6, n - 5], [len(prefix)]]))
    assert shared_prefix(examples) == len(prefix)
    recorder = Recorder(build(config_fn, "eager"))
    layers = [0, 1, 2]
    whole = extract(recorder, examples, layers, 2, per_head=True, logit_ids=[3, 4],
                    reuse_prefix=False)
    reused = extract(recorder, examples, layers, 2, per_head=True, logit_ids=[3, 4])
    for a, b in zip(whole[0], reused[0]):
        assert a.shape == b.shape and abs(a - b).max() < 1e-5
    assert (whole[1] == reused[1]).all()
    assert abs(whole[2] - reused[2]).max() < 1e-4
    # Any example that differs early, or queries inside the prefix, ends the sharing.
    assert shared_prefix(examples + [Example(prefix[:5], [4], [[0]])]) == 0
