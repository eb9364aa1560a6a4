"""Configuration as plain data: dataclasses with defaults, TOML presets on top,
then `--set section.key=value` overrides, then validation.

The dotted names (`model.hidden`, `train.lr`, ...) are a public interface:
scripts and other tools address them, so rename nothing lightly.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import tomllib
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import tomli_w

from rnnlab import cell_registry
from rnnlab.bounds import MAX_LENGTH, MAX_SEED
from rnnlab.errors import UserError


@dataclass
class ModelConfig:
    # rnn: embedding → recurrent layers → softmax; nplm: Bengio et al.'s (2003) neural n-gram model,
    # the previous `context` words' embeddings → one hidden layer → softmax (rnnlab/models/nplm.py);
    # classifier: a sequence task's inputs → recurrent layers → linear on the last valid step
    # (rnnlab/models/classifier.py; needs task.kind)
    arch: str = "rnn"  # rnn | nplm | classifier
    context: int = 3  # nplm: words of context (a 4-gram)
    activation: str = "tanh"  # nplm: the hidden layer's, tanh | linear
    direct: bool = False  # nplm: direct connections from the embeddings to the output (Bengio's W x)
    # nplm: how the context is read. concat: Bengio's hidden layer over the concatenated embeddings;
    # recurrent: one layer of `cell` (hidden units) reads the c embeddings in order, its last h is the hidden layer
    reader: str = "concat"  # concat | recurrent
    bptt: int = 0  # nplm, reader=recurrent: backpropagate through the last k of the c steps only; 0: all c
    cell: str = "lstm"  # rnn | lstm | gru | phased_lstm | mgu | mingru | minlstm (rnnlab/cell_registry.py)
    hidden: int = 128  # units per recurrent layer
    layers: int = 2  # stacked recurrent layers
    embed: int = 0  # embedding size; 0 means "same as hidden"
    dropout: float = 0.0  # on non-recurrent connections only (Zaremba et al. 2014)
    tie_weights: bool = False  # decoder reuses the embedding matrix (needs embed == hidden)
    init: float = 0.0  # > 0: every weight ~ uniform(-init, init); 0: PyTorch's defaults
    nonlinearity: str = "tanh"  # rnn cell only: tanh | relu
    gru_z: str = "old"  # gru: "old": h = (1-z)n + z h_prev (Cho 2014, PyTorch); "new": h = z n + (1-z) h_prev
    gru_reset: str = "after"  # gru: "after": r ⊙ (W_hn h + b_hn) (PyTorch); "before": W_hn (r ⊙ h) + b_hn (Cho 2014)
    bias: str = "double"  # double: b_ih and b_hh (PyTorch); single: b_ih only
    impl: str = "fused"  # fused: torch.nn.LSTM/GRU/RNN kernels where the cell has one; explicit: the cell equations
    backend: str = "torch"  # torch | numpy
    forget_bias: float = 0.0  # added to the forget gate's bias at initialisation (cells with one: lstm, ...)
    # classifier, a gated cell: > 0 is chrono init of the carry gate's bias for this horizon in steps
    # (Tallec & Ollivier 2018; models/classifier.py:chrono_init); 0: PyTorch's init
    chrono: int = 0
    # Output layer. full: softmax over the vocabulary. adaptive: Grave et al.'s adaptive softmax
    # (rnnlab/models/softmax.py): an exact distribution that trains ~4x faster on 17k words;
    # the frequency-sorted vocabulary is cut at `cutoffs`, cluster k projects to hidden / div_value^k.
    softmax: str = "full"  # full | adaptive
    # adaptive: comma-separated, increasing, below the vocabulary size; "auto": chosen from the training
    # vocabulary's frequencies when training starts (full softmax for a small vocabulary; models/softmax.py)
    cutoffs: str = "auto"
    div_value: float = 4.0  # adaptive: how much smaller each tail cluster's projection is

    def kind_and_size(self) -> tuple[str, str]:
        """How reports name the model: ("lstm", "2×128"), or ("nplm-tanh", "3×16→128") for the n-gram model."""
        if self.arch == "nplm" and self.reader == "recurrent":
            return f"nplm-{self.cell}", f"{self.context}×{self.embed or self.hidden}→{self.hidden}"
        if self.arch == "nplm":
            return f"nplm-{self.activation}", f"{self.context}×{self.embed or self.hidden}→{self.hidden}"
        return self.cell, f"{self.layers}×{self.hidden}"


@dataclass
class DataConfig:
    path: str = ""  # a text file, or a directory with train.txt/valid.txt[/test.txt]; "" = bundled Grimm
    level: str = "char"  # char | word
    valid_fraction: float = 0.1  # single-file corpora: the last fraction of the text is validation
    test_fraction: float = 0.0  # single-file corpora: a fraction after validation kept as test
    strip_gutenberg: bool = True  # drop the Project Gutenberg header and licence
    lowercase: bool = False
    min_count: int = 1  # tokens seen fewer times in train become <unk>
    max_vocab: int = 0  # 0 = no limit; otherwise keep the most frequent
    batcher: str = "stream"  # stream: contiguous streams, state carried (truncated BPTT); window: random windows


@dataclass
class TaskConfig:
    """A synthetic sequence task instead of a text corpus (rnnlab/data/tasks.py); model.arch=classifier.
    Each epoch is `train_size` sequences: drawn afresh every epoch (palindrome, frequency) or one
    fixed training set (varlen). The valid and test sets are fixed (the same for every seed)."""

    kind: str = ""  # "": a text corpus (data.*) | palindrome | frequency | varlen
    train_size: int = 12800
    valid_size: int = 1000
    test_size: int = 10000
    length: int = 10  # palindrome: T; the model sees the first T-1 digits and names the last
    sampling: str = "regular"  # frequency: regular | irregular
    duration: float = 15.0  # frequency: ms of sine wave
    step: float = 0.125  # frequency: ms between regular samples (and the number of samples, duration / step)
    batching: str = "pad"  # varlen: pad | bucket | pack (rnnlab/data/tasks.py:TaskBatcher)
    median: float = 40.0  # varlen: lengths ~ round(LogNormal(log median, sigma)) clipped to [min_len, max_len]
    sigma: float = 0.8
    min_len: int = 5
    max_len: int = 400
    symbols: int = 64  # varlen: tokens are uniform over this many symbols; label 1 iff symbol 0 occurs


@dataclass
class TrainConfig:
    seed: int = 0
    batch_size: int = 64
    seq_len: int = 30  # truncated-BPTT length (tokens per segment)
    epochs: int = 1000  # upper bound; max_steps / max_minutes usually stop first
    max_steps: int = 0  # 0 = no step limit
    max_minutes: float = 0.0  # 0 = no time limit
    optimizer: str = "adam"  # sgd | adagrad | rmsprop | adam
    lr: float = 2e-3
    momentum: float = 0.0  # sgd / rmsprop
    nesterov: bool = False
    weight_decay: float = 0.0
    clip: float = 5.0  # max global gradient norm; 0 = no clipping
    # The loss that is differentiated: "mean" over all tokens, or "sum_time": summed over the
    # seq_len steps and averaged over the batch, as in Zaremba et al. (2014), whose lr and clip
    # (lr 1, clip 5) assume it; it scales the gradient by seq_len. Reported losses are per token.
    loss: str = "mean"
    schedule: str = "constant"  # constant | zaremba | plateau | cosine | step
    lr_decay: float = 2.0  # zaremba / plateau / step: lr is divided by this
    decay_after: int = 4  # zaremba: divide every epoch after this epoch
    decay_every: int = 10000  # step: divide every this many steps
    min_lr: float = 0.0  # cosine: final lr
    eval_every: int = 0  # evaluate every N steps; 0 = at each epoch end
    eval_batch_size: int = 16
    eval_seq_len: int = 256
    checkpoint_every: int = 500  # steps between 'last' checkpoints; 0 = only at the end
    checkpoint_minutes: float = 0.0  # also checkpoint after this many minutes; 0 = off
    samples: int = 4  # samples printed at evenly spaced points during training
    sample_length: int = 120
    max_faults: int = 10  # non-finite losses tolerated before aborting
    # > 0: stop once the validation accuracy reaches this (checked at every evaluation); 0: never
    stop_at_accuracy: float = 0.0
    patience: int = 0  # > 0: also stop after this many steps without a 1-point gain in validation accuracy
    threads: int = 0  # torch intra-op threads; 0 = auto (rnnlab/threads.py)
    device: str = "cpu"  # cpu | cuda | auto
    dtype: str = "float32"  # float32 | float64 (weights, state and optimizer)
    # bf16 autocast of the matmuls and the recurrent kernel (weights, optimizer, loss and
    # evaluation stay float32). It pays only on CPUs with native bf16 (AVX512-BF16 / AMX),
    # where it halves the step time; on AVX2-only CPUs it is far slower.
    # off | on (refused without native bf16) | auto (on where native, else off)
    bf16: str = "off"
    dist_timeout: float = 60.0  # seconds a process of a distributed run waits for the others


@dataclass
class GenerateConfig:
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    length: int = 200


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    name: str = "run"
    description: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())


SECTIONS = {"model": ModelConfig, "data": DataConfig, "task": TaskConfig, "train": TrainConfig, "generate": GenerateConfig}
TOP_LEVEL = {"name": str, "description": str}


@functools.cache
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)  # slow (it compiles every annotation): once per class


def all_keys() -> list[tuple[str, object, str]]:
    """(dotted key, default, type name) for every setting, for `rnnlab config`."""
    rows = [(k, "", t.__name__) for k, t in TOP_LEVEL.items()]
    for section, cls in SECTIONS.items():
        hints = _hints(cls)
        for f in dataclasses.fields(cls):
            rows.append((f"{section}.{f.name}", f.default, hints[f.name].__name__))
    return rows


def _suggest(key: str, options) -> str:
    close = difflib.get_close_matches(key, list(options), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _coerce(key: str, value, typ):
    """Convert a TOML value or a command-line string to the field's type."""
    if isinstance(value, str) and typ is not str:
        text = value.strip()
        if typ is bool:
            if text.lower() in ("true", "1", "yes", "on"):
                return True
            if text.lower() in ("false", "0", "no", "off"):
                return False
            raise UserError(f"{key} expects true or false, got '{value}'")
        try:
            if typ is int and "e" in text.lower():  # 1e6 is a fine integer, 1.5e0 is not
                number = float(text)
                if not number.is_integer():
                    raise ValueError(text)
                return int(number)
            return typ(text)
        except ValueError:
            raise UserError(f"{key} expects {typ.__name__}, got '{value}'") from None
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if typ is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise UserError(f"{key} expects {typ.__name__}, got {value!r}")
    return value


