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
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import tomli_w

from rnnlab import cell_registry
from rnnlab.bounds import MAX_LENGTH, MAX_SEED, PARALLEL_PER_CPU, max_parallel
from rnnlab.errors import UserError


def setting(default, meaning: str, choices: tuple | Callable[[], tuple] = ()):
    """A configuration field: its default, what it means and, for a fixed set of values, the allowed
    ones (default first), or a function giving them when asked (model.cell: the cell table's cells).
    `rnnlab config` prints the meaning and the values; validate() checks the values."""
    return field(default=default, metadata={"meaning": meaning, "choices": choices})


def choices_of(f) -> tuple:
    """The allowed values of a `setting` field (() where any value of its type is allowed)."""
    choices = f.metadata.get("choices", ())
    return choices() if callable(choices) else choices


@dataclass
class ModelConfig:
    # rnn: embedding → recurrent layers → softmax; nplm: Bengio et al.'s (2003) neural n-gram model,
    # the previous `context` words' embeddings → one hidden layer → softmax (rnnlab/models/nplm.py);
    # classifier: a sequence task's inputs → recurrent layers → linear on the last valid step
    # (rnnlab/models/classifier.py; needs task.kind)
    arch: str = setting("rnn", "rnn: language model; nplm: neural n-gram (Bengio 2003); classifier: a sequence task's",
                        ("rnn", "nplm", "classifier"))
    context: int = setting(3, "nplm: words of context (3: a 4-gram)")
    activation: str = setting("tanh", "nplm: the hidden layer's activation", ("tanh", "linear"))
    direct: bool = setting(False, "nplm: direct connections from the embeddings to the output (Bengio's W x)")
    # nplm: how the context is read. concat: Bengio's hidden layer over the concatenated embeddings;
    # recurrent: one layer of `cell` (hidden units) reads the c embeddings in order, its last h is the hidden layer
    reader: str = setting("concat", "nplm: hidden layer over the concatenated embeddings, or a `cell` reading them",
                          ("concat", "recurrent"))
    bptt: int = setting(0, "nplm, reader=recurrent: backpropagate through the last k of the c steps only; 0: all c")
    cell: str = setting("lstm", "the recurrent cell (rnnlab/cell_registry.py)", lambda: tuple(cell_registry.CELLS))
    hidden: int = setting(128, "units per recurrent layer")
    layers: int = setting(2, "stacked recurrent layers")
    embed: int = setting(0, "embedding size; 0 = same as hidden")
    dropout: float = setting(0.0, "dropout on non-recurrent connections only (Zaremba et al. 2014), in [0, 1)")
    tie_weights: bool = setting(False, "decoder reuses the embedding matrix (needs embed == hidden)")
    init: float = setting(0.0, "> 0: every weight ~ uniform(-init, init); 0: PyTorch's defaults")
    nonlinearity: str = setting("tanh", "rnn cell only", cell_registry.OPTIONS["nonlinearity"])
    gru_z: str = setting("old", "gru: old: h = (1-z)n + z h_prev (Cho 2014, PyTorch); new: h = z n + (1-z) h_prev",
                         cell_registry.OPTIONS["gru_z"])
    gru_reset: str = setting("after",
                             "gru: after: r ⊙ (W_hn h + b_hn) (PyTorch); before: W_hn (r ⊙ h) + b_hn (Cho 2014)",
                             cell_registry.OPTIONS["gru_reset"])
    bias: str = setting("double", "double: b_ih and b_hh (PyTorch); single: b_ih only", ("double", "single"))
    impl: str = setting("fused", "fused: torch.nn.LSTM/GRU/RNN kernels where the cell has one; explicit: the cell "
                        "equations", ("fused", "explicit"))
    backend: str = setting("torch", "the recurrent layers in PyTorch or the NumPy reference", ("torch", "numpy"))
    forget_bias: float = setting(0.0, "added to the forget gate's bias at initialisation (cells with one, "
                                 "as the cell table says: lstm, phased_lstm, ...)")
    # classifier, a gated cell: > 0 is chrono init of the carry gate's bias for this horizon in steps
    # (Tallec & Ollivier 2018; models/classifier.py:chrono_init); 0: PyTorch's init
    chrono: int = setting(0, "classifier, lstm/gru: > 0: chrono init of the carry gate's bias for this horizon "
                          "in steps; 0: off")
    # Output layer. full: softmax over the vocabulary. adaptive: Grave et al.'s adaptive softmax
    # (rnnlab/models/softmax.py): an exact distribution that trains ~4x faster on 17k words;
    # the frequency-sorted vocabulary is cut at `cutoffs`, cluster k projects to hidden / div_value^k.
    softmax: str = setting("full",
                           "output layer: full softmax, or Grave et al.'s adaptive softmax (large vocabularies)",
                           ("full", "adaptive"))
    # adaptive: comma-separated, increasing, below the vocabulary size; "auto": chosen from the training
    # vocabulary's frequencies when training starts (full softmax for a small vocabulary; models/softmax.py)
    cutoffs: str = setting("auto", "adaptive: increasing cluster boundaries such as '2000,10000', or auto "
                           "(from the training vocabulary)")
    div_value: float = setting(4.0, "adaptive: how much smaller each tail cluster's projection is (>= 1)")

    def cell_options(self) -> dict:
        """The options the configured cell reads ({"gru_z": ..., "gru_reset": ...}), by the cell table."""
        return {option: getattr(self, option) for option in cell_registry.get(self.cell).options}

    def kind_and_size(self) -> tuple[str, str]:
        """How reports name the model: ("lstm", "2×128"), or ("nplm-tanh", "3×16→128") for the n-gram model."""
        if self.arch == "nplm" and self.reader == "recurrent":
            return f"nplm-{self.cell}", f"{self.context}×{self.embed or self.hidden}→{self.hidden}"
        if self.arch == "nplm":
            return f"nplm-{self.activation}", f"{self.context}×{self.embed or self.hidden}→{self.hidden}"
        return self.cell, f"{self.layers}×{self.hidden}"


