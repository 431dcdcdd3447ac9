"""The augmentation study command: does a GAN's synthetic data help a classifier that has few real images?

`python -m handwriting_gan.study dataset=<name> per_class=[10,50] seeds=3 [model=cgan_mlp] [out=<folder>]`
(conf/study.yaml). For each size and seed it trains a GAN on `per_class` real training images per class
(the training command, run as `python -m handwriting_gan` in a subprocess, one run folder each under
<out>/runs/, whose config records the study's domain classifier), measures it (FD over its floor and
label agreement: `python -m handwriting_gan.evaluate`), exports a labeled synthetic set
(`python -m handwriting_gan.export`'s per-class draw, into the run's export/) and trains the domain
classifier's architecture once per arm (arms.ARMS), each tested on the full real test split:

    (a) real          the real images only
    (b) classical     + `expansion` randomly shifted, rotated and elastically distorted copies of each
    (c) synthetic     + `expansion` x per_class synthetic images of each class
    (d) filtered      + those of (c) the full-data domain classifier labels with confidence >= threshold
                      (the confidences the export wrote)
    (e) both          + the copies of (b) and the synthetic images of (d): does synthetic data add
                      anything to classical augmentation?

Every finished step goes into <out>/results.json at once (atomically), and finished GAN runs and exports
stay on disk, so running the command again resumes where it stopped. At the end it prints the table
(markdown: mean +- std over seeds per size) and writes it as table.md, table.json, table.csv and the
plot accuracy.png.

One module per concern: settings (the checked plan), store (the folder's layout and results.json),
steps (the sibling commands it runs, each in its own process; a failing one raises a StudyStepError
naming its command line and showing the end of its output), arms (the registry: each arm listed once),
training (each arm's training set and classifier), report (the table and plot), command (the order of
the steps).
"""

from handwriting_gan.augment.arms import ARMS, KINDS, Arm
from handwriting_gan.augment.classical import classical_copies
from handwriting_gan.study.command import main, study
from handwriting_gan.study.report import markdown_table, plot, summarize, write_outputs
from handwriting_gan.study.settings import Study, check_study, study_config
from handwriting_gan.study.steps import StudyStepError, run_command, run_overrides
from handwriting_gan.study.store import RESULTS_FILE, RESULTS_FORMAT, RUNS_FOLDER, Results, run_key
from handwriting_gan.study.training import TrainingSets, instantiate_classical

__all__ = [
    "ARMS",
    "KINDS",
    "RESULTS_FILE",
    "RESULTS_FORMAT",
    "RUNS_FOLDER",
    "Arm",
    "Results",
    "Study",
    "StudyStepError",
    "TrainingSets",
    "check_study",
    "classical_copies",
    "instantiate_classical",
    "main",
    "markdown_table",
    "plot",
    "run_command",
    "run_key",
    "run_overrides",
    "study",
    "study_config",
    "summarize",
    "write_outputs",
]
