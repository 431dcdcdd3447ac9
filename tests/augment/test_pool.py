"""The pool arms' self-training (augment/pool.py): rounds that label the pool and refit on the confident
part, and the threshold chosen on a validation part of the labelled images, never on a test split."""

from __future__ import annotations

import torch

from handwriting_gan.augment.pool import POOL_ARMS, choose_threshold, gan_arms, pool_arms, self_train


class Centroids:
    """A nearest-centroid classifier: enough to see labels spread from a few labelled points."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.centres = torch.stack([images[labels == c].float().mean(0) for c in range(2)])
        self.trained_on = len(labels)


def fit(images, labels):
    return Centroids(images, labels)


def predict(classifier, images):
    distances = torch.cdist(images.float().flatten(1), classifier.centres.flatten(1))
    probabilities = torch.softmax(-distances, dim=1)
    confidence, labels = probabilities.max(dim=1)
    return labels, confidence


def score(classifier, images, labels):
    return (predict(classifier, images)[0] == labels).float().mean().item()


def two_clusters(n: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    images = labels[:, None].float() * 4 + torch.randn(n, 2, generator=generator)
    return images, labels


def test_self_training_labels_the_pool_and_refits_on_the_confident_part():
    images, labels = two_clusters(6, 0)
    pool, truth = two_clusters(200, 1)
    classifier, predicted, kept = self_train((images, labels), pool, fit, predict, threshold=0.9)
    assert 0 < kept.sum() < len(pool)  # the ambiguous middle is left out
    assert classifier.trained_on == len(images) + int(kept.sum())
    assert (predicted[kept] == truth[kept]).float().mean() > 0.95
    everything = self_train((images, labels), pool, fit, predict, threshold=0.0)[2]
    assert everything.all()


def no_copies(images, labels):
    return images[:0], labels[:0]


def test_the_threshold_is_chosen_on_the_labelled_images_only():
    images, labels = two_clusters(10, 2)
    pool, _ = two_clusters(100, 3)
    seen = []

    def watching_score(classifier, held_images, held_labels):
        seen.append(held_images)
        return score(classifier, held_images, held_labels)

    threshold, trials = choose_threshold(
        (images, labels), pool, fit, no_copies, predict, watching_score, seed=0
    )
    assert threshold in [trial["threshold"] for trial in trials] and len(trials) == 3
    assert max(trials, key=lambda t: (t["validation_acc"], t["threshold"]))["threshold"] == threshold
    # Every scored image is one of the labelled images: the validation part is theirs.
    for held in seen:
        assert all((images == row).all(dim=1).any() for row in held)


def test_no_copy_of_a_validation_image_reaches_the_threshold_trials():
    images, labels = two_clusters(10, 7)
    pool, _ = two_clusters(30, 8)
    copied, trained = [], []

    def recording_copies(copy_images, copy_labels):
        copied.append(copy_images)
        return copy_images + 0.01, copy_labels

    def recording_fit(fit_images, fit_labels):
        trained.append(fit_images)
        return fit(fit_images, fit_labels)

    seen = []

    def recording_score(classifier, held_images, held_labels):
        seen.append(held_images)
        return score(classifier, held_images, held_labels)

    choose_threshold((images, labels), pool, recording_fit, recording_copies, predict, recording_score, 0)
    held = seen[0]
    for source in copied:  # copies are made of the training part only
        assert not any((source == row).all(dim=1).any() for row in held)
    for batch in trained:  # and neither a validation image nor its copy is trained on
        assert not any(((batch - row).abs().max(dim=1).values < 0.02).any() for row in held)


def test_the_pool_arms_are_listed_once_with_the_oracle_last():
    assert [arm.letter for arm in POOL_ARMS] == ["s", "p", "q", "r", "t"]
    assert "oracle" in POOL_ARMS[-1].name and POOL_ARMS[-1].title.startswith("(t)")


def test_the_pool_arms_train_on_what_each_adds():
    images, labels = two_clusters(10, 4)
    pool, truth = two_clusters(60, 5)
    test = two_clusters(40, 6)
    sizes = []

    def counting_fit(fit_images, fit_labels):
        sizes.append(len(fit_labels))
        return fit(fit_images, fit_labels)

    def copies(copy_images, copy_labels):
        return copy_images + 0.1, copy_labels

    varied = []

    def vary(vary_images, vary_labels):
        varied.append(vary_labels)
        return vary_images - 0.1, vary_labels

    wrong = 1 - truth  # a GAN that labels every pool image wrongly
    record = pool_arms(
        (images, labels), pool, test, copies, wrong, counting_fit, predict, score, 0, truth, vary=vary
    )
    assert set(record["arms"]) == {
        "real",
        "classical",
        "self_training",
        "pool_gan",
        "pool_gan_synthetic",
        "pool_gan_self_training",
        "pool_oracle",
    }
    assert sizes[:2] == [10, 20]  # (a) the labelled images; (b) with their copies
    # (p) and (t): labelled, copies and the whole pool; (r): two rounds of (b) + the kept part of the pool;
    # (q): (p) and a variation of each labelled and pool image
    assert sizes[-5] == sizes[-1] == 80 and all(20 <= size <= 80 for size in sizes[-4:-2])
    assert sizes[-2] == 150
    # (q) varies the images with the labels (p) trained on: the labelled ones' and the GAN's.
    assert torch.equal(varied[0], torch.cat([labels, wrong]))
    arms = record["arms"]
    assert arms["pool_oracle"] > 0.9 > max(arms["pool_gan"], arms["pool_gan_synthetic"])
    assert record["self_training"]["kept_right"] > 0.9
    without_truth = pool_arms((images, labels), pool, test, copies, wrong, fit, predict, score, 0)
    assert "pool_oracle" not in without_truth["arms"] and "kept_right" not in without_truth["self_training"]
    assert "pool_gan_synthetic" not in without_truth["arms"]  # no (q) without a way to vary


def test_the_gans_self_training_arm_starts_from_the_classifier_of_the_gans_labels():
    images, labels = two_clusters(10, 4)
    pool, truth = two_clusters(60, 5)
    test = two_clusters(40, 6)
    # (s) from (b)'s classifier labels this pool right at any threshold; (r) starts from (p)'s instead, so
    # a GAN that swaps every label keeps (r) wrong where every pool image is kept, and right ones make it
    # right.
    wrong = gan_arms((images, labels), pool, test, 1 - truth, fit, predict, score, threshold=0.0)
    assert wrong["pool_gan"] < 0.1 and wrong["pool_gan_self_training"] < 0.1
    right = gan_arms((images, labels), pool, test, truth, fit, predict, score, threshold=0.0)
    assert right["pool_gan"] > 0.9 and right["pool_gan_self_training"] > 0.9
    assert "pool_gan_synthetic" not in right  # no (q) without a way to vary
