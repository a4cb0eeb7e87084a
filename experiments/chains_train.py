"""Train a tiny GPT-2 from scratch on the chains task (mechprobe/tasks/chains.py); save it for
the probe. docs/CHAINS_NOTES.md has the recipes tried and their numbers.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONPATH=. python experiments/chains_train.py \\
        --out runs/chains --minutes 25 --n-test 300      # the recipe of r8 (docs/CHAINS_NOTES.md)

Self-contained loop (not mechprobe/training/loop.py): every step draws a fresh batch (seeded by
(seed, step)) of one hop count, so there is no padding and no fixed training pool. Curriculum:
hop counts unlock one at a time, the next once the newest reaches --unlock test accuracy; a
step's hop count is drawn among the unlocked ones, the newest with weight --newest.
Test accuracy: the value token with the highest logit among the ten values (as the probe scores
a task's choices), on `chains.generate(..., split="test")` prompts tokenized as the probe does.
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from mechprobe.tasks import chains  # noqa: E402
from mechprobe.tiny_models import TinyConfig, build_tiny  # noqa: E402


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--max-hops", type=int, default=4)
    p.add_argument("--chains", type=int, default=chains.N_CHAINS)
    p.add_argument("--layers", type=int, default=None, help="default: max hops + 1")
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--steps", type=int, default=12000, help="schedule length (the run may end "
                   "sooner: --minutes, or every hop count at --stop-at)")
    p.add_argument("--minutes", type=float, default=None, help="stop after this much training")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--unlock", type=float, default=0.9, help="curriculum: add the next hop count "
                   "once the newest reaches this test accuracy (1.01: all from the start)")
    p.add_argument("--newest", type=float, default=0.5, help="share of steps on the newest "
                   "unlocked hop count (the rest uniform over the older ones)")
    p.add_argument("--stop-at", type=float, default=0.99, help="stop once every hop count "
                   "reaches this test accuracy")
    p.add_argument("--queries", type=int, default=8, help="training queries per prompt (dense "
                   "supervision: `? var value` after the first, drawn with replacement)")
    p.add_argument("--any-link", action=argparse.BooleanOptionalAction, default=True, help="training queries ask any variable, "
                   "not only the chains' last ones (shorter hops inside longer prompts)")
    p.add_argument("--mimetic", type=float, default=1.0, help="initialise W_Q = W_K (scale "
                   "MIMETIC/sqrt(dim)) in layers 1.. so that attention starts matching alike "
                   "vectors (0: GPT-2's own init)")
    p.add_argument("--bind-weight", type=float, default=1.0, help="weight of the auxiliary loss: "
                   "layer 0's output at each statement's rhs predicts its lhs (0: off)")
    p.add_argument("--lookup-weight", type=float, default=1.0, help="weight of the auxiliary "
                   "loss: layer k's output at each query predicts what k lookups reach (the "
                   "variable k links nearer the constant), k = 1..layers-2 (0: off)")
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args()


def lr_factor(step, warmup, steps):
    """Linear warm-up, then cosine decay to a tenth."""
    if step < warmup:
        return (step + 1) / warmup
    done = min(1.0, (step - warmup) / max(1, steps - warmup))
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * done))


@torch.inference_mode()
def accuracy(model, data, candidates, batch=500):
    model.eval()
    x, y = data
    correct = 0
    for i in range(0, len(x), batch):
        logits = model(input_ids=x[i:i + batch], logits_to_keep=1).logits[:, -1]
        correct += (candidates[logits[:, candidates].argmax(-1)] == y[i:i + batch]).sum().item()
    model.train()
    return correct / len(x)


def mimetic_init(model, scale, seed):
    """W_Q = W_K = a random (d, d) matrix of std scale/sqrt(d) in every layer but the first:
    the product W_Q W_K^T starts close to scale^2 x identity, so a query already attends to keys
    like itself (Trockman & Kolter 2023, "Mimetic initialization of self-attention layers").
    Without it the lookup's query-key match sits on a long plateau (docs/CHAINS_NOTES.md)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for block in model.transformer.h[1:]:
            weight = block.attn.c_attn.weight            # (d, 3d): query, key, value columns
            d = weight.shape[0]
            shared = torch.randn(d, d, generator=generator) * scale / d ** 0.5
            weight[:, :d] = shared
            weight[:, d:2 * d] = shared


def binding_loss(model, hidden_states, x, n_statements):
    """Cross-entropy of each statement's lhs token read (through ln_f and the tied head) from layer
    0's output at its rhs position: the rhs learns which variable it defines before the layers
    that look it up."""
    rhs = torch.arange(2, 4 * n_statements, 4)
    logits = model.lm_head(model.transformer.ln_f(hidden_states[1][:, rhs]))
    return F.cross_entropy(logits.flatten(0, 1), x[:, rhs - 2].flatten())


