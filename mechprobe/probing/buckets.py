"""Settings of a text task: its questions by bucket (ProofWriter's m, ARC's depth, a file's own
names), sampled per bucket, and the buckets with enough groups to probe."""

from mechprobe import seeds


def by_bucket(questions):
    """{bucket: questions in file order}, buckets in size order; questions in no bucket left out."""
    buckets = {}
    for q in questions:
        if q.bucket is not None:
            buckets.setdefault(q.bucket, []).append(q)
    return {b: buckets[b] for b in sorted(buckets, key=bucket_order)}


def probed_buckets(buckets, folds, grouped_by):
    """(bucket, its questions, their span in the flat order, their groups) for each bucket with
    enough groups for `folds`-fold cross-validation; the others are skipped with a line."""
    start = 0
    for bucket, members in buckets.items():
        span = slice(start, start + len(members))
        start += len(members)
        groups = [q.group for q in members]
        if len(set(groups)) < folds:
            print(f"skipping bucket {bucket}: {len(members)} examples from {len(set(groups))} "
                  f"{plural(grouped_by)}, fewer than {folds} folds")
            continue
        yield bucket, members, span, groups


def bucket_order(name):
    """'m=2' < 'm=12' by number; a user's own bucket names (jsonl) by name, after those."""
    number = name.split("=")[-1]
    return (0, int(number), name) if number.isdigit() else (1, 0, name)


def bucket_sizes(questions, split):
    """One line: how many questions each bucket holds before sampling, and how many fit none."""
    buckets = by_bucket(questions)
    outside = len(questions) - sum(len(members) for members in buckets.values())
    sizes = ", ".join(f"{b} {len(members)}" for b, members in buckets.items()) or "none"
    return f"{split}: questions per bucket: {sizes}; in no bucket: {outside}"


def sample_buckets(questions, per_bucket, seed):
    """{bucket: questions}, at most per_bucket each, sampled without replacement, in file order."""
    rng = seeds.rng(seed, seeds.BUCKETS)
    buckets = by_bucket(questions)
    order = list(buckets)
    sampled = {}
    for bucket in order:
        pool = buckets[bucket]
        if len(pool) > per_bucket:
            pool = [pool[i] for i in sorted(rng.choice(len(pool), size=per_bucket, replace=False))]
        sampled[bucket] = pool
    return sampled


def plural(word):
    """theory -> theories, group -> groups (the cross-validation units named in messages)."""
    return word[:-1] + "ies" if word.endswith("y") else word + "s"