coerce = _coerce  # public for rnnlab/argtypes.py: command-line options parse numbers the same way


def apply(cfg: Config, key: str, value) -> None:
    """Set one dotted key, with type conversion and a suggestion for typos."""
    if key in TOP_LEVEL:
        setattr(cfg, key, _coerce(key, value, TOP_LEVEL[key]))
        return
    section, _, name = key.partition(".")
    if section not in SECTIONS or not name:
        known = [k for k, _, _ in all_keys()]
        raise UserError(f"unknown setting '{key}'{_suggest(key, known)}")
    cls = SECTIONS[section]
    hints = _hints(cls)
    if name not in hints:
        known = [f"{section}.{n}" for n in hints] + [k for k, _, _ in all_keys()]
        raise UserError(f"unknown setting '{key}'{_suggest(key, known)}")
    setattr(getattr(cfg, section), name, _coerce(key, value, hints[name]))


def merge(cfg: Config, data: dict, source: str) -> None:
    """Overlay a nested dict (from TOML) onto a config."""
    for key, value in data.items():
        if isinstance(value, dict):
            if key not in SECTIONS:
                raise UserError(f"{source}: unknown section [{key}]{_suggest(key, SECTIONS)}")
            for name, v in value.items():
                apply(cfg, f"{key}.{name}", v)
        else:
            apply(cfg, key, value)


