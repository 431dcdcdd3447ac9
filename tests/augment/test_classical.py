"""The tuned classical baseline of the study's arm (b) (handwriting_gan/augment/classical.py)."""

import pytest
import torch

from handwriting_gan.augment.classical import DEFAULT, Classical, Search, tune, validation_split
from handwriting_gan.errors import ConfigError
from handwriting_gan.study.settings import check_study, study_config


def search(**changes) -> Search:
    plan = check_study(study_config(["dataset=fake", "device=cpu"]))
    values = {
        field: getattr(plan.classical_search, field) for field in plan.classical_search.__dataclass_fields__
    }
    return Search.from_mapping(
        {**{k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}, **changes}
    )


def test_the_first_setting_tried_is_the_untuned_default_and_the_rest_follow_the_seed():
    found = search(trials=5)
    first, *rest = found.candidates(expansion=10, seed=0)
    assert first == Classical(**DEFAULT, copies=10)
    assert found.candidates(10, 0) == found.candidates(10, 0)
    assert found.candidates(10, 0) != found.candidates(10, 1)
    for setting in rest:
        assert 0 <= setting.degrees <= 20 and 0 <= setting.translate <= 0.15 and setting.copies in (5, 10, 20)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"trials": 0}, "trials=0 must be at least 1"),
        ({"validation_fraction": 1.0}, r"validation_fraction=1.0 must be in \(0, 1\)"),
        ({"degrees": [20, 0]}, r"degrees=\[20, 0\] must be \[low, high\]"),
        ({"scale": [0, 1.5]}, "must stay below 1"),
        ({"copies": []}, "copies=.* must be a list of positive counts"),
        ({"stepz": 3}, r"unknown keys \['stepz'\]"),
    ],
)
def test_bad_search_settings_name_the_value(changes, message):
    with pytest.raises(ConfigError, match=message):
        search(**changes)


def test_the_validation_part_holds_some_of_every_class_but_never_all():
    labels = torch.tensor([0] * 10 + [1] * 5 + [2] * 1)
    held = validation_split(labels, 0.2, seed=0)
    assert held[labels == 0].sum() == 2 and held[labels == 1].sum() == 1 and held[labels == 2].sum() == 0
    assert torch.equal(held, validation_split(labels, 0.2, seed=0))
    assert not torch.equal(held, validation_split(labels, 0.2, seed=1))


def test_tuning_keeps_the_setting_the_validation_part_scores_best():
    found = search(trials=4, copies=[5, 10, 20])
    candidates = found.candidates(expansion=10, seed=3)
    # A stand-in classifier: "trained" on n images, it scores best where the copies were 20.
    fit, score = (lambda x, y, steps: len(x)), (lambda trained, images, labels: trained / 1000)
    images = torch.zeros(20, 1, 28, 28, dtype=torch.uint8)
    labels = torch.arange(4).repeat(5)
    best, trials = tune(images, labels, 4, found, 10, fit, score, seed=3)
    scores = [t["validation_acc"] for t in trials]
    assert len(trials) == 4 and [t["setting"] for t in trials] == [c.as_dict() for c in candidates]
    assert best == candidates[scores.index(max(scores))]
    assert best.copies == max(c.copies for c in candidates)


def test_one_image_per_class_leaves_nothing_to_validate_on_and_keeps_the_default():
    found = search(trials=3)
    images = torch.zeros(3, 1, 28, 28, dtype=torch.uint8)
    best, trials = tune(images, torch.arange(3), 3, found, 7, lambda *args: None, lambda *args: 0.0, seed=0)
    assert best == Classical(**DEFAULT, copies=7) and trials == []


def test_a_setting_builds_a_transform_that_keeps_type_and_size():
    setting = Classical(degrees=15, translate=0.1, scale=0.1, elastic_alpha=40, elastic_sigma=4, copies=3)
    image = torch.zeros(1, 28, 28, dtype=torch.uint8)
    image[:, 10:18, 12:16] = 255
    out = setting.transform()(image)
    assert out.dtype == torch.uint8 and out.shape == image.shape
    without_elastic = Classical(degrees=0, translate=0, scale=0, elastic_alpha=0, elastic_sigma=4, copies=1)
    assert torch.equal(without_elastic.transform()(image), image)