@dataclass
class DataConfig:
    path: str = setting("", "a text file, a directory with train.txt/valid.txt[/test.txt], or a dataset name; "
                        "'' = bundled Grimm")
    level: str = setting("char", "tokens are characters or words", ("char", "word"))
    valid_fraction: float = setting(0.1, "single-file corpora: the last fraction of the text is validation")
    test_fraction: float = setting(0.0, "single-file corpora: a fraction after validation kept as test")
    strip_gutenberg: bool = setting(True, "drop the Project Gutenberg header and licence")
    lowercase: bool = setting(False, "lower-case the text before tokenizing")
    min_count: int = setting(1, "tokens seen fewer times in train become <unk>")
    max_vocab: int = setting(0, "keep the most frequent tokens only; 0 = no limit")
    batcher: str = setting("stream", "stream: contiguous streams, state carried (truncated BPTT); window: random "
                           "windows", ("stream", "window"))


@dataclass
class TaskConfig:
    """A synthetic sequence task instead of a text corpus (rnnlab/data/tasks.py); model.arch=classifier.
    Each epoch is `train_size` sequences: drawn afresh every epoch (palindrome, frequency) or one
    fixed training set (varlen). The valid and test sets are fixed (the same for every seed)."""

    kind: str = setting("", "'': a text corpus (data.*), or a synthetic sequence task (model.arch=classifier)",
                        ("", "palindrome", "frequency", "varlen"))
    train_size: int = setting(12800, "training sequences per epoch")
    valid_size: int = setting(1000, "validation sequences (fixed)")
    test_size: int = setting(10000, "test sequences (fixed)")
    length: int = setting(10, "palindrome: T; the model sees the first T-1 digits and names the last")
    encoding: str = setting("onehot", "palindrome: each digit as a one-hot vector of 10, or as one float "
                            "(input_dim 1, as the course's template)", ("onehot", "scalar"))
    sampling: str = setting("regular", "frequency: sample times", ("regular", "irregular"))
    duration: float = setting(15.0, "frequency: ms of sine wave")
    step: float = setting(0.125, "frequency: ms between regular samples (and the number of samples, duration / step)")
    batching: str = setting("pad", "varlen: how sequences of different lengths are batched (rnnlab/data/tasks.py)",
                            ("pad", "bucket", "pack"))
    median: float = setting(40.0, "varlen: lengths ~ round(LogNormal(log median, sigma)) clipped to [min_len, max_len]")
    sigma: float = setting(0.8, "varlen: spread of the log-normal lengths")
    min_len: int = setting(5, "varlen: shortest sequence")
    max_len: int = setting(400, "varlen: longest sequence")
    symbols: int = setting(64, "varlen: tokens are uniform over this many symbols; label 1 iff symbol 0 occurs")


