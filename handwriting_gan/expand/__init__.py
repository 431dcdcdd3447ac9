"""The expand command: a folder of a few character images per class turned into an expanded, labelled
dataset, with its measured gain.

`python -m handwriting_gan.expand path=<ImageFolder> out=<new folder> [per_class=N]
[format=imagefolder|npz|idx] [augmenter=omniglot|<run folder>] [measure=auto|true|false]` (also
`hwgan-expand`; conf/expand.yaml), or from Python `expand_folder(path, out, ...)`:

1. reads the folder as `dataset=folder` does (its preprocessing keys under `dataset.*`; the conversion is
   cached under paths.cache_dir; images that cannot be characters are skipped and reported);
2. with measure on (auto: every class has at least 4 images), for each seed holds out part of each class
   and trains the classifier on the rest as the study's arms (a) real, (b) + tuned classical
   augmentation, (g) + (b)'s copies + the augmenter's variations; report.md/report.json give the
   accuracies, the gain (g) - (b) per seed and a sentence saying whether the expansion helped;
3. brings every class to per_class images (default 10 x its real ones) with the augmenter's variations of
   all its real images;
4. writes `out`: the dataset (real images first, then the synthetic ones, each marked), export.json (per
   image real or synthetic and its source, the augmenter, the settings, the package version) and
   samples.png.

With `unlabeled=<folder>` (a pool of unlabelled images of the same kind), the semi-supervised GAN
(model=ssgan_mlp) learns from the folder's labels and the pool instead (expand/pool.py), labels every pool
image, and `out` holds the labelled images, then the pool's with their predicted labels: export.json,
labels.csv and the npz mark each image's origin (labelled, or pseudo-labelled with its confidence and
pool file), `min_confidence` leaves uncertain pool images out, review.png shows each class's least
confident labels, and classifier.pt labels more images from Python.

Every finished step (each seed's tuning and arms, the synthetic images) is kept in `<out>.partial/` until
`out` is complete; the same command run again continues from there, and `out` appears whole or not at all.

One module per concern: settings (the checked plan), reading (the labelled folder as converted), store
(the work folder), measure (the held-out measurement), report (its table and sentence), writing (the
dataset, manifest, samples.png and review.png, `out` whole), progress (bars), command (the order of the
steps), pool (the same with a pool: the semi-supervised GAN or self-training labelling it).
"""

from handwriting_gan.expand.command import expand, expand_folder, main
from handwriting_gan.expand.settings import Plan, check_plan, expand_config

__all__ = ["Plan", "check_plan", "expand", "expand_config", "expand_folder", "main"]
