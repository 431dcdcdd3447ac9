"""The progress of each long step: a tqdm bar on a terminal; elsewhere (a log file, a notebook, a test)
one line when the step starts and one when it ends, so a captured log stays readable."""

from __future__ import annotations

import sys
import time

from handwriting_gan.shell import duration, say


class Progress:
    """`total` steps of `description`, `done` of them already finished; `advance(message)` counts one."""

    def __init__(self, description: str, total: int, done: int = 0) -> None:
        self.description, self.total, self.done = description, total, done
        self.started = time.perf_counter()
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(
                total=total, initial=done, desc=description, unit="step", file=sys.stderr, dynamic_ncols=True
            )
        else:
            steps = (
                f" ({total} steps, {done} already done)" if done else f" ({total} steps)" if total > 1 else ""
            )
            say(f"{description}{steps} ...")

    def advance(self, message: str = "") -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.set_postfix_str(message[:60], refresh=False)
            self.bar.update()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        else:
            say(f"{self.description}: done in {duration(time.perf_counter() - self.started)}")

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind, error, trace) -> None:
        if kind is None:
            self.close()
        elif self.bar is not None:
            self.bar.close()