@dataclass
class TrainConfig:
    seed: int = setting(0, "seeds the initial weights, the batch order, dropout and samples")
    batch_size: int = setting(64, "sequences per step")
    seq_len: int = setting(30, "truncated-BPTT length (tokens per segment)")
    epochs: int = setting(1000, "upper bound; max_steps / max_minutes usually stop first")
    max_steps: int = setting(0, "stop after this many steps; 0 = no step limit")
    max_minutes: float = setting(0.0, "stop after this many minutes of training; 0 = no time limit")
    optimizer: str = setting("adam", "the optimizer", ("sgd", "adagrad", "rmsprop", "adam"))
    lr: float = setting(2e-3, "learning rate (> 0)")
    momentum: float = setting(0.0, "sgd / rmsprop momentum")
    nesterov: bool = setting(False, "sgd: Nesterov momentum")
    weight_decay: float = setting(0.0, "L2 penalty (>= 0)")
    clip: float = setting(5.0, "max global gradient norm; 0 = no clipping")
    # The loss that is differentiated: "mean" over all tokens, or "sum_time": summed over the
    # seq_len steps and averaged over the batch, as in Zaremba et al. (2014), whose lr and clip
    # (lr 1, clip 5) assume it; it scales the gradient by seq_len. Reported losses are per token.
    loss: str = setting("mean", "the differentiated loss: mean over tokens, or summed over time as Zaremba et al.",
                        ("mean", "sum_time"))
    schedule: str = setting("constant", "learning-rate schedule", ("constant", "zaremba", "plateau", "cosine", "step"))
    lr_decay: float = setting(2.0, "zaremba / plateau / step: lr is divided by this (>= 1)")
    decay_after: int = setting(4, "zaremba: divide every epoch after this epoch")
    decay_every: int = setting(10000, "step: divide every this many steps")
    min_lr: float = setting(0.0, "cosine: final lr")
    eval_every: int = setting(0, "evaluate every N steps; 0 = about ten times over the run's step budget (at each "
                              "epoch end when it has none)")
    eval_batch_size: int = setting(16, "streams of the evaluation pass")
    eval_seq_len: int = setting(256, "tokens per segment of the evaluation pass")
    checkpoint_every: int = setting(500, "steps between 'last' checkpoints; 0 = only at the end")
    checkpoint_minutes: float = setting(0.0, "also checkpoint after this many minutes; 0 = off")
    samples: int = setting(4, "samples printed at evenly spaced points during training")
    sample_length: int = setting(120, "tokens per sample printed during training")
    max_faults: int = setting(10, "non-finite losses tolerated before aborting")
    stop_at_accuracy: float = setting(0.0, "stop once the validation accuracy reaches this (checked at every "
                                      "evaluation); 0 = never")
    patience: int = setting(0, "> 0: also stop after this many steps without a 1-point gain in validation accuracy")
    threads: int = setting(0, "torch intra-op threads; 0 = auto (rnnlab/threads.py)")
    device: str = setting("cpu", "where to train", ("cpu", "cuda", "auto"))
    dtype: str = setting("float32", "weights, state and optimizer", ("float32", "float64"))
    # bf16 autocast of the matmuls and the recurrent kernel (weights, optimizer, loss and
    # evaluation stay float32). It pays only on CPUs with native bf16 (AVX512-BF16 / AMX),
    # where it halves the step time; on AVX2-only CPUs it is far slower.
    # off | on (refused without native bf16) | auto (on where native, else off)
    bf16: str = setting("off", "bf16 autocast of the matmuls: on (refused without native bf16), auto (where native)",
                        ("off", "on", "auto"))
    dist_timeout: float = setting(60.0, "seconds a process of a distributed run waits for the others")


@dataclass
class GenerateConfig:
    temperature: float = setting(1.0, "sampling temperature; 0 = greedy")
    top_k: int = setting(0, "sample among the k most likely tokens; 0 = all")
    top_p: float = setting(1.0, "sample among the most likely tokens whose probability adds up to p (nucleus)")
    length: int = setting(200, "tokens per sample")


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


