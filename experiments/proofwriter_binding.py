"""Learning-speed diagnostic for the tiny ProofWriter model: how many steps does it
need to learn *binding*, that is, which subject a predicate word belongs to?

    python experiments/proofwriter_binding.py                        # llama-init vs local-nope, 2,000 steps
    python experiments/proofwriter_binding.py --models llama,local    # the first diagnosis's models
    python experiments/proofwriter_binding.py --steps 300             # a quick look

Every step draws fresh theories of 1-4 facts and no rules (proofwriter_gen.random_theory) and
asks, per theory, as many of its facts (True) as recombinations of their words that are not facts
(False): "Dave is blue. Gary is round." asked "Dave is round." Knowing which words occur is worth
nothing here, so training accuracy leaves 0.5 only once the model binds. The models, all of the
offline run's size (4 layers x 128) and trained on the same batches:

- llama: the Llama of finetune_gpt2.py --task proofwriter (transformers' default initialisation,
  weights of std 0.02);
- llama-init: the same with weights of std 1/sqrt(hidden size), about 0.088 at 128 wide;
- local: Qwen3 architecture whose first layer attends to a sliding window of 4 tokens
  (`layer_types`), so that every word sees its own short statement; default initialisation;
- local-nope: SmolLM3 architecture with the same local first layer, no rotary position in the
  other layers (`no_rope_layers`, so they match by content only), their key projection started
  equal to the query projection (so that a token at first attends to tokens like it), and
  weights of std 1/sqrt(hidden size).

Prints the training accuracy of each window of --every steps side by side, and the first window
at or above 0.6.
"""

import argparse
import copy
import multiprocessing
import random
import sys
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence
from tqdm.auto import tqdm

from mechprobe.cli import format_table
from mechprobe.tiny_models import TINY_TEXT as TINY
from mechprobe.tiny_models import build_word_llama
from mechprobe.tasks import proofwriter
from mechprobe.tasks import proofwriter_gen as gen
from mechprobe.training.loop import Settings, lr_factor, padded_hidden

MAX_FACTS = 4
WINDOW = 4          # tokens a local layer sees, itself included: "The cat is big" fits
ANSWER_TOKENS = 5   # the answer loss at the last 5 tokens (".: True or False ?"), not only at "?"


def binding_questions(theory, rng):
    """(sentence, answer) pairs: the facts, and as many non-facts made of the facts' own words."""
    facts = set(theory.facts)
    stated = sorted({atom[1:] for atom in theory.facts})
    recombined = [(subject,) + key for subject in theory.domain for key in stated
                  if key[1] != subject and (subject,) + key not in facts]
    n = min(len(facts), len(recombined))
    picked = [(atom, True) for atom in rng.sample(theory.facts, n)]
    picked += [(atom, False) for atom in rng.sample(recombined, n)]
    rng.shuffle(picked)
    return [(gen.sentence(theory.kind, atom), answer) for atom, answer in picked]


def batch(rng, theories):
    """Prompts in the probe's format and their answers, from `theories` fresh theories (ones
    with no recombination, such as a single fact, are skipped)."""
    prompts, answers = [], []
    used = 0
    while used < theories:
        theory, _ = gen.random_theory(0, rng, max_facts=MAX_FACTS, max_rules=0)
        questions = binding_questions(theory, rng)
        used += bool(questions)
        context = " ".join(gen.sentence(theory.kind, atom) for atom in theory.facts)
        for sentence, answer in questions:
            prompts.append(f"{context} {sentence}{proofwriter.SUFFIX}")
            answers.append(answer)
    return prompts, answers


def vocabulary_texts():
    """Every fact sentence the generator can write (so every word a binding prompt can use)."""
    texts = [proofwriter.SUFFIX]
    for kind, entities in (("Att", gen.PEOPLE), ("Rel", gen.ANIMALS)):
        texts += [gen.sentence(kind, (s,) + key) for s in entities
                  for key in gen._keys(kind, entities) if key[1] != s]
    return texts


MODELS = ("llama", "llama-init", "local", "local-nope")