def main():
    args = parse()
    torch.set_num_threads(args.threads)
    hops = list(range(1, args.max_hops + 1))
    settings = {h: chains.Setting(h, args.chains) for h in hops}
    layers = args.layers or args.max_hops + 1
    tiny = TinyConfig(n_layer=layers, n_head=args.heads, n_embd=args.dim,
                      n_positions=max(64, settings[hops[-1]].n_tokens + 3 * args.queries))
    model, tokenizer = build_tiny(chains.WORDS, tiny, seed=args.seed)
    assert all(tokenizer.convert_tokens_to_ids(w) == i for w, i in chains.TOKEN_ID.items())
    if args.mimetic:
        mimetic_init(model, args.mimetic, args.seed)
    candidates = torch.tensor([chains.TOKEN_ID[v] for v in chains.VALUES])
    test = {h: chains.encode(tokenizer, chains.generate(s, args.n_test, args.seed, "test"))
            for h, s in settings.items()}

    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay,
                                  betas=(0.9, 0.98))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, args.warmup, args.steps))
    unlocked = 1 if args.unlock <= 1 else len(hops)
    history, losses = [], []
    train_seconds, clock = 0.0, time.perf_counter()
    bar = tqdm(range(args.steps), desc="chains", dynamic_ncols=True)
    for step in bar:
        rng = np.random.default_rng([args.seed, 1000, step])
        if unlocked == 1 or rng.random() < args.newest:
            h = hops[unlocked - 1]
        else:
            h = hops[rng.integers(unlocked - 1)]
        lookups = layers - 2 if args.lookup_weight else 0
        x, y, positions, *reached = chains.token_batch(rng, settings[h], args.batch, args.queries,
                                                       args.any_link, lookups)
        x = torch.from_numpy(x)
        out = model.transformer(input_ids=x, output_hidden_states=bool(args.bind_weight
                                                                       or lookups))
        logits = model.lm_head(out.last_hidden_state[:, torch.from_numpy(positions)])
        loss = F.cross_entropy(logits.flatten(0, 1), torch.from_numpy(y).flatten())
        if args.bind_weight:
            loss = loss + args.bind_weight * binding_loss(model, out.hidden_states, x,
                                                          settings[h].n_statements)
        if lookups:
            at = torch.from_numpy(positions)
            for k in range(1, lookups + 1):
                logits_k = model.lm_head(model.transformer.ln_f(out.hidden_states[k + 1][:, at]))
                target = torch.from_numpy(reached[0][:, :, k - 1])
                loss = loss + args.lookup_weight * F.cross_entropy(logits_k.flatten(0, 1),
                                                                   target.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        done = step + 1
        out_of_time = args.minutes and train_seconds + time.perf_counter() - clock > 60 * args.minutes
        if done % args.eval_every == 0 or done == args.steps or out_of_time:
            train_seconds += time.perf_counter() - clock
            acc = {h: accuracy(model, test[h], candidates) for h in hops}
            history.append({"step": done, "seconds": round(train_seconds, 1),
                            "loss": round(float(np.mean(losses)), 4), "unlocked": hops[unlocked - 1],
                            **{f"hops={h}": a for h, a in acc.items()}})
            losses = []
            tqdm.write(json.dumps(history[-1]))
            bar.set_postfix(loss=history[-1]["loss"], upto=hops[unlocked - 1],
                            acc=" ".join(f"{acc[h]:.2f}" for h in hops))
            while unlocked < len(hops) and acc[hops[unlocked - 1]] >= args.unlock:
                unlocked += 1
            clock = time.perf_counter()
            if out_of_time or all(a >= args.stop_at for a in acc.values()):
                break
    bar.close()

    model_dir = os.path.join(args.out, "model")
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    final = history[-1]
    results = {"task": "chains", "n_chains": args.chains, "hops": hops,
               "test_accuracy": {f"hops={h}": final[f"hops={h}"] for h in hops},
               "n_test": args.n_test, "steps": final["step"], "train_seconds": final["seconds"],
               "threads": args.threads, "model": {"n_layer": layers, "n_head": args.heads,
                                                   "n_embd": args.dim},
               "args": vars(args), "history": history}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(f"\n{'hops':>5} {'test acc':>9}   ({final['step']} steps, {final['seconds']:.0f} s "
          f"training on {args.threads} thread(s))")
    for h in hops:
        print(f"{h:>5} {final[f'hops={h}']:>9.3f}")
    print(f"model: {model_dir}")


if __name__ == "__main__":
    main()