SECTIONS = {"model": ModelConfig, "data": DataConfig, "task": TaskConfig, "train": TrainConfig,
            "generate": GenerateConfig}
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


def describe(cfg: Config) -> list[dict]:
    """Every setting of `cfg` for `rnnlab config`: {"key", "type", "value", "meaning", "choices"},
    the meaning and allowed values from the fields' metadata."""
    rows = [{"key": k, "type": t.__name__, "value": getattr(cfg, k), "meaning": meaning, "choices": ()}
            for (k, t), meaning in zip(TOP_LEVEL.items(),
                                       ("the run's name (runs/NAME-TIMESTAMP)", "one line about it"))]
    for section, cls in SECTIONS.items():
        hints = _hints(cls)
        for f in dataclasses.fields(cls):
            rows.append({"key": f"{section}.{f.name}", "type": hints[f.name].__name__,
                         "value": getattr(getattr(cfg, section), f.name), "meaning": f.metadata["meaning"],
                         "choices": choices_of(f)})
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


DEFAULT_PRESET = "grimm-char"  # what `rnnlab train` runs without --preset or --config


def load_config(preset: str | None = None, config_file: str | None = None, overrides=()) -> Config:
    """defaults <- preset <- config file <- --set overrides, then validate. Without a preset
    and a file, the preset DEFAULT_PRESET; preset "none": the built-in defaults alone."""
    cfg = Config()
    if preset is None and config_file is None:
        preset = DEFAULT_PRESET
    if preset == "none":  # the built-in defaults below every preset
        preset = None
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
            _check(not isinstance(value, float) or math.isfinite(value),
                   f"{section}.{f.name} must be a finite number, got {value}")
            if choices := choices_of(f):  # model.arch, model.cell, train.optimizer, ... (the fields say which)
                _choice(f"{section}.{f.name}", value, choices)
    # The name becomes runs/NAME-TIMESTAMP: a separator would put the run elsewhere ('../../x').
    _check(not any(c in cfg.name for c in "/\\\0"),
           f"name must not contain '/', '\\' or NUL (it names the run directory), got {cfg.name!r}")
    _check(m.context >= 1, f"model.context must be >= 1, got {m.context}")
    if m.arch == "nplm":
        _check(not m.tie_weights, "model.arch=nplm does not tie weights (set model.tie_weights=false)")
        _check(not m.direct or m.softmax == "full", "model.direct needs model.softmax=full")
        _check(m.backend == "torch" or m.dropout == 0, "model.arch=nplm with model.backend=numpy has no dropout")
        _check(m.reader == "concat" or m.backend == "torch",
               "model.reader=recurrent has no NumPy twin (set model.backend=torch)")
        _check(m.reader == "concat" or not m.direct, "model.direct needs model.reader=concat")
        _check(0 <= m.bptt <= m.context, f"model.bptt must be in [0, model.context={m.context}], got {m.bptt}")
    _check(not m.forget_bias or cell_registry.CELLS[m.cell].forget_gate, f"model.forget_bias needs a cell with a "
           f"forget gate ({', '.join(n for n, c in cell_registry.CELLS.items() if c.forget_gate)}); {m.cell} has none")
    _check(m.hidden > 0, f"model.hidden must be positive, got {m.hidden}")
    _check(m.layers > 0, f"model.layers must be positive, got {m.layers}")
    _check(m.embed >= 0, f"model.embed must be >= 0 (0 = same as hidden), got {m.embed}")
    _check(0.0 <= m.dropout < 1.0, f"model.dropout must be in [0, 1), got {m.dropout}")
    _check(m.init >= 0.0, f"model.init must be >= 0, got {m.init}")
    if m.tie_weights:
        _check(m.embed in (0, m.hidden), "model.tie_weights needs model.embed equal to model.hidden (or 0)")
    if m.softmax == "adaptive":
        if m.cutoffs != "auto":
            parse_cutoffs(m.cutoffs)
        _check(m.div_value >= 1.0, f"model.div_value must be >= 1, got {m.div_value}")
        _check(not m.tie_weights, "model.softmax=adaptive cannot tie weights (set model.tie_weights=false)")
        _check(m.backend == "torch", "model.softmax=adaptive needs model.backend=torch")
    validate_task(cfg)
    _check(0.0 < d.valid_fraction < 1.0, f"data.valid_fraction must be in (0, 1), got {d.valid_fraction}")
    _check(0.0 <= d.test_fraction < 1.0 - d.valid_fraction,
           "data.test_fraction must be >= 0 and leave room for training text")
    _check(d.min_count >= 1, f"data.min_count must be >= 1, got {d.min_count}")
    _check(d.max_vocab >= 0, f"data.max_vocab must be >= 0, got {d.max_vocab}")
    specials = 1 if d.level == "char" else 2  # <unk> (never sampled from a char model), and a word model's <eos>
    _check(d.max_vocab == 0 or d.max_vocab > specials,
           f"data.max_vocab={d.max_vocab} leaves no token to sample besides the {specials} special token(s); "
           f"use 0 (no limit) or at least {specials + 1}")
    _check(t.bf16 != "on" or t.dtype == "float32", "train.bf16 autocasts float32 matmuls; it needs train.dtype=float32")
    _check(t.bf16 != "on" or m.backend == "torch", "train.bf16=on needs model.backend=torch")
    _check(t.dist_timeout > 0, f"train.dist_timeout must be positive, got {t.dist_timeout}")
    for key in ("batch_size", "seq_len", "epochs", "eval_batch_size", "eval_seq_len", "max_faults", "decay_every"):
        _check(getattr(t, key) > 0, f"train.{key} must be positive, got {getattr(t, key)}")
    for key in ("max_steps", "eval_every", "checkpoint_every", "samples", "threads", "decay_after"):
        _check(getattr(t, key) >= 0, f"train.{key} must be >= 0, got {getattr(t, key)}")
    for key in ("max_minutes", "checkpoint_minutes", "momentum", "weight_decay", "clip", "min_lr"):
        _check(getattr(t, key) >= 0, f"train.{key} must be >= 0, got {getattr(t, key)}")
    _check(t.threads <= max_parallel(),
           f"train.threads must be at most {max_parallel()} ({PARALLEL_PER_CPU} per usable "
           f"CPU; 0 = automatic), got {t.threads}")
    _check(t.lr > 0, f"train.lr must be positive, got {t.lr}")
    _check(t.lr_decay >= 1.0, f"train.lr_decay must be >= 1 (the lr is divided by it), got {t.lr_decay}")
    _check(0 <= t.seed <= MAX_SEED, f"train.seed must be between 0 and 2**63-1, got {t.seed}")
    _check(0 < t.sample_length <= MAX_LENGTH,
           f"train.sample_length must be between 1 and {MAX_LENGTH:,}, got {t.sample_length}")
    validate_generation(g.temperature, g.top_k, g.top_p, g.length, prefix="generate.")