MAX_TOML_BYTES = 1 << 20  # a resolved configuration is ~1 KB


def read_toml(path: Path, source: str) -> dict:
    """A TOML file from outside (--config, a run's config.toml): bounded in size, and
    tomllib's recursion on deeply nested arrays (RecursionError) is one line too."""
    try:
        if path.stat().st_size > MAX_TOML_BYTES:
            raise UserError(f"{source} is too large for a configuration ({path.stat().st_size:,} bytes)")
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"config file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{source} is not valid TOML: {e}") from None
    except RecursionError:
        raise UserError(f"{source} is not valid TOML: nested too deeply") from None
    except OSError as e:
        raise UserError(f"{source} is unreadable: {e.strerror or e}") from None


def preset_names() -> list[str]:
    files = resources.files("rnnlab.presets").iterdir()
    return sorted(f.name[: -len(".toml")] for f in files if f.name.endswith(".toml"))


def preset_path(name: str) -> Path:
    if name not in preset_names():
        raise UserError(f"unknown preset '{name}'{_suggest(name, preset_names())}; see 'rnnlab presets'")
    return Path(str(resources.files("rnnlab.presets") / f"{name}.toml"))


def preset_description(name: str) -> str:
    return read_toml(preset_path(name), f"preset {name}").get("description", "")


