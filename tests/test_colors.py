"""stylize.colors: YCbCr against Pillow, luminance-only transfer, histogram matching against scikit-image."""

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.exposure import match_histograms

from stylize import images
from stylize.colors import match_histogram, original_colors, rgb_to_ycbcr, ycbcr_to_rgb


def _random_rgb(width, height, seed):
    """Every 8-bit value can occur: exercises the gamut's corners as well as the patterns' smooth ramps."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def _pil_ycbcr(img):
    return torch.from_numpy(np.asarray(img.convert("YCbCr"), dtype=np.float64)).permute(2, 0, 1)  # (3, H, W), 0..255


@pytest.mark.parametrize("seed", [0, 1])
def test_rgb_to_ycbcr_is_pillows_within_one_level(make_image, seed):
    for img in (make_image(40, 30, seed), _random_rgb(37, 23, seed)):
        ours = rgb_to_ycbcr(images.to_tensor(img).double())[0] * 255  # (3, H, W)
        assert (ours.round() - _pil_ycbcr(img)).abs().max() <= 1  # Pillow rounds fixed-point arithmetic


def test_ycbcr_to_rgb_is_pillows_inverse_within_one_level():
    ycbcr = _random_rgb(31, 17, 3).convert("YCbCr")  # a valid YCbCr image of Pillow's own
    ours = ycbcr_to_rgb(_pil_ycbcr(ycbcr).unsqueeze(0) / 255).clamp(0, 1)[0] * 255
    theirs = torch.from_numpy(np.asarray(ycbcr.convert("RGB"), dtype=np.float64)).permute(2, 0, 1)
    assert (ours.round() - theirs).abs().max() <= 1


def test_ycbcr_round_trip_is_exact_in_float():
    x = torch.rand(2, 3, 9, 11, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(ycbcr_to_rgb(rgb_to_ycbcr(x)), x, atol=1e-6, rtol=0)
    assert torch.allclose(ycbcr_to_rgb(rgb_to_ycbcr(x.double())), x.double(), atol=1e-12, rtol=0)


def test_grey_has_neutral_chroma():
    grey = torch.full((1, 3, 2, 2), 0.3)
    ycbcr = rgb_to_ycbcr(grey)
    assert torch.allclose(ycbcr, torch.tensor([0.3, 128 / 255, 128 / 255]).reshape(1, 3, 1, 1).expand_as(ycbcr))


def test_original_colors_of_content_with_itself_is_the_content(make_image):
    content = images.to_tensor(make_image(40, 30, 1))
    assert (original_colors(content, content) - content).abs().max() <= 1e-6


def test_original_colors_keeps_the_results_luma_and_the_contents_chroma():
    gen = torch.Generator().manual_seed(0)
    # Mid-range colours: no recombination leaves the gamut, so nothing is clamped and the swap is exact.
    result, content = (0.3 + 0.4 * torch.rand(1, 3, 12, 16, generator=gen) for _ in range(2))
    out = original_colors(result, content)
    assert out.shape == result.shape and out.min() >= 0 and out.max() <= 1
    assert torch.allclose(rgb_to_ycbcr(out)[:, 0], rgb_to_ycbcr(result)[:, 0], atol=1e-6, rtol=0)
    assert torch.allclose(rgb_to_ycbcr(out)[:, 1:], rgb_to_ycbcr(content)[:, 1:], atol=1e-6, rtol=0)


def test_original_colors_resizes_the_content_and_clamps():
    result = torch.rand(1, 3, 20, 24, generator=torch.Generator().manual_seed(1))
    content = torch.zeros(1, 3, 10, 12)
    content[:, 0] = 1.0  # pure red: strong chroma, out of gamut for bright luma, so clamping bites
    out = original_colors(result, content)
    assert out.shape == (1, 3, 20, 24) and out.min() >= 0 and out.max() <= 1
    assert (out[:, 0] >= out[:, 1]).all()  # reddish everywhere


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        rgb_to_ycbcr(torch.rand(3, 4, 4))
    with pytest.raises(ValueError, match="reference batch"):
        match_histogram(torch.rand(2, 3, 4, 4), torch.rand(3, 3, 4, 4))


@pytest.mark.parametrize("sizes", [((48, 60), (52, 52)), ((17, 23), (40, 9))])
def test_match_histogram_is_skimages(make_image, sizes):
    (sw, sh), (rw, rh) = sizes
    style, content = images.to_tensor(make_image(sw, sh, 2)), images.to_tensor(make_image(rw, rh, 5))
    ours = match_histogram(style, content)
    hwc = lambda t: t[0].permute(1, 2, 0).numpy()  # noqa: E731
    theirs = match_histograms(hwc(style), hwc(content), channel_axis=-1)
    # skimage works in float64 on the float32 values; ours maps in float64 and rounds to float32 at the end.
    np.testing.assert_allclose(hwc(ours), theirs, atol=1e-6, rtol=0)
    assert ours.shape == style.shape and ours.dtype == style.dtype


def test_match_histogram_on_continuous_values_is_skimages():
    gen = torch.Generator().manual_seed(4)
    source, reference = torch.rand(1, 3, 13, 7, generator=gen).double(), torch.rand(1, 3, 5, 11, generator=gen).double() ** 2
    theirs = match_histograms(source[0].permute(1, 2, 0).numpy(), reference[0].permute(1, 2, 0).numpy(), channel_axis=-1)
    np.testing.assert_allclose(match_histogram(source, reference)[0].permute(1, 2, 0).numpy(), theirs, atol=1e-12, rtol=0)


def test_match_histogram_gives_the_references_values_when_all_are_distinct():
    # With distinct values and equal pixel counts the k-th smallest source value becomes the k-th smallest
    # reference value. (With ties, skimage's and our mapping interpolate between the reference's distinct values.)
    gen = torch.Generator().manual_seed(5)
    source, reference = torch.rand(1, 3, 20, 30, generator=gen), torch.rand(1, 3, 30, 20, generator=gen) ** 3
    ours = match_histogram(source, reference)
    for c in range(3):
        assert torch.equal(ours[0, c].flatten().sort().values, reference[0, c].flatten().sort().values)
        assert torch.equal(ours[0, c].flatten().argsort(), source[0, c].flatten().argsort())  # order kept


def test_match_histogram_to_itself_is_the_identity(make_image):
    x = images.to_tensor(make_image(25, 19, 7))
    assert torch.allclose(match_histogram(x, x), x, atol=1e-7, rtol=0)


def test_style_palette_is_histogram_matching_against_the_pooled_styles():
    from skimage.exposure import match_histograms

    from stylize.colors import style_palette

    gen = torch.Generator().manual_seed(4)
    content = torch.rand(1, 3, 12, 10, generator=gen, dtype=torch.float64)
    a, b = torch.rand(1, 3, 5, 7, generator=gen, dtype=torch.float64), torch.rand(1, 3, 4, 4, generator=gen, dtype=torch.float64) ** 3
    pooled = np.concatenate([a[0].reshape(3, -1), b[0].reshape(3, -1)], axis=1).T[None]  # (1, 51, 3) pixels
    want = match_histograms(content[0].permute(1, 2, 0).numpy(), pooled, channel_axis=-1)
    got = style_palette(content, [a, b])[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(got, want, atol=1e-12)
    one = style_palette(content, [a])
    np.testing.assert_allclose(np.sort(one[0, 1].flatten().numpy())[[0, -1]], [a[0, 1].min(), a[0, 1].max()])


def test_style_palette_recolours_the_runs_content(pair):
    from stylize import images, stylize
    from stylize.colors import style_palette

    common = dict(write=False, steps=1, size=32, scales="none", weights="untrained", init="content",
                  style_weight=0.0, blowup_factor=10)
    before = stylize(*pair, **common).image
    after = stylize(*pair, **common, style_palette=True).image
    c, s = (images.to_tensor(images.load_image(p)) for p in pair)
    want = images.to_tensor(images.resize_shorter(images.to_pil(style_palette(c, [s])), 32))
    torch.testing.assert_close(after, want)  # one evaluation of the content init: the recoloured content itself
    assert not torch.allclose(before, after)
    kept = stylize(*pair, **common, style_palette=True, original_colors=True).image  # original colours win
    torch.testing.assert_close(kept, stylize(*pair, **common, original_colors=True).image)