def variant(llama, name):
    """The model `name` of MODELS, of the Llama's size (a fresh one; the Llama itself for "llama")."""
    from transformers import (LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM, SmolLM3Config,
                              SmolLM3ForCausalLM)

    c = llama.config
    if name == "llama":
        return llama
    wide = c.hidden_size ** -0.5    # std 1/sqrt(d): attention scores of order 1 from the first step
    if name == "llama-init":
        config = copy.deepcopy(c)
        config.initializer_range = wide
        return LlamaForCausalLM(config)
    layer_types = ["sliding_attention"] + ["full_attention"] * (c.num_hidden_layers - 1)
    size = dict(vocab_size=c.vocab_size, hidden_size=c.hidden_size,
                intermediate_size=c.intermediate_size, num_hidden_layers=c.num_hidden_layers,
                num_attention_heads=c.num_attention_heads, num_key_value_heads=c.num_key_value_heads,
                max_position_embeddings=c.max_position_embeddings, pad_token_id=c.pad_token_id,
                bos_token_id=c.bos_token_id, eos_token_id=c.eos_token_id, tie_word_embeddings=False,
                use_sliding_window=True, sliding_window=WINDOW, layer_types=layer_types)
    if name == "local":
        return Qwen3ForCausalLM(Qwen3Config(head_dim=c.hidden_size // c.num_attention_heads, **size))
    no_rope = [1] + [0] * (c.num_hidden_layers - 1)     # 0: this layer has no rotary position
    model = SmolLM3ForCausalLM(SmolLM3Config(initializer_range=wide, no_rope_layers=no_rope, **size))
    with torch.no_grad():            # W_k = W_q: at first every token attends most to tokens like it
        for layer in model.model.layers[1:]:
            layer.self_attn.k_proj.weight.copy_(layer.self_attn.q_proj.weight)
    return model


def train(name, model, tokenizer, args):
    """Training accuracy (at the last token) of each window of args.every steps."""
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)                 # the same batches for every model
    word_ids = [tokenizer.convert_tokens_to_ids(w) for w in ("True", "False")]
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-3)
    settings = Settings(lr=args.lr, batch_size=0, steps=args.steps, warmup=100,
                        eval_every=args.every, seed=args.seed, schedule="linear")
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, partial(lr_factor, settings))
    model.train()
    windows, correct = [], []
    for step in tqdm(range(args.steps), desc=name, dynamic_ncols=True):
        prompts, answers = batch(rng, args.theories)
        rows = [torch.tensor(tokenizer(p)["input_ids"]) for p in prompts]
        lengths = torch.tensor([len(r) for r in rows])
        x = pad_sequence(rows, batch_first=True, padding_value=tokenizer.pad_token_id)
        y = torch.tensor([word_ids[0] if a else word_ids[1] for a in answers])
        _, _, hidden = padded_hidden(model, x, lengths)
        rows_at = torch.arange(len(rows))
        logits = [model.lm_head(hidden[rows_at, lengths - 1 - k]) for k in range(ANSWER_TOKENS)]
        loss = sum(F.cross_entropy(lg, y) for lg in logits) / ANSWER_TOKENS
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        correct += (logits[0].argmax(-1) == y).tolist()
        if (step + 1) % args.every == 0:
            windows.append(float(np.mean(correct)))
            correct = []
    return windows


def run_model(name, args):
    """Build the tokenizer and the model `name` (one of MODELS), train it, return its curve."""
    torch.set_num_threads(1)
    llama, tokenizer = build_word_llama(vocabulary_texts(), hidden=TINY.n_embd, layers=TINY.n_layer,
                                        heads=TINY.n_head, kv_heads=TINY.n_head,
                                        intermediate=4 * TINY.n_embd,
                                        max_positions=TINY.n_positions, seed=args.seed)
    torch.manual_seed(args.seed)
    return train(name, variant(llama, name), tokenizer, args)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="llama-init,local-nope",
                        help=f"comma-separated, from {', '.join(MODELS)}")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--every", type=int, default=250)
    parser.add_argument("--theories", type=int, default=16, help="theories per step")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.steps <= 100 or args.every > args.steps:
        sys.exit("error: --steps must exceed the 100 warm-up steps and be at least --every")
    names = args.models.split(",")
    unknown = [name for name in names if name not in MODELS]
    if unknown:
        sys.exit(f"error: unknown model(s) {', '.join(unknown)} in --models: "
                 f"pick from {', '.join(MODELS)}")
    # One process per model, one thread each: two train side by side on a 2-core machine, and
    # batches of small matrices gain nothing from a second thread.
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        curves = dict(zip(names, pool.starmap(run_model, [(name, args) for name in names])))
        pool.close()           # let the workers exit on their own, not terminate()d mid-cleanup
        pool.join()

    rows = [{"steps": (i + 1) * args.every, **{k: f"{v[i]:.3f}" for k, v in curves.items()}}
            for i in range(len(next(iter(curves.values()))))]
    print(format_table(rows, ["steps", *curves]))
    for name, curve in curves.items():
        first = next(((i + 1) * args.every for i, a in enumerate(curve) if a >= 0.6), None)
        print(f"binding: {name} first window >= 0.6 at step {first}, last window {curve[-1]:.3f}")


if __name__ == "__main__":
    main()
