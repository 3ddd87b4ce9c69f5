"""The demo's terminal: short lines and progress bars there, everything else in the run's log file.

A newcomer should see what the pipeline does and how long is left, not library deprecation
warnings or the trainer's per-step log dicts. `Console` keeps the streams the demo started with
(the terminal, or pytest's capture); `Console.quiet()` sends stdout, stderr, Python warnings and
the transformers/datasets loggers to `demo.log` while a stage runs; `TrainerBar` is a
transformers callback that draws the stage's own bar (steps, ETA) on the terminal.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from tqdm.auto import tqdm
from transformers import TrainerCallback


class Console:
    """Prints to the demo's own streams; `quiet()` routes library output to the log file."""

    def __init__(self, log_path: Path) -> None:
        self.out: TextIO = sys.stdout
        self.err: TextIO = sys.stderr
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file: TextIO = open(log_path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
        self._log_file.write(f"\n===== trinityx demo {time.strftime('%Y-%m-%d %H:%M:%S')} =====\n")
        self._handler = logging.StreamHandler(self._log_file)
        self._handler.setFormatter(
            logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s")
        )

    def print(self, *lines: str) -> None:
        """A line for the terminal, copied into the log so the log reads as a whole story."""
        for line in lines:
            print(line, file=self.out, flush=True)
            self._log_file.write(f"{time.strftime('%H:%M:%S')} {line}\n")

    def bar(self, **kw) -> tqdm:
        """A progress bar on the terminal (ETA from tqdm), whatever stderr points to meanwhile."""
        return tqdm(file=self.err, dynamic_ncols=True, leave=True, disable=False, **kw)

    @contextlib.contextmanager
    def ticker(self, desc: str) -> Iterator[None]:
        """Elapsed time for a stage without countable steps (compose): redrawn every second."""
        bar = tqdm(
            file=self.err,
            total=None,
            desc=desc,
            bar_format="{desc}: {elapsed} elapsed",
            disable=False,
            leave=True,
        )
        stop = threading.Event()

        def tick() -> None:
            while not stop.wait(1.0):
                bar.refresh()

        thread = threading.Thread(target=tick, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            bar.close()

    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        """While a stage runs: stdout/stderr, warnings and library loggers go to the log file."""
        import datasets
        import transformers

        tf_log = transformers.utils.logging
        root = logging.getLogger()
        old_level, old_handlers = root.level, root.handlers[:]
        root.handlers = [self._handler]  # e.g. the CLI's stderr handler: silent meanwhile
        root.setLevel(logging.INFO)
        tf_log.disable_default_handler()
        tf_log.add_handler(self._handler)
        tf_log.disable_progress_bar()
        datasets.disable_progress_bars()
        logging.captureWarnings(True)
        try:
            with (
                warnings.catch_warnings(),
                contextlib.redirect_stdout(self._log_file),
                contextlib.redirect_stderr(self._log_file),
            ):
                warnings.simplefilter("default")
                yield
        finally:
            logging.captureWarnings(False)
            datasets.enable_progress_bars()
            tf_log.enable_progress_bar()
            tf_log.remove_handler(self._handler)
            tf_log.enable_default_handler()
            root.handlers = old_handlers
            root.setLevel(old_level)

    def close(self) -> None:
        self._log_file.close()


class TrainerBar(TrainerCallback):
    """One terminal bar per training phase (SFT, DPO) with steps and ETA; the trainer's log dicts
    go to the log file (through `quiet()`), with the latest loss shown on the bar.

    Also measures each phase: `phases[name] = {"seconds", "steps", "real_tokens_per_s"}` (from
    TRL's running `num_tokens`, the non-pad tokens seen; SFT only), for the demo's breakdown."""

    def __init__(self, console: Console, label: str) -> None:
        self.console, self.label = console, label
        self.bar: tqdm | None = None
        self.name = ""
        self.phases: dict[str, dict] = {}
        self._t0 = 0.0
        self._step0 = 0
        self._tokens: tuple[float, float] | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.name = "DPO" if Path(str(args.output_dir)).name == "dpo" else "SFT"
        self._t0, self._step0, self._tokens = time.perf_counter(), state.global_step, None
        self.bar = self.console.bar(
            total=state.max_steps,
            initial=state.global_step,
            desc=f"{self.label} {self.name}",
            unit="step",
        )

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs:
            return
        if "num_tokens" in logs:  # (tokens, seconds) at this log, for a tokens/s figure
            self._tokens = (float(logs["num_tokens"]), time.perf_counter() - self._t0)
        if self.bar is not None and "loss" in logs:
            self.bar.set_postfix(loss=f"{float(logs['loss']):.3f}")

    def on_train_end(self, args, state, control, **kwargs):
        self.phases[self.name] = {
            "seconds": round(time.perf_counter() - self._t0, 1),
            "steps": state.global_step - self._step0,
        }
        if self._tokens is not None and self._tokens[1] > 0:
            self.phases[self.name]["real_tokens_per_s"] = round(
                self._tokens[0] / self._tokens[1], 1
            )
        if self.bar is not None:
            self.bar.close()
            self.bar = None