def load_config(preset: str | None = None, config_file: str | None = None, overrides=()) -> Config:
    """defaults <- preset <- config file <- --set overrides, then validate."""
    cfg = Config()
    if preset is None and config_file is None:
        preset = "grimm-char"
    if preset is not None:
        merge(cfg, read_toml(preset_path(preset), f"preset {preset}"), f"preset {preset}")
        cfg.name = preset
    if config_file is not None:
        merge(cfg, read_toml(Path(config_file), config_file), config_file)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--set expects key=value, got '{item}'")
        apply(cfg, key.strip(), value)
    validate(cfg)
    return cfg


def config_from_dict(data: dict) -> Config:
    """Rebuild a resolved config (as stored in a run directory)."""
    cfg = Config()
    merge(cfg, data, "stored config")
    validate(cfg)
    return cfg


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)


def _choice(key: str, value: str, options) -> None:
    if value not in options:
        raise UserError(f"{key} must be one of {', '.join(options)}; got '{value}'{_suggest(value, options)}")


def validate(cfg: Config) -> None:
    m, d, t, g = cfg.model, cfg.data, cfg.train, cfg.generate
    for section, cls in SECTIONS.items():  # nan and inf pass every range check below
        for f in dataclasses.fields(cls):
            value = getattr(getattr(cfg, section), f.name)
            _check(not isinstance(value, float) or math.isfinite(value), f"{section}.{f.name} must be a finite number, got {value}")
    # The name becomes runs/NAME-TIMESTAMP: a separator would put the run elsewhere ('../../x').
    _check(not any(c in cfg.name for c in "/\\\0"),
           f"name must not contain '/', '\\' or NUL (it names the run directory), got {cfg.name!r}")
    _choice("model.arch", m.arch, ("rnn", "nplm", "classifier"))
    _choice("model.activation", m.activation, ("tanh", "linear"))
    _check(m.context >= 1, f"model.context must be >= 1, got {m.context}")
    if m.arch == "nplm":
        _check(not m.tie_weights, "model.arch=nplm does not tie weights (set model.tie_weights=false)")
        _check(not m.direct or m.softmax == "full", "model.direct needs model.softmax=full")
        _check(m.backend == "torch" or m.dropout == 0, "model.arch=nplm with model.backend=numpy has no dropout")
        _choice("model.reader", m.reader, ("concat", "recurrent"))
        _check(m.reader == "concat" or m.backend == "torch",
               "model.reader=recurrent has no NumPy twin (set model.backend=torch)")
        _check(m.reader == "concat" or not m.direct, "model.direct needs model.reader=concat")
        _check(0 <= m.bptt <= m.context, f"model.bptt must be in [0, model.context={m.context}], got {m.bptt}")
    _choice("model.cell", m.cell, tuple(cell_registry.CELLS))
    for option, values in cell_registry.OPTIONS.items():  # nonlinearity, gru_z, gru_reset
        _choice(f"model.{option}", getattr(m, option), values)
    _check(not m.forget_bias or cell_registry.CELLS[m.cell].forget_gate, f"model.forget_bias needs a cell with a "
           f"forget gate ({', '.join(n for n, c in cell_registry.CELLS.items() if c.forget_gate)}); {m.cell} has none")
    _choice("model.bias", m.bias, ("double", "single"))
    _choice("model.impl", m.impl, ("fused", "explicit"))
    _choice("model.backend", m.backend, ("torch", "numpy"))
    _check(m.hidden > 0, f"model.hidden must be positive, got {m.hidden}")
    _check(m.layers > 0, f"model.layers must be positive, got {m.layers}")
    _check(m.embed >= 0, f"model.embed must be >= 0 (0 = same as hidden), got {m.embed}")
    _check(0.0 <= m.dropout < 1.0, f"model.dropout must be in [0, 1), got {m.dropout}")
    _check(m.init >= 0.0, f"model.init must be >= 0, got {m.init}")
    if m.tie_weights:
        _check(m.embed in (0, m.hidden), "model.tie_weights needs model.embed equal to model.hidden (or 0)")
    _choice("model.softmax", m.softmax, ("full", "adaptive"))
    if m.softmax == "adaptive":
        if m.cutoffs != "auto":
            parse_cutoffs(m.cutoffs)
        _check(m.div_value >= 1.0, f"model.div_value must be >= 1, got {m.div_value}")
        _check(not m.tie_weights, "model.softmax=adaptive cannot tie weights (set model.tie_weights=false)")
        _check(m.backend == "torch", "model.softmax=adaptive needs model.backend=torch")
    validate_task(cfg)
    _choice("data.level", d.level, ("char", "word"))
    _choice("data.batcher", d.batcher, ("stream", "window"))
    _check(0.0 < d.valid_fraction < 1.0, f"data.valid_fraction must be in (0, 1), got {d.valid_fraction}")
    _check(0.0 <= d.test_fraction < 1.0 - d.valid_fraction, "data.test_fraction must be >= 0 and leave room for training text")
    _check(d.min_count >= 1, f"data.min_count must be >= 1, got {d.min_count}")
    _check(d.max_vocab >= 0, f"data.max_vocab must be >= 0, got {d.max_vocab}")
    specials = 1 if d.level == "char" else 2  # <unk> (never sampled from a char model), and a word model's <eos>
    _check(d.max_vocab == 0 or d.max_vocab > specials,
           f"data.max_vocab={d.max_vocab} leaves no token to sample besides the {specials} special token(s); "
           f"use 0 (no limit) or at least {specials + 1}")
    _choice("train.optimizer", t.optimizer, ("sgd", "adagrad", "rmsprop", "adam"))
    _choice("train.schedule", t.schedule, ("constant", "zaremba", "plateau", "cosine", "step"))
    _choice("train.device", t.device, ("cpu", "cuda", "auto"))
    _choice("train.dtype", t.dtype, ("float32", "float64"))
    _choice("train.loss", t.loss, ("mean", "sum_time"))
    _choice("train.bf16", t.bf16, ("off", "on", "auto"))
    _check(t.bf16 != "on" or t.dtype == "float32", "train.bf16 autocasts float32 matmuls; it needs train.dtype=float32")
    _check(t.bf16 != "on" or m.backend == "torch", "train.bf16=on needs model.backend=torch")
    _check(t.dist_timeout > 0, f"train.dist_timeout must be positive, got {t.dist_timeout}")
    for key in ("batch_size", "seq_len", "epochs", "eval_batch_size", "eval_seq_len", "max_faults", "decay_every"):
        _check(getattr(t, key) > 0, f"train.{key} must be positive, got {getattr(t, key)}")
    for key in ("max_steps", "eval_every", "checkpoint_every", "samples", "threads", "decay_after"):
        _check(getattr(t, key) >= 0, f"train.{key} must be >= 0, got {getattr(t, key)}")
    for key in ("max_minutes", "checkpoint_minutes", "momentum", "weight_decay", "clip", "min_lr"):
        _check(getattr(t, key) >= 0, f"train.{key} must be >= 0, got {getattr(t, key)}")
    _check(t.lr > 0, f"train.lr must be positive, got {t.lr}")
    _check(t.lr_decay >= 1.0, f"train.lr_decay must be >= 1 (the lr is divided by it), got {t.lr_decay}")
    _check(0 <= t.seed <= MAX_SEED, f"train.seed must be between 0 and 2**63-1, got {t.seed}")
    _check(0 < t.sample_length <= MAX_LENGTH, f"train.sample_length must be between 1 and {MAX_LENGTH:,}, got {t.sample_length}")
    validate_generation(g.temperature, g.top_k, g.top_p, g.length, prefix="generate.")


