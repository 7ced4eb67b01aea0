import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from fctlib.data.images import ArrayImages, FileImages
from fctlib.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CropFlipTransform,
    EvalTransform,
    SimCLRTransform,
    channel_stats,
)

MEAN3, STD3 = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def _images(shape, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8))


def _normalised(images, mean, std):
    """Brute-force reference: x / 255, minus mean, over std, channel by channel."""
    out = images.double() / 255.0
    for c in range(out.shape[1]):
        out[:, c] = (out[:, c] - mean[c]) / std[c]
    return out.float()


def _generator(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("shape, size", [((32, 3, 16, 16), 16), ((16, 1, 13, 29), 24),
                                         ((8, 3, 40, 40), 28)])
def test_eval_transform_is_bit_identical_to_the_per_image_torchvision_pipeline(shape, size):
    channels = shape[1]
    mean, std = MEAN3[:channels], STD3[:channels]
    per_image = v2.Compose([v2.Resize((size, size), antialias=True),
                            v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])
    images = _images(shape)
    out = EvalTransform(size, channels, mean, std)(images)
    assert out.dtype == torch.float32 and out.shape == (shape[0], channels, size, size)
    for image, row in zip(images, out, strict=True):
        assert torch.equal(row, per_image(image))


def test_eval_transform_normalises_exactly_at_native_size():
    images = _images((4, 3, 16, 16))
    out = EvalTransform(16, 3, MEAN3, STD3)(images)
    assert torch.allclose(out, _normalised(images, MEAN3, STD3), atol=1e-5)


def test_imagenet_constants_map_the_imagenet_mean_colour_to_zero():
    levels = [round(m * 255) for m in IMAGENET_MEAN]
    images = torch.tensor(levels, dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 8, 8).clone()
    out = EvalTransform(8, 3, IMAGENET_MEAN, IMAGENET_STD)(images)
    assert out.abs().max() < 0.5 / 255 / min(IMAGENET_STD)


def test_crop_flip_without_randomness_equals_eval():
    images = _images((6, 3, 12, 12))
    plain = CropFlipTransform(12, 3, MEAN3, STD3, crop_padding=0, flip=False)
    assert torch.equal(plain(images, _generator()), EvalTransform(12, 3, MEAN3, STD3)(images))


def _window_offsets(images, out, pad, size, mean, std):
    """Per sample (dy, dx, mirrored) of the window of the zero-padded image that `out` shows."""
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    found = []
    for image, row in zip(padded, out, strict=True):
        match = [(dy, dx, mirrored)
                 for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
                 for mirrored in (False, True)
                 if torch.allclose(row, _window(image, dy, dx, size, mirrored, mean, std),
                                   atol=1e-5)]
        assert match, "an output is not a (mirrored) window of the zero-padded image"
        found.append(match[0])
    return found


def _window(image, dy, dx, size, mirrored, mean, std):
    window = image[None, :, dy:dy + size, dx:dx + size]
    window = window.flip(-1) if mirrored else window
    return _normalised(window, mean, std)[0]


def test_crop_offsets_are_uniform_and_flips_near_half_per_sample():
    size, pad, n = 6, 2, 2000
    images = _images((1, 1, size, size), seed=4).expand(n, -1, -1, -1)
    out = CropFlipTransform(size, 1, (0.5,), (0.25,), crop_padding=pad)(images, _generator(1))
    found = _window_offsets(images, out, pad, size, (0.5,), (0.25,))
    dy, dx, mirrored = (np.array(column) for column in zip(*found, strict=True))
    # every offset in [0, 2 * pad] about equally often on each axis: chi-square, 4 degrees
    for offsets in (dy, dx):
        counts = np.bincount(offsets, minlength=2 * pad + 1)
        expected = n / (2 * pad + 1)
        assert ((counts - expected) ** 2 / expected).sum() < 18.5  # p = 0.001
    assert abs(mirrored.mean() - 0.5) < 0.05
    assert len(set(zip(dy, dx, strict=True))) == (2 * pad + 1) ** 2  # all windows occur


def test_crop_flip_draws_from_the_generator_and_repeats_with_its_seed():
    images = _images((16, 3, 8, 8))
    augment = CropFlipTransform(8, 3, MEAN3, STD3)
    first = augment(images, _generator(5))
    assert torch.equal(augment(images, _generator(5)), first)
    assert not torch.equal(augment(images, _generator(6)), first)


def test_crop_flip_default_padding_is_an_eighth():
    assert CropFlipTransform(64, 3, MEAN3, STD3).padding == 8


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
def test_crop_flip_rejects_bad_arguments(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        CropFlipTransform(*args, **kwargs)


@pytest.mark.parametrize("transform", [EvalTransform, CropFlipTransform, SimCLRTransform])
def test_transforms_refuse_batches_of_other_channel_count_or_dtype(transform):
    augment = transform(8, 3, MEAN3, STD3)
    with pytest.raises(ValueError, match="3-channel"):
        augment(_images((2, 1, 8, 8)))
    with pytest.raises(ValueError, match="uint8"):
        augment(_images((2, 3, 8, 8)).float())


@pytest.mark.parametrize("channels", [1, 3])
def test_simclr_views_differ_per_sample_and_stay_in_range(channels):
    mean, std = MEAN3[:channels], STD3[:channels]
    pair = SimCLRTransform(24, channels, mean, std)
    images = _images((64, channels, 30, 30))
    first, second = pair(images, _generator(0))
    assert first.shape == second.shape == (64, channels, 24, 24)
    assert first.dtype == second.dtype == torch.float32
    differs = (first - second).flatten(1).abs().amax(dim=1) > 1e-3
    assert differs.all()  # the two views of every sample differ
    lowest = min((0 - m) / s for m, s in zip(mean, std, strict=True))
    highest = max((1 - m) / s for m, s in zip(mean, std, strict=True))
    assert first.min() >= lowest - 1e-5 and first.max() <= highest + 1e-5
    again = pair(images, _generator(0))
    assert torch.equal(again[0], first) and torch.equal(again[1], second)


def test_simclr_parameters_are_drawn_per_sample():
    # one image repeated: identical outputs would mean the batch shares its random parameters
    images = _images((1, 3, 20, 20)).expand(200, -1, -1, -1)
    view, _ = SimCLRTransform(20, 3, MEAN3, STD3)(images, _generator(2))
    distinct = torch.unique(view.flatten(1), dim=0)
    assert len(distinct) == 200


def test_simclr_flip_and_jitter_rates():
    # a constant image: crops and flips leave it constant, so a changed value is the jitter's
    n = 4000
    images = torch.full((n, 1, 8, 8), 100, dtype=torch.uint8)
    image = torch.zeros((1, 1, 8, 8), dtype=torch.uint8)
    image[..., :4] = 200  # left half bright: a flip moves it to the right
    view, _ = SimCLRTransform(8, 1, (0.0,), (1.0,))(images, _generator(3))
    jittered = (view - 100 / 255).flatten(1).abs().amax(dim=1) > 1e-4
    assert abs(jittered.float().mean().item() - 0.8) < 0.03
    halves, _ = SimCLRTransform(8, 1, (0.0,), (1.0,))(image.expand(n, -1, -1, -1), _generator(4))
    # brightness/contrast keep the brighter half brighter, whatever crop is drawn
    left, right = halves[..., :4].mean(dim=(1, 2, 3)), halves[..., 4:].mean(dim=(1, 2, 3))
    mirrored = (right > left).float().mean().item()
    assert abs(mirrored - 0.5) < 0.03


def test_simclr_grayscale_rate_on_rgb():
    n = 4000
    colour = torch.tensor([200, 40, 90], dtype=torch.uint8).view(1, 3, 1, 1)
    images = colour.expand(n, 3, 8, 8).contiguous()
    view, _ = SimCLRTransform(8, 3, (0.0,) * 3, (1.0,) * 3)(images, _generator(5))
    gray = (view.amax(dim=1) - view.amin(dim=1)).flatten(1).amax(dim=1) < 1e-6
    assert abs(gray.float().mean().item() - 0.2) < 0.03


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


@pytest.mark.parametrize("channels", [1, 3])
def test_simclr_jitter_on_the_whole_batch_equals_jitter_on_selected_rows(channels):
    """The accelerator's form of the jitter (every op on the whole batch, the rows that apply it
    keep its result) gives a CPU's form's numbers: each op is per sample, so they can differ only
    where a kernel's rounding depends on the batch size (the contrast's per-image mean, the hue's
    batched matrix product); equal bit for bit on the machine that wrote this."""
    from fctlib.data import transforms

    generator = _generator(6)
    x = torch.rand(64, channels, 12, 12, generator=generator)
    ops = ([transforms._brightness, transforms._contrast, transforms._saturation,
            transforms._hue] if channels == 3 else [transforms._brightness, transforms._contrast])
    factors = [torch.rand(64, generator=generator) * 0.8 + 0.6 for _ in ops]
    order = torch.rand(64, len(ops), generator=generator).argsort(dim=1)
    rows = transforms._jitter(x.clone(), ops, factors, order, select_rows=True)
    batch = transforms._jitter(x.clone(), ops, factors, order, select_rows=False)
    torch.testing.assert_close(batch, rows, rtol=0, atol=1e-6)  # pixels in [0, 1]
    assert (rows - x).abs().max() > 0.01  # the jitter changed the images
