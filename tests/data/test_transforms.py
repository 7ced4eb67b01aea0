import numpy as np
import pytest
import torch
from PIL import Image

from fctlib.data.images import ArrayImages, FileImages
from fctlib.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    TwoViews,
    channel_stats,
    eval_transform,
    simclr_transform,
    train_transform,
)

MEAN3, STD3 = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def _image(shape, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8))


def _normalised(image, mean, std):
    """Brute-force reference: x / 255, minus mean, over std, channel by channel."""
    out = image.double() / 255.0
    for c in range(out.shape[0]):
        out[c] = (out[c] - mean[c]) / std[c]
    return out.float()


def test_eval_transform_normalises_exactly_at_native_size():
    image = _image((3, 16, 16))
    out = eval_transform(16, 3, MEAN3, STD3)(image)
    assert out.dtype == torch.float32 and out.shape == (3, 16, 16)
    assert torch.allclose(out, _normalised(image, MEAN3, STD3), atol=1e-5)


def test_eval_transform_resizes_odd_images_to_square():
    out = eval_transform(32, 1, (0.5,), (0.5,))(_image((1, 13, 29)))
    assert out.shape == (1, 32, 32)
    assert out.min() >= -1.0 - 1e-6 and out.max() <= 1.0 + 1e-6


def test_imagenet_constants_map_the_imagenet_mean_colour_to_zero():
    levels = [round(m * 255) for m in IMAGENET_MEAN]
    image = torch.tensor(levels, dtype=torch.uint8).view(3, 1, 1).expand(3, 8, 8).clone()
    out = eval_transform(8, 3, IMAGENET_MEAN, IMAGENET_STD)(image)
    assert out.abs().max() < 0.5 / 255 / min(IMAGENET_STD)


def test_train_transform_without_randomness_equals_eval():
    image = _image((3, 12, 12))
    plain = train_transform(12, 3, MEAN3, STD3, crop_padding=0, flip=False)
    assert torch.equal(plain(image), eval_transform(12, 3, MEAN3, STD3)(image))


def test_train_transform_flip_gives_original_or_mirror():
    image = _image((1, 10, 10))
    reference = _normalised(image, (0.5,), (0.25,))
    flip_only = train_transform(10, 1, (0.5,), (0.25,), crop_padding=0)
    torch.manual_seed(0)
    seen = set()
    for _ in range(30):
        out = flip_only(image)
        if torch.allclose(out, reference, atol=1e-5):
            seen.add("same")
        elif torch.allclose(out, reference.flip(-1), atol=1e-5):
            seen.add("mirror")
        else:
            pytest.fail("flip-only output is neither the image nor its mirror")
    assert seen == {"same", "mirror"}


def test_train_transform_crop_is_a_window_of_the_zero_padded_image():
    image, size, pad = _image((3, 8, 8), seed=4), 8, 3
    crop_only = train_transform(size, 3, MEAN3, STD3, crop_padding=pad, flip=False)
    padded = torch.nn.functional.pad(image, (pad, pad, pad, pad))  # zero pixels
    windows = {
        (dy, dx): _normalised(padded[:, dy : dy + size, dx : dx + size], MEAN3, STD3)
        for dy in range(2 * pad + 1)
        for dx in range(2 * pad + 1)
    }
    torch.manual_seed(1)
    offsets = set()
    for _ in range(20):
        out = crop_only(image)
        match = [k for k, w in windows.items() if torch.allclose(out, w, atol=1e-5)]
        assert match, "the crop is not a window of the padded image"
        offsets.add(match[0])
    assert len(offsets) > 1


def test_train_transform_default_padding_is_an_eighth():
    steps = train_transform(64, 3, MEAN3, STD3).transforms
    crop = [s for s in steps if type(s).__name__ == "RandomCrop"]
    assert crop and crop[0].padding == [8, 8, 8, 8]


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        ((16, 3, (0.5,), (0.5,)), {}, "one value per channel"),
        ((16, 2, (0.5,) * 2, (0.5,) * 2), {}, "channels must be 1"),
        ((0, 1, (0.5,), (0.5,)), {}, "image_size"),
        ((16, 1, (0.5,), (0.0,)), {}, "std"),
        ((16, 1, (0.5,), (0.5,)), {"crop_padding": -1}, "crop_padding"),
    ],
)
def test_train_transform_rejects_bad_arguments(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        train_transform(*args, **kwargs)


def test_transform_refuses_images_with_other_channel_count():
    with pytest.raises(ValueError, match="channels=1"):
        eval_transform(8, 3, MEAN3, STD3)(_image((1, 8, 8)))


@pytest.mark.parametrize("channels", [1, 3])
def test_simclr_transform_gives_two_different_normalised_views(channels):
    mean, std = MEAN3[:channels], STD3[:channels]
    pair = simclr_transform(24, channels, mean, std)
    assert isinstance(pair, TwoViews)
    torch.manual_seed(0)
    first, second = pair(_image((channels, 30, 30)))
    assert first.shape == second.shape == (channels, 24, 24)
    assert first.dtype == second.dtype == torch.float32
    assert not torch.allclose(first, second)
    lowest = min((0 - m) / s for m, s in zip(mean, std, strict=True))
    highest = max((1 - m) / s for m, s in zip(mean, std, strict=True))
    assert first.min() >= lowest - 1e-5 and first.max() <= highest + 1e-5
    torch.manual_seed(0)
    again = pair(_image((channels, 30, 30)))
    assert torch.equal(again[0], first) and torch.equal(again[1], second)


def test_channel_stats_match_numpy_on_arrays():
    data = np.random.default_rng(5).integers(0, 256, (50, 3, 6, 5), dtype=np.uint8)
    mean, std = channel_stats(ArrayImages(data, np.zeros(50, dtype=int)))
    pixels = data.transpose(1, 0, 2, 3).reshape(3, -1) / 255.0
    assert np.allclose(mean, pixels.mean(axis=1), atol=1e-12)
    assert np.allclose(std, pixels.std(axis=1), atol=1e-12)


def test_channel_stats_over_files_of_different_sizes(tmp_path):
    arrays = [np.full((4, 4), 10, np.uint8), np.full((2, 8), 200, np.uint8)]
    arrays.append(np.arange(9, dtype=np.uint8).reshape(3, 3))
    paths = []
    for i, arr in enumerate(arrays):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(arr, mode="L").save(paths[-1])
    mean, std = channel_stats(FileImages(paths, [0, 1, 2], channels=1))
    pixels = np.concatenate([a.ravel() for a in arrays]) / 255.0
    assert mean[0] == pytest.approx(pixels.mean()) and std[0] == pytest.approx(pixels.std())


def test_channel_stats_sample_is_seeded_subset():
    data = np.random.default_rng(6).integers(0, 256, (40, 1, 4, 4), dtype=np.uint8)
    data[:20] //= 4  # two populations, so different samples give different statistics
    images = ArrayImages(data, np.zeros(40, dtype=int))
    first = channel_stats(images, max_images=10, seed=3)
    assert channel_stats(images, max_images=10, seed=3) == first
    assert channel_stats(images, max_images=10, seed=4) != first
    rows = np.sort(np.random.default_rng(3).choice(40, size=10, replace=False))
    assert first == channel_stats(images.subset(rows))
    assert channel_stats(images, max_images=100) == channel_stats(images)
    with pytest.raises(ValueError, match="empty"):
        channel_stats(images.subset([]))