TASKS = ("palindrome", "frequency", "varlen")


def validate_task(cfg: Config) -> None:
    """A sequence task and the classifier go together; the rest of the task's settings are checked here."""
    m, k, t = cfg.model, cfg.task, cfg.train
    _choice("task.kind", k.kind, ("",) + TASKS)
    _check((m.arch == "classifier") == bool(k.kind), "model.arch=classifier and task.kind go together: "
           f"a sequence task trains a classifier, a text corpus a language model (got model.arch={m.arch}, "
           f"task.kind='{k.kind}')")
    _check(m.chrono >= 0, f"model.chrono must be >= 0 (0 = off), got {m.chrono}")
    _check(0.0 <= t.stop_at_accuracy <= 1.0, f"train.stop_at_accuracy must be in [0, 1] (0 = off), got {t.stop_at_accuracy}")
    _check(t.patience >= 0, f"train.patience must be >= 0 (0 = off), got {t.patience}")
    if not k.kind:
        return
    _check(m.softmax == "full" and not m.tie_weights, "model.arch=classifier has a linear head: "
           "model.softmax=full and model.tie_weights=false")
    _check(m.init == 0 and not m.forget_bias, "model.arch=classifier starts from PyTorch's init (model.chrono "
           "sets the carry gate's bias): model.init and model.forget_bias are the language model's")
    _check(m.backend == "torch" or m.layers == 1, "model.arch=classifier with model.backend=numpy has one layer "
           "(set model.layers=1)")
    _check(t.loss == "mean", "a sequence task's loss is the mean over sequences: train.loss=mean")
    _choice("task.sampling", k.sampling, ("regular", "irregular"))
    _choice("task.batching", k.batching, ("pad", "bucket", "pack"))
    cell = cell_registry.get(m.cell)
    kernel = cell.fused_kernel({option: getattr(m, option) for option in cell.options})
    _check(k.batching != "pack" or (m.impl == "fused" and kernel is not None and m.backend == "torch"),
           "task.batching=pack runs the fused kernel: it needs model.impl=fused, a cell with one "
           "(rnn, lstm, gru) and model.backend=torch")
    for key in ("train_size", "valid_size", "test_size", "min_len", "symbols"):
        _check(getattr(k, key) > 0, f"task.{key} must be positive, got {getattr(k, key)}")
    _check(k.length >= 2, f"task.length must be >= 2, got {k.length}")
    _check(k.max_len >= k.min_len, f"task.max_len must be >= task.min_len, got {k.max_len} < {k.min_len}")
    for key in ("duration", "step", "median", "sigma"):
        _check(getattr(k, key) > 0, f"task.{key} must be positive, got {getattr(k, key)}")
    _check(k.duration / k.step >= 1, "task.duration / task.step must give at least one sample")


