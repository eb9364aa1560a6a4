"""The course's long runs, trained as rnnlab runs and written up:

    grimm-course  the UvA report's Grimm generator (preset grimm-course: 2x128, dropout 0.3,
                  Adam 2e-3 x0.95 every 10,000 steps), at most 46,000 steps, stopped after 30 minutes of training;
                  12 samples spread over the step budget (every 3,833 steps: the 30 minutes
                  reach 8 of them), then completions of "The sleeping beauty is"
                  at temperatures 0.5, 1 and 2, ten times longer than the training sequences
    tv-script     the TV-script report's 3x200 char LSTM (preset tv-script) on Tiny Shakespeare,
                  train/valid/test loss and accuracy every epoch; speeches that start with a
                  speaker's name and stop at the end of the speech; the teacher-forced view
    brown-gru-dropout-adam-long, brown-lstm-dropout-long
                  report 002's two dropout-0.5 word models on Brown (GRU + Adam, LSTM + SGD), the rate
                  halved on a validation plateau, compared at an equal number of steps (brown_lm_long.md)

    python benchmarks/course_runs.py --train grimm-course     # a finished run is kept
    python benchmarks/course_runs.py --train tv-script
    python benchmarks/course_runs.py --render                 # benchmarks/results/{grimm_course,tv_script,...}.md

--render also collects two experiments run in the course's settings (their
commands are in COURSE_EXPERIMENTS) into benchmarks/results: the palindromes
(palindrome_course.md: the course's setting on T = 5..40, 3 seeds, its
neighbours at T = 10: the report's rate 0.1 with RMSprop, SGD and Adam, and
the nearest of them, Adam at 0.1, with 3 seeds on T = 5..40) and
the optimizer comparison (optimizers.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import rnnlab  # noqa: E402
from benchmarks import harness  # noqa: E402
from rnnlab.config import load_config  # noqa: E402
from rnnlab.errors import run_command  # noqa: E402
from rnnlab.experiments import markdown_table, train_unless_finished  # noqa: E402
from rnnlab.report.collect import read_run  # noqa: E402
from rnnlab.report.plots import epoch_curves_figure, run_curves_figure, save  # noqa: E402

SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
BROWN = ROOT.parent / "shared" / "data" / "brown"
RUNS = {  # name: (preset, overrides)
    "grimm-course": ("grimm-course", ["train.max_steps=46000", "train.max_minutes=30", "train.eval_every=2000",
                                      "train.samples=12", "train.sample_length=300"]),
    "tv-script": ("tv-script", [f"data.path={SHAKESPEARE}"]),
    # Course report 002's best model, trained towards convergence: the GRU with dropout 0.5 and Adam 1e-3;
    # the report's "0.001↓" leaves the decay open: halved whenever validation does not improve (each epoch).
    "brown-gru-dropout-adam-long": ("gru-dropout-adam", [f"data.path={BROWN}", "train.schedule=plateau",
                                                          "train.epochs=40", "train.max_minutes=150",
                                                          "train.checkpoint_minutes=5"]),
    # The report's LSTM with dropout 0.5 and SGD 1.0 ("1↓"; 75 epochs there), with the same plateau schedule,
    # stopped at the GRU's 31,480 steps (the same batches): the two compared at an equal budget.
    "brown-lstm-dropout-long": ("lstm-dropout", [f"data.path={BROWN}", "model.dropout=0.5", "train.schedule=plateau",
                                                 "train.epochs=40", "train.max_steps=31480",
                                                 "train.checkpoint_minutes=5"]),
}
PROMPT, TEMPERATURES = "The sleeping beauty is", (0.5, 1.0, 2.0)
SPEAKERS = ("ROMEO:", "JULIET:", "First Citizen:", "KING RICHARD III:", "MENENIUS:")
# The course's palindrome setting (preset palindrome-course): scalar digits, batch 128, clip 10, 10,000 steps
# at most, stopping at 100 % validation accuracy or after 1,000 steps without a 1-point gain.
_PALINDROME = ("rnnlab experiment palindrome --cells rnn,lstm --encoding scalar --clip 10 --no-chrono --target 1.0 "
               "--patience 1000 --hidden 128")
PALINDROME_LENGTHS = "5:20,22:40:2,25,35"  # steps of 1 where both cells fall off, of 2 (and 5) beyond
NEIGHBOURS = (("rmsprop", 0.1), ("sgd", 0.1), ("adam", 0.1))  # the report's rate 0.1 with each optimizer, at T = 10
COURSE_EXPERIMENTS = {  # output directory under --work: the command that fills it
    "palindrome-course": f"{_PALINDROME} --out runs/course-runs/palindrome-course --lengths {PALINDROME_LENGTHS} "
                         "--seeds 3 --optimizer rmsprop --lr 0.001 --max-steps 10000 --jobs 2",
    # the nearest setting: the report's rate 0.1 with Adam, on the same lengths as above at steps of 5, 3 seeds
    "palindrome-adam-0.1-seeds": f"{_PALINDROME} --out runs/course-runs/palindrome-adam-0.1-seeds --lengths 5:40:5 "
                                 "--seeds 3 --optimizer adam --lr 0.1 --max-steps 10000 --jobs 2",
    **{f"palindrome-{opt}-{lr:g}": f"{_PALINDROME} --out runs/course-runs/palindrome-{opt}-{lr:g} --lengths 10 "
                                   f"--seeds 1 --optimizer {opt} --lr {lr:g} --max-steps 2000 --jobs 1"
       for opt, lr in NEIGHBOURS},
    "optimizers": "rnnlab experiment optimizers --steps 500 --jobs 1 --out runs/course-runs/optimizers",
    # the LSTM at chance from T = 15 in the course's setting: the same runs without the early stop
    "palindrome-lstm-nopatience": "rnnlab experiment palindrome --cells lstm --encoding scalar --clip 10 --no-chrono "
                                  "--target 1.0 --patience 0 --hidden 128 "
                                  "--out runs/course-runs/palindrome-lstm-nopatience --lengths 15,20 --seeds 1 "
                                  "--optimizer rmsprop --lr 0.001 --max-steps 10000 --jobs 1",
}


def command(name: str) -> str:
    preset, overrides = RUNS[name]
    shown = (o.replace(str(SHAKESPEARE), "../shared/data/tinyshakespeare.txt")
             .replace(str(BROWN), "../shared/data/brown") for o in overrides)
    return f"rnnlab train --preset {preset} " + " ".join(f"--set {o}" for o in shown)


def render_grimm(run_dir: Path, results: Path) -> None:
    run, api = read_run(run_dir, "grimm-course"), rnnlab.load(run_dir)
    final, cfg = run.summary["final"]["valid"], run.config
    save(run_curves_figure(run), results / "grimm_course_curves.png")
    md = ["# Grimm as the course trained it", "", "```", command("grimm-course") + " --set train.threads=1",
          "python benchmarks/course_runs.py --render", "```", "",
          f"{run.summary['steps']:,} steps ({run.summary['epochs']:.0f} epochs of the training text) in "
          f"{run.summary['wall_seconds'] / 60:.1f} minutes on one thread of {harness.machine()['cpu']}, beside one "
          f"other training process. Validation: **{final['bpc']:.3f} bits/char**, next-character accuracy "
          f"{final['accuracy']:.1%}. The learning rate went from {cfg.train.lr:g} to "
          f"{cfg.train.lr / cfg.train.lr_decay ** (run.summary['steps'] // cfg.train.decay_every):.3g} "
          f"(x0.95 every {cfg.train.decay_every:,} steps).", "", "![curves](grimm_course_curves.png)", "",
          f"## Samples during training (temperature {cfg.generate.temperature})", ""]
    for s in run.samples:
        md += [f"**step {s['step']:,}**", "", "```", s["text"].strip(), "```", ""]
    md += [f"## \"{PROMPT}\", 300 characters (training sequences are {cfg.train.seq_len})", ""]
    for t in TEMPERATURES:
        text = api.generate(PROMPT, length=300, temperature=t, seed=0)[0]
        md += [f"**temperature {t:g}**", "", "```", PROMPT + text, "```", ""]
    (results / "grimm_course.md").write_text("\n".join(md), encoding="utf-8")


def render_tv(run_dir: Path, results: Path) -> None:
    run, api = read_run(run_dir, "tv-script"), rnnlab.load(run_dir)
    final = run.summary["final"]
    save(epoch_curves_figure([run], ("train", "valid", "test"), "tv-script (3x200)", linear=True),
         results / "tv_script_curves.png")
    epochs = {r["epoch"]: r for r in run.curve("test")}.items()  # the final evaluation repeats the last epoch's
    md = ["# The TV-script model (3x200 char LSTM) on Tiny Shakespeare", "", "```",
          command("tv-script") + " --set train.threads=1", "python benchmarks/course_runs.py --render", "```", "",
          f"{run.summary['steps']:,} steps, {run.summary['epochs']:.0f} epochs, "
          f"{run.summary['wall_seconds'] / 60:.1f} minutes on one thread of {harness.machine()['cpu']}, beside one "
          "other training process. After every epoch the validation and test splits are evaluated whole; the "
          "train columns are the epoch's running training loss and accuracy (dropout on). Loss in bits/char, "
          "accuracy of the next-character guess.", "",
          "| epoch | train bits/char | train accuracy | valid bits/char | valid accuracy "
          "| test bits/char | test accuracy |",
          "|---|---|---|---|---|---|---|"]
    train, valid = ({r["epoch"]: r for r in run.curve(s)} for s in ("train", "valid"))
    for epoch, t in epochs:
        a, v = train.get(epoch, {}), valid.get(epoch, {})
        md.append(f"| {epoch:g} | {a.get('bpc', float('nan')):.3f} | {a.get('accuracy', float('nan')):.1%} | "
                  f"{v.get('bpc', float('nan')):.3f} | {v.get('accuracy', float('nan')):.1%} | {t['bpc']:.3f} | "
                  f"{t['accuracy']:.1%} |")
    md += ["", f"Final test: {final['test']['bpc']:.3f} bits/char, accuracy {final['test']['accuracy']:.1%}.", "",
           "![curves](tv_script_curves.png)", "",
           "## Speeches that start with a speaker's name", "",
           "`rnnlab generate RUN --prompt \"ROMEO:\" --stop \"\\n\\n\"`: a speech here is the speaker's line and "
           "the lines under it, up to the blank line (the end of a line in a one-line-per-speaker script; "
           "`--stop \"\\n\"` gives just the first line). Temperature 0.7.", ""]
    for i, speaker in enumerate(SPEAKERS):
        text = api.generate(speaker, length=400, temperature=0.7, seed=i, stop="\n\n")[0]
        md += ["```", speaker + text, "```", ""]
    if run.samples and "teacher_forced" in run.samples[-1]:
        tf = run.samples[-1]["teacher_forced"]
        shown = {k: tf[k].replace("\n", "↵") for k in ("input", "predicted")}  # keep the two lines aligned
        md += ["## Teacher-forced view", "",
               f"Under each character of a validation line, the model's most likely next character given the true "
               f"text up to there (at step {run.samples[-1]['step']:,}; ↵ is a line break). A perfect model's line "
               "would read as the sample line shifted one character to the left.", "", "```",
               f"sample line:  {shown['input']}", f"model output: {shown['predicted']}", "```", ""]
    (results / "tv_script.md").write_text("\n".join(md), encoding="utf-8")


LONG = {  # the long word-model runs: the label their table columns carry
    "brown-gru-dropout-adam-long": "gru_adam",
    "brown-lstm-dropout-long": "lstm_sgd",
}


def long_run(name: str, run_dir: Path) -> dict:
    """One long run: what it was, how far it got, and its validation and test perplexity per epoch."""
    run = read_run(run_dir, name)
    s, cfg = run.summary, run.config
    valid, test = ({r["epoch"]: r for r in run.curve(split)} for split in ("valid", "test"))
    epochs = sorted(e for e in valid if e in test)
    best = min(epochs, key=lambda e: valid[e]["loss"])
    if s["epochs"] >= cfg.train.epochs:
        done = f"trained its {cfg.train.epochs} epochs"
    else:
        timed = cfg.train.max_minutes and s["wall_seconds"] >= cfg.train.max_minutes * 60
        key = "train.max_minutes" if timed else "train.max_steps"
        limit = f"{'time' if timed else 'step'} limit ({key}={cfg.train.max_minutes if timed else s['steps']:g})"
        done = (f"stopped at its {limit}; `rnnlab train --resume RUN --set {key}=...` continues it, "
                "bitwise as if it had not stopped")
    return {"command": command(name) + " --set train.threads=1", "model": s["model"], "dropout": cfg.model.dropout,
            "optimizer": cfg.train.optimizer, "lr": cfg.train.lr, "steps": s["steps"], "epochs": s["epochs"],
            "wall_seconds": s["wall_seconds"], "ms_per_step": 1000 * s["wall_seconds"] / max(s["steps"], 1),
            "done": done, "best_epoch": best, "best_valid_ppl": valid[best]["perplexity"],
            "best_test_ppl": test[best]["perplexity"],
            "rows": [{"epoch": e, "valid_ppl": valid[e]["perplexity"], "test_ppl": test[e]["perplexity"],
                      "lr": valid[e]["lr"]} for e in epochs]}


def best_within(run: dict, epochs: float) -> dict:
    """The best-validation checkpoint among a run's evaluations up to EPOCHS."""
    return min((r for r in run["rows"] if r["epoch"] <= epochs + 1e-9), key=lambda r: r["valid_ppl"])


