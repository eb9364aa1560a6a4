"""Upper bounds on sizes that users choose, checked before anything is allocated.

A model too large for the machine must be one line, not an allocator error
after minutes of loading: `check_model_memory` estimates the parameter
memory from the configuration alone (the cell table's closed-form count
per layer, rnnlab/cell_registry.py, plus embedding and decoder) and compares it with the
memory available now.
"""

from __future__ import annotations

import os

from rnnlab import cell_registry
from rnnlab.errors import UserError

MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes a signed 64-bit value
MAX_LENGTH = 1_000_000  # tokens of one generated sample (generate, report samples, training samples)
TRAINING_COPIES = 5  # weights, gradients, two Adam moments, the checkpoint being written
INFERENCE_COPIES = 2  # the tensors read from the checkpoint and the model they are copied into
PARALLEL_PER_CPU = 4  # threads (train.threads), processes (--nproc) or jobs (--jobs) per usable CPU, at most
MAX_SAMPLES = 1_000  # samples drawn at once (generate --num, Run.generate(num=...)): one batch of states and logits
MAX_STOP = 1_000  # characters of a stop string (generate --stop, Run.generate(stop=...); serve allows 100)
MAX_RECORD = 20_000  # tokens of one recording of a network's states (rnnlab inspect units|saturation|surprise)


def max_parallel() -> int:
    """The most threads, processes or jobs one command may start: PARALLEL_PER_CPU
    per CPU this process may run on (its affinity, which containers and taskset
    narrow). More only oversubscribes the cores; a million threads crashed libgomp."""
    from rnnlab.threads import usable_cpus

    return PARALLEL_PER_CPU * len(usable_cpus())


def parameter_count(model, vocab_size: int) -> int:
    """Parameters of a language model with `model` (a ModelConfig), without building it.
    An upper bound for the adaptive softmax, whose tail projections are smaller."""
    embed = model.embed or model.hidden
    cell = cell_registry.get(model.cell)
    recurrent = (cell.count_params(embed, model.hidden, model.bias)
                 + (model.layers - 1) * cell.count_params(model.hidden, model.hidden, model.bias))
    decoder = 0 if model.tie_weights else model.hidden * vocab_size
    return vocab_size * embed + recurrent + decoder + vocab_size


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (MemAvailable), None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_model_memory(model, vocab_size: int, dtype_bytes: int = 4, copies: int = TRAINING_COPIES) -> None:
    need = parameter_count(model, vocab_size) * dtype_bytes * copies
    free = available_memory()
    if free is not None and need > free:
        raise UserError(f"the model is too large for this machine: {parameter_count(model, vocab_size):,} parameters "
                        f"need about {need / 2**30:,.1f} GiB, {free / 2**30:,.1f} GiB are available "
                        "(lower model.hidden, model.layers, model.embed or data.max_vocab)")


def check_recording_memory(tokens: int, layers: int, signals: int, hidden: int) -> None:
    """A recording holds tokens × layers × signals × hidden float32 values, made three times over
    (the steps' tensors, their stack, the NumPy copy): refused in one line when that exceeds the
    memory available now (rnnlab/states/record.py)."""
    need = tokens * layers * signals * hidden * 4 * 3
    free = available_memory()
    if free is not None and need > free:
        raise UserError(f"recording {tokens:,} tokens of {layers} layer(s) × {signals} signals × {hidden} units needs "
                        f"about {need / 2**30:,.1f} GiB, {free / 2**30:,.1f} GiB are available (record fewer tokens)")
