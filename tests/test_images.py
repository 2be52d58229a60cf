import io

import numpy as np
import pytest
import torch
from PIL import Image

from stylize import images
from stylize.errors import StylizeError


def save(img, tmp_path, name, **kw):
    path = tmp_path / name
    img.save(path, **kw)
    return path


@pytest.mark.parametrize("mode", ["RGB", "L", "1", "P", "CMYK", "YCbCr", "LA", "RGBA", "I", "F"])
def test_modes_become_rgb(tmp_path, make_image, mode):
    src = make_image(20, 10, 0).convert(mode) if mode not in ("I", "F") else make_image(20, 10, 0).convert("L").convert(mode)
    fmt = "TIFF" if mode in ("CMYK", "YCbCr", "I", "F") else "PNG"
    img = images.load_image(save(src, tmp_path, f"x.{fmt.lower()}", format=fmt))
    assert img.mode == "RGB" and img.size == (20, 10)


def test_mode_conversions_keep_the_values(tmp_path):
    gray = Image.new("L", (2, 1), 77)
    assert images.load_image(save(gray, tmp_path, "g.png")).getpixel((0, 0)) == (77, 77, 77)
    cmyk = Image.new("CMYK", (2, 1), (0, 255, 255, 0))  # pure red in Pillow's naive CMYK
    assert images.load_image(save(cmyk, tmp_path, "c.tiff", format="TIFF")).getpixel((0, 0)) == (255, 0, 0)
    f = Image.fromarray(np.full((1, 2), 0.5, dtype=np.float32), "F")
    assert images.load_image(save(f, tmp_path, "f.tiff", format="TIFF")).getpixel((0, 0)) == (128, 128, 128)


def test_jpeg_is_saved_at_high_quality(tmp_path, make_image):
    t = images.to_tensor(make_image(64, 48, 0))
    images.save_image(t, tmp_path / "q.jpg", "q.jpg")
    back = images.to_tensor(Image.open(tmp_path / "q.jpg"))
    assert (back - t).abs().mean() < 0.014  # measured: 0.010 at quality 95, 0.020 at 75 (Pillow default)


def test_transparency_is_composited_on_white(tmp_path):
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    rgba.putpixel((0, 0), (255, 0, 0, 255))
    img = images.load_image(save(rgba, tmp_path, "a.png"))
    assert img.getpixel((1, 1)) == (255, 255, 255) and img.getpixel((0, 0)) == (255, 0, 0)
    pal = Image.new("P", (2, 1))
    pal.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    pal.putpixel((1, 0), 1)
    pal.info["transparency"] = 0
    img = images.load_image(save(pal, tmp_path, "p.png", transparency=0))
    assert img.getpixel((0, 0)) == (255, 255, 255) and img.getpixel((1, 0)) == (10, 20, 30)


def test_16_bit_grayscale_uses_its_full_range(tmp_path):
    a = np.array([[0, 32896, 65535]], dtype=np.uint16)
    img = images.load_image(save(Image.fromarray(a), tmp_path, "g16.png"))
    assert [img.getpixel((i, 0))[0] for i in range(3)] == [0, 128, 255]


def test_exif_orientation_is_applied(tmp_path):
    src = Image.new("RGB", (30, 10), (0, 0, 255))
    src.putpixel((0, 0), (255, 0, 0))  # red at top-left of the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    img = images.load_image(save(src, tmp_path, "e.png", exif=exif.tobytes()))
    assert img.size == (10, 30)
    assert img.getpixel((9, 0))[0] > 200  # top-left went to top-right


def test_first_frame_of_an_animation(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    assert images.load_image(path).getpixel((0, 0))[0] > 200


@pytest.mark.parametrize("content, message", [
    (b"not an image at all", "not an image Pillow can read"),
    (b"", "not an image Pillow can read"),
])
def test_unreadable_files(tmp_path, content, message):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(StylizeError, match=message):
        images.load_image(path)


def test_truncated_file(tmp_path, make_image):
    buf = io.BytesIO()
    make_image(64, 64, 0).save(buf, format="PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(StylizeError, match="cannot read image"):
        images.load_image(path)


def test_missing_and_folder(tmp_path):
    with pytest.raises(StylizeError, match="image not found"):
        images.load_image(tmp_path / "nope.png")
    with pytest.raises(StylizeError, match="not a file"):
        images.load_image(tmp_path)


def test_resize_shorter_edge_like_the_seed(make_image):
    img = make_image(200, 100, 0)
    assert images.resize_shorter(img, 50).size == (100, 50)
    assert images.resize_shorter(img.rotate(90, expand=True), 50).size == (50, 100)


def test_resize_cover_keeps_aspect_and_hits_the_size(make_image):
    style = make_image(100, 100, 1)
    out = images.resize_cover(style, 60, 30)
    assert out.size == (60, 30)
    # cover scale 0.6 then centre crop: equals resizing to 60x60 and cropping rows 15..45
    ref = style.resize((60, 60), Image.BILINEAR).crop((0, 15, 60, 45))
    diff = np.abs(np.asarray(out, dtype=int) - np.asarray(ref, dtype=int))
    assert diff.mean() < 2


def test_tensor_round_trip_and_atomic_save(tmp_path, make_image):
    t = images.to_tensor(make_image(12, 8, 0))
    assert t.shape == (1, 3, 8, 12) and t.dtype == torch.float32 and 0 <= t.min() and t.max() <= 1
    for name in ("o.png", "o.jpg"):
        images.save_image(t, tmp_path / ".tmp", name)
        with Image.open(tmp_path / ".tmp") as saved:
            assert saved.format == ("PNG" if name.endswith("png") else "JPEG")
    images.save_image(t, tmp_path / "o.png", "o.png")
    back = images.to_tensor(Image.open(tmp_path / "o.png"))
    assert torch.allclose(back, t, atol=1 / 255 + 1e-6)


def test_conversions_are_the_seeds_torchvision_transforms():
    """images does without torchvision (its import costs ~1.4 s a call) but must give what the seed's
    ``transforms.Resize`` / ``ToTensor`` / ``ToPILImage`` give, bit for bit."""
    from torchvision.transforms import functional as TF

    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (53, 37, 3), dtype=np.uint8), "RGB")
    want = TF.resize(img, [74, 52], interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
    assert np.array_equal(np.asarray(images.resize_shorter(img, 52)), np.asarray(want))
    t = images.to_tensor(img)
    assert torch.equal(t, TF.to_tensor(img).unsqueeze(0)) and t.is_contiguous()
    x = torch.rand(1, 3, 9, 7, generator=torch.Generator().manual_seed(0)) * 1.2 - 0.1
    assert np.array_equal(np.asarray(images.to_pil(x)), np.asarray(TF.to_pil_image(x[0].clamp(0, 1))))


def test_the_cli_starts_without_torchvision():
    import subprocess
    import sys

    code = "import sys, stylize.cli; sys.exit('torchvision' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("name, message", [("out.gif", "unsupported extension '.gif'"), ("out", "unsupported extension ''")])
def test_output_extension_checked_early(name, message):
    with pytest.raises(StylizeError, match=message):
        images.check_output_path(name)