def render_brown_long(work: Path, results: Path) -> None:
    """Perplexity per epoch of the long runs (course report 002's GRU + dropout 0.5 + Adam and its LSTM + dropout
    0.5 + SGD), each at its best-validation checkpoint, both at the epoch budget the shorter one reached, and the
    6-epoch study's figures beside them (brown_lm_study.json)."""
    runs = {name: long_run(name, work / name) for name in LONG if (work / name / "summary.json").is_file()}
    study = {r["model"]: r for r in json.loads((results / "brown_lm_study.json").read_text(encoding="utf-8"))}
    machine = harness.machine()
    data = {"machine": machine, "runs": runs}
    md = ["# Brown: course report 002's dropout models trained longer", "", "```",
          *(r["command"] for r in runs.values()), "python benchmarks/course_runs.py --render --work RUNS", "```", ""]
    for name, r in runs.items():
        md += [f"- **{name}** ({r['model']}, dropout {r['dropout']:g}, {r['optimizer']} {r['lr']:g}): "
               f"{r['steps']:,} steps ({r['epochs']:.1f} epochs) in {r['wall_seconds'] / 60:.1f} minutes of "
               f"training ({r['ms_per_step']:.0f} ms a step under the load of its hours, so not a speed comparison), "
               f"one thread of {machine['cpu']}, beside other work on the machine; the run {r['done']}. "
               f"Best validation perplexity **{r['best_valid_ppl']:.1f}** at "
               f"epoch {r['best_epoch']:.4g}, test perplexity there **{r['best_test_ppl']:.1f}**."]
    md += ["", "In the 6-epoch study (brown_lm_study.md, Zaremba decay, dropout 0.3 for the SGD models) the GRU + "
           f"dropout + Adam model reached a test perplexity of "
           f"{study.get('gru-dropout-adam', {}).get('best_test_ppl', float('nan')):.1f} at its best-validation "
           f"checkpoint, and the LSTM with dropout 0.3 and SGD "
           f"{study.get('lstm-dropout', {}).get('best_test_ppl', float('nan')):.1f}.", "",
           "Learning rate: each run's own (Adam 1e-3, SGD 1.0), divided by 2 after every epoch whose validation "
           "loss did not improve (train.schedule=plateau; the report's \"↓\" leaves the decay open).", ""]
    if len(runs) == len(LONG):
        budget = min(r["epochs"] for r in runs.values())
        equal = {LONG[name]: {"epochs": budget, **best_within(r, budget)} for name, r in runs.items()}
        data["equal_budget"] = equal
        order = sorted(equal, key=lambda k: equal[k]["valid_ppl"])
        md += [f"## At an equal budget: the best checkpoint within {budget:.1f} epochs", "",
               markdown_table([{"model": k, **v} for k, v in equal.items()],
                              ["model", "epoch", "valid_ppl", "test_ppl", "lr"]), "",
               f"Ranked by validation perplexity: {' < '.join(order)}.", ""]
        by_epoch: dict[float, dict] = {}
        for name, r in runs.items():
            for row in r["rows"]:
                by_epoch.setdefault(row["epoch"], {"epoch": row["epoch"]}).update(
                    {f"{LONG[name]}_{k}": v for k, v in row.items() if k != "epoch"})
        columns = ["epoch", *(f"{label}_{k}" for label in LONG.values() for k in ("valid_ppl", "test_ppl", "lr"))]
        md += ["## Per epoch", "", markdown_table([by_epoch[e] for e in sorted(by_epoch)], columns), ""]
    else:
        for name, r in runs.items():
            md += [f"## {name}", "", markdown_table(r["rows"], ["epoch", "valid_ppl", "test_ppl", "lr"]), ""]
    (results / "brown_lm_long.json").write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    (results / "brown_lm_long.md").write_text("\n".join(md), encoding="utf-8")