def validate_task(cfg: Config) -> None:
    """A sequence task and the classifier go together; the rest of the task's settings are checked here."""
    m, k, t = cfg.model, cfg.task, cfg.train
    _check((m.arch == "classifier") == bool(k.kind), "model.arch=classifier and task.kind go together: "
           f"a sequence task trains a classifier, a text corpus a language model (got model.arch={m.arch}, "
           f"task.kind='{k.kind}')")
    _check(m.chrono >= 0, f"model.chrono must be >= 0 (0 = off), got {m.chrono}")
    _check(0.0 <= t.stop_at_accuracy <= 1.0,
           f"train.stop_at_accuracy must be in [0, 1] (0 = off), got {t.stop_at_accuracy}")
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
    kernel = cell_registry.get(m.cell).fused_kernel(m.cell_options())
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
           f"{prefix}temperature must be 0 (greedy) or in [{MIN_TEMPERATURE:g}, {MAX_TEMPERATURE:g}], got "
           f"{temperature}")
    _check(top_k >= 0, f"{prefix}top_k must be >= 0 (0 = off), got {top_k}")
    _check(MIN_TOP_P <= top_p <= 1, f"{prefix}top_p must be in [{MIN_TOP_P:g}, 1], got {top_p}")
    _check(0 < length <= MAX_LENGTH, f"{prefix}length must be between 1 and {MAX_LENGTH:,}, got {length}")
