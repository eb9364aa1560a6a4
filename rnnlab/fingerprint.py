"""What a checkpoint must share with the run that resumes it.

A resumed run is bitwise identical to an uninterrupted one only if it
computes the same thing: the same corpus and every setting that enters the
computation. A checkpoint therefore records `fingerprint(...)`: size and
SHA-256 of each split's text (computed by `load_corpus` from the text it
read, rnnlab/data/corpus.py), and the resolved bf16 switch (train.bf16=auto
resolves per CPU). Its metadata already holds the full configuration.
`resume_changes` compares both with the run about to resume and names every
difference; only the settings in `RESUMABLE` may change.
"""

from __future__ import annotations

from rnnlab.config import Config

# Settings that may change on resume: budgets and bookkeeping, not the computation.
# (data.path may also change when the corpus it names is the same, byte for byte.)
RESUMABLE = ("train.max_steps", "train.epochs", "train.max_minutes", "train.eval_every", "train.checkpoint_every",
             "train.checkpoint_minutes", "train.threads", "name", "description")


def fingerprint(data: dict, bf16: bool) -> dict:
    """`data`: the run's data source's fingerprint (rnnlab/data/source.py): a corpus's split
    sizes and hashes, {} for a sequence task (its data is generated from its task.* settings
    and seed, which the configuration comparison covers)."""
    return {"corpus": data, "bf16": bool(bf16)}


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def resume_changes(meta: dict, cfg: Config, current: dict) -> list[str]:
    """Every difference between a checkpoint (`meta`) and the run resuming it
    (`cfg`, whose fingerprint is `current`) that resuming must refuse."""
    stored = meta.get("fingerprint")  # absent from checkpoints older than fingerprints: config only
    before, after = _flat(meta["config"]), _flat(cfg.to_dict())
    ignored = set(RESUMABLE) | ({"data.path"} if stored else set())
    changes = [f"{k} {before.get(k, '(unset)')!r} -> {after.get(k, '(unset)')!r}"
               for k in sorted(before.keys() | after.keys()) if k not in ignored and before.get(k) != after.get(k)]
    if stored:
        old, new = stored.get("corpus", {}), current["corpus"]
        for split in sorted(old.keys() | new.keys()):
            if old.get(split) != new.get(split):
                changes.append(f"the corpus's {split} split (size or SHA-256)")
        if stored.get("bf16") != current["bf16"]:
            changes.append(f"bf16 autocast {'on' if stored.get('bf16') else 'off'} -> "
                           f"{'on' if current['bf16'] else 'off'}")
    return changes


def refusal(run_dir, changes: list[str]) -> str:
    return (f"cannot resume {run_dir}: changed since its checkpoint: {'; '.join(changes)} "
            f"(only {', '.join(RESUMABLE)} may change on resume)")
