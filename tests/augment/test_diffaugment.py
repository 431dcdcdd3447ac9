"""DiffAugment: shapes kept, gradients reach the input, each policy changes images the way it says,
real and generated batches get the same kinds of transforms, and bad policies name the key."""

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from handwriting_gan.augment.diffaugment import POLICIES, DiffAugment
from handwriting_gan.errors import ConfigError

CONF = Path(__file__).parents[2] / "handwriting_gan" / "conf" / "augment" / "diffaugment.yaml"


def images_without_background(n: int, shape=(1, 28, 28)) -> torch.Tensor:
    """Images in [-1, 1] with no pixel at -1, so every -1 in an output was put there by the augmentation."""
    return torch.rand(n, *shape) * 1.8 - 0.8


def shifted(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """`image` (C, H, W) moved down by dy and right by dx, uncovered pixels at -1."""
    out = torch.full_like(image, -1.0)
    h, w = image.shape[1:]
    out[:, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[
        :, max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


@pytest.mark.parametrize("policy", [[name] for name in POLICIES] + [list(POLICIES)])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_every_policy_keeps_the_shape_changes_the_images_and_leaves_the_input_alone(policy, shape):
    torch.manual_seed(0)
    images = images_without_background(16, shape)
    before = images.clone()
    out = DiffAugment(policy)(images)
    assert out.shape == images.shape
    assert torch.equal(images, before)
    changed = (out != images).flatten(1).any(dim=1)
    assert changed.float().mean() > 0.8  # a rare draw may leave one image as it was (a zero shift)


@pytest.mark.parametrize("policy", [[name] for name in POLICIES] + [list(POLICIES)])
def test_gradients_flow_to_the_input(policy):
    torch.manual_seed(0)
    images = images_without_background(8).requires_grad_()
    (DiffAugment(policy)(images) * torch.randn(8, 1, 28, 28)).sum().backward()
    assert images.grad is not None and torch.isfinite(images.grad).all()
    assert (images.grad.flatten(1).abs().sum(dim=1) > 0).all()


def test_no_policy_and_zero_ratios_are_the_identity():
    images = images_without_background(8)
    assert torch.equal(DiffAugment([])(images), images)
    none = DiffAugment(["translation", "cutout"], translation_ratio=0.0, cutout_ratio=0.0)
    assert torch.equal(none(images), images)


def test_translation_moves_the_image_whole_pixels_per_image_and_fills_with_background():
    torch.manual_seed(0)
    images = images_without_background(32)
    out = DiffAugment(["translation"], translation_ratio=0.125)(images)  # up to round(3.5) = 4 pixels
    shifts = set()
    for image, result in zip(images, out, strict=True):
        matches = [
            (dy, dx)
            for dy in range(-4, 5)
            for dx in range(-4, 5)
            if torch.equal(result, shifted(image, dy, dx))
        ]
        assert len(matches) == 1, "each output is its input moved by one shift within 4 pixels"
        shifts.add(matches[0])
    assert len(shifts) > 5  # fresh shifts per image, not one for the batch


def test_cutout_blanks_one_rectangle_of_the_given_size_to_background():
    torch.manual_seed(0)
    images = images_without_background(64)
    out = DiffAugment(["cutout"], cutout_ratio=0.5)(images)
    cut = out == -1.0
    assert torch.equal(out[~cut], images[~cut])  # everything else is untouched
    for mask in cut[:, 0]:
        rows, cols = mask.any(dim=1).nonzero(), mask.any(dim=0).nonzero()
        assert 0 < len(rows) <= 14 and 0 < len(cols) <= 14
        assert mask.sum() == len(rows) * len(cols)  # one solid rectangle, clipped by the border
    assert (cut.flatten(1).sum(dim=1) == 14 * 14).any()  # whole squares where it fits


def test_color_keeps_one_channel_images_an_increasing_affine_map_of_themselves():
    # Brightness and contrast shift and scale each image; saturation does nothing to one channel, so ink
    # stays brighter than background.
    torch.manual_seed(0)
    images = images_without_background(16)
    out = DiffAugment(["color"])(images)
    flat_in, flat_out = images.flatten(1), out.flatten(1)
    scale = (flat_out[:, 1] - flat_out[:, 0]) / (flat_in[:, 1] - flat_in[:, 0])
    offset = flat_out[:, 0] - scale * flat_in[:, 0]
    torch.testing.assert_close(flat_out, scale[:, None] * flat_in + offset[:, None], atol=1e-5, rtol=0)
    assert ((scale >= 0.5 - 1e-4) & (scale <= 1.5 + 1e-4)).all()
    assert scale.std() > 0.05 and offset.std() > 0.05  # drawn per image


def test_color_changes_saturation_of_colour_images():
    torch.manual_seed(0)
    images = torch.rand(64, 3, 8, 8) * 2 - 1
    out = DiffAugment(["color"])(images)
    spread_in = (images - images.mean(dim=1, keepdim=True)).abs().mean(dim=(1, 2, 3))
    spread_out = (out - out.mean(dim=1, keepdim=True)).abs().mean(dim=(1, 2, 3))
    ratio = spread_out / spread_in  # saturation x contrast: from 0 to 3
    assert ratio.min() < 0.4 and ratio.max() > 1.6


def test_real_and_generated_batches_get_the_same_kinds_of_transforms():
    augment = DiffAugment(["translation", "cutout"])
    real = images_without_background(256)
    fake = images_without_background(256)
    # The same random draws give the same geometry whatever the content ...
    torch.manual_seed(1)
    real_out = augment(real)
    torch.manual_seed(1)
    fake_out = augment(fake)
    assert torch.equal(real_out == -1.0, fake_out == -1.0)
    # ... and independent draws give the same statistics: the fraction of pixels blanked per image.
    blanked_real = (augment(real) == -1.0).float().mean(dim=(1, 2, 3))
    blanked_fake = (augment(fake) == -1.0).float().mean(dim=(1, 2, 3))
    assert blanked_real.mean() == pytest.approx(blanked_fake.mean().item(), abs=0.03)
    assert blanked_real.std() == pytest.approx(blanked_fake.std().item(), abs=0.03)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"policy": ["translation", "rotate"]}, r"augment\.policy=.*'rotate'.*translation, cutout, color"),
        ({"policy": "translation,cutout"}, r"augment\.policy='translation,cutout' must be a list"),
        ({"policy": ["cutout"], "cutout_ratio": 1.5}, r"augment\.cutout_ratio=1\.5 must be in \[0, 1\]"),
        ({"policy": ["translation"], "translation_ratio": -0.1}, r"augment\.translation_ratio=-0\.1"),
    ],
)
def test_bad_settings_name_the_key_the_value_and_what_is_allowed(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        DiffAugment(**kwargs)


def test_the_shipped_config_builds_translation_and_cutout():
    augment = instantiate(OmegaConf.load(CONF))
    assert isinstance(augment, DiffAugment)
    assert augment.policy == ["translation", "cutout"]
    assert augment.fill == -1.0