def parse_cutoffs(text: str) -> list[int]:
    """model.cutoffs "2000,10000" → [2000, 10000]."""
    try:
        cutoffs = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise UserError(f"model.cutoffs must be comma-separated integers such as '2000,10000', got '{text}'") from None
    _check(bool(cutoffs) and cutoffs[0] > 0 and cutoffs == sorted(set(cutoffs)),
           f"model.cutoffs must be increasing positive integers such as '2000,10000', got '{text}'")
    return cutoffs


MIN_TEMPERATURE, MAX_TEMPERATURE, MIN_TOP_P = 1e-3, 100.0, 1e-6  # beyond them float32 softmax underflows


def validate_generation(temperature: float, top_k: int, top_p: float, length: int, prefix: str = "") -> None:
    _check(temperature == 0 or MIN_TEMPERATURE <= temperature <= MAX_TEMPERATURE,
           f"{prefix}temperature must be 0 (greedy) or in [{MIN_TEMPERATURE:g}, {MAX_TEMPERATURE:g}], got {temperature}")
    _check(top_k >= 0, f"{prefix}top_k must be >= 0 (0 = off), got {top_k}")
    _check(MIN_TOP_P <= top_p <= 1, f"{prefix}top_p must be in [{MIN_TOP_P:g}, 1], got {top_p}")
    _check(0 < length <= MAX_LENGTH, f"{prefix}length must be between 1 and {MAX_LENGTH:,}, got {length}")