def _command_of(out: Path) -> str:
    """The command an experiment's NAME.md records (the first fenced block)."""
    md = next(out.glob("*.md")).read_text(encoding="utf-8")
    return md.split("```\n", 2)[1].strip()


PALINDROME_HOW = """## How these results were made

The course's setting as far as its report (003, Q1.2 and Q1.6: 128 hidden units, learning rate 0.1,
10,000 training steps) and the course's template (assignment_2/part1/train.py: each digit as one scalar,
input_dim 1; batch 128; gradient norm clipped at 10; the optimizer left to the student) give it. The
optimizer is RMSprop, the one the report discusses right after; its rate is 1e-3 (the default of a
public copy of the template), because at the report's 0.1 RMSprop learns neither cell at T = 10 (the
neighbours above). PyTorch's initialisation (`--no-chrono`). A run stops at 100 % accuracy on 1,000
validation palindromes (checked every 50 steps) or after 1,000 steps without a 1-point gain in it
(`--patience 1000`; the course ran all 10,000 steps, so a slow learner stopped here might have learned
later); the `steps` column shows where each stopped. Lengths: every T from 5 to 20, where both cells
fall off, every second T from 20 to 40, and 25 and 35 of the first grid.

All runs were trained on the shared 2-core development machine (AMD EPYC per `lscpu`, torch 2.13.0),
niced, one torch thread per process, into one runs directory, on 2026-12-03. The lengths 5 to 40 at
steps of 5 (48 runs) ran from 08:39 to 09:54 UTC beside other engineers' jobs (load average 11 to 17);
the lengths between them (120 runs) from 15:16 to 17:21 UTC beside one or two other training
jobs (load average about 2 when looked at), by the same command with `--lengths` set to the new ones, several
lengths at a time. That is why `seconds` can differ tenfold between neighbouring lengths: it is each
run's own training time, under the load of its hour. The command above then collected them: a finished
run of the same configuration is kept, not trained again, which is why its own wall time is seconds.
"""


ADAM_HOW = """The 48 runs were trained by the command above on 2026-12-03 from 16:44 to 17:05 UTC, on the same machine
as the rest of this file, beside one other training job; the same command then collected them again (the wall
time of seconds).
"""


def render_palindromes(work: Path, results: Path) -> None:
    """The course setting's table and figure as the experiment wrote them, and the neighbours' table:
    the report's rate 0.1 with RMSprop, SGD and Adam at T = 10, and Adam 0.1's LSTM further out."""
    out = work / "palindrome-course"
    md = (out / "palindrome.md").read_text(encoding="utf-8").replace("# palindrome",
                                                                     "# palindrome, the course's setting", 1)
    md = md.replace("(palindrome.png)", "(palindrome_course.png)")
    rows, commands = [], []
    for name in [f"palindrome-{opt}-{lr:g}" for opt, lr in NEIGHBOURS] + ["palindrome-adam-0.1-lstm"]:
        path = work / name / "palindrome.json"
        if path.is_file():
            train = tomllib.loads((next((work / name / "runs").iterdir()) / "config.toml")
                                  .read_text(encoding="utf-8"))["train"]
            commands.append(_command_of(work / name))
            rows += [{"optimizer": train["optimizer"], "lr": train["lr"], **r}
                     for r in json.loads(path.read_text(encoding="utf-8"))]
    if rows:
        md += ("\n\n## Neighbours: the report's learning rate 0.1 with RMSprop, SGD and Adam\n\n"
               "The same setting, one seed, at most 2,000 steps, each optimizer at the rate the report gives:\n\n"
               "```\n" + "\n".join(commands) + "\n```\n\n"
               + markdown_table(rows, ["optimizer", "lr", "cell", "length", "accuracy", "steps", "seconds"]) + "\n")
        (results / "palindrome_course_neighbours.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    adam = work / "palindrome-adam-0.1-seeds"
    if (adam / "palindrome.json").is_file():
        part = (adam / "palindrome.md").read_text(encoding="utf-8").split("\n", 1)[1]  # without its title
        md += ("\n\n## The nearest setting, with 3 seeds: Adam at the report's rate 0.1\n"
               + part.replace("(palindrome.png)", "(palindrome_course_adam.png)").rstrip("\n") + "\n\n"
               + ADAM_HOW)
        for ext in ("json", "png"):
            (results / f"palindrome_course_adam.{ext}").write_bytes((adam / f"palindrome.{ext}").read_bytes())
    md = md.rstrip("\n") + "\n\n" + PALINDROME_HOW
    (results / "palindrome_course.md").write_text(md, encoding="utf-8")
    for ext in ("json", "csv", "png"):
        (results / f"palindrome_course.{ext}").write_bytes((out / f"palindrome.{ext}").read_bytes())


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default=str(ROOT / "runs" / "course-runs"), help="run directories")
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--train", choices=tuple(RUNS), help="train one run")
    ap.add_argument("--render", action="store_true", help="write the results of the finished runs")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a setting on top (smoke tests)")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    work, results = Path(args.work), Path(args.results)
    if args.train:
        preset, overrides = RUNS[args.train]
        cfg = load_config(preset, None, [*overrides, "train.threads=1", *args.set])
        train_unless_finished(args.train, cfg, work / args.train, progress=False)
    if args.render:
        results.mkdir(parents=True, exist_ok=True)
        for name, render in (("grimm-course", render_grimm), ("tv-script", render_tv)):
            if (work / name / "summary.json").is_file():
                render(work / name, results)
                print(f"rendered {name} into {results}")
            else:
                print(f"{name}: no finished run in {work / name}")
        if any((work / name / "summary.json").is_file() for name in LONG):
            render_brown_long(work, results)
            print(f"wrote {results / 'brown_lm_long.md'}")
        if (work / "palindrome-course" / "palindrome.json").is_file():
            render_palindromes(work, results)
            print(f"wrote {results / 'palindrome_course.md'}")
        nopatience = work / "palindrome-lstm-nopatience"
        if (nopatience / "palindrome.json").is_file():
            md = (nopatience / "palindrome.md").read_text(encoding="utf-8")
            md = md.replace("# palindrome", "# palindrome, the course's setting: the LSTM without the early stop", 1)
            md = md.replace("![palindrome](palindrome.png)\n\n", "")
            (results / "palindrome_course_nopatience.md").write_text(md, encoding="utf-8")
            (results / "palindrome_course_nopatience.json").write_bytes((nopatience / "palindrome.json").read_bytes())
            print(f"wrote {results / 'palindrome_course_nopatience.md'}")
        if (work / "optimizers" / "optimizers.md").is_file():
            for ext in ("json", "csv", "md", "png"):
                (results / f"optimizers.{ext}").write_bytes((work / "optimizers" / f"optimizers.{ext}").read_bytes())
            print(f"wrote {results / 'optimizers.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main, "course_runs"))
