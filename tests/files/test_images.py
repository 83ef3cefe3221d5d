"""Images with Pillow: real PNG/JPEG/GIF/WebP bytes in, a data: URL the model takes out, damage as a problem."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from bot.files.images import MAX_SIDE, ImageProblem, image_tokens, prepare_image
from tests.files import samples


def decoded(data_url: str) -> Image.Image:
    header, payload = data_url.split(",", 1)
    assert header in ("data:image/png;base64", "data:image/jpeg;base64")
    image = Image.open(io.BytesIO(base64.b64decode(payload)))
    image.load()
    return image


@pytest.mark.parametrize(
    "fmt,mime",
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/png"), ("WEBP", "image/png"), ("BMP", "image/png")],
)
def test_each_format_becomes_a_data_url(fmt: str, mime: str) -> None:
    prepared = prepare_image(samples.image_bytes(fmt, (64, 48)))
    assert prepared.mime == mime and prepared.data_url.startswith(f"data:{mime};base64,")
    assert (prepared.width, prepared.height) == (64, 48) and not prepared.downscaled
    assert prepared.chunk == {"type": "image_url", "image_url": prepared.data_url}
    image = decoded(prepared.data_url)
    assert image.size == (64, 48)
    r, _, b = image.convert("RGB").getpixel((32, 24))  # type: ignore[misc]
    assert b > 150 and r < 100  # the blue square in the middle survived


def test_a_large_image_is_scaled_to_the_models_size_keeping_its_ratio() -> None:
    prepared = prepare_image(samples.image_bytes("JPEG", (4000, 3000), quality=90))
    assert (prepared.original_width, prepared.original_height) == (4000, 3000)
    assert (prepared.width, prepared.height) == (MAX_SIDE, 1155) and prepared.downscaled
    assert decoded(prepared.data_url).size == (MAX_SIDE, 1155)
    tall = prepare_image(samples.image_bytes("PNG", (300, 6000)))
    assert tall.height == MAX_SIDE and tall.width == 77


def test_a_photo_like_png_is_sent_as_jpeg() -> None:
    prepared = prepare_image(samples.noise_png((1600, 1600)))
    assert prepared.mime == "image/jpeg"
    assert prepared.encoded_bytes < 3 * 1024 * 1024


def test_the_byte_limit_is_respected() -> None:
    prepared = prepare_image(samples.noise_png((1200, 1200)), max_bytes=400_000)
    assert len(prepared.data_url) <= 400_000 and prepared.mime == "image/jpeg"


def test_transparency_is_kept_in_png_and_white_in_jpeg() -> None:
    data = samples.image_bytes("PNG", (80, 80), mode="RGBA", color=(255, 0, 0, 255))
    image = decoded(prepare_image(data).data_url)
    assert image.mode == "RGBA" and image.getpixel((40, 40))[3] == 0  # type: ignore[index]
    # Noise around a transparent square: a PNG too heavy for the limit, so JPEG, whose transparent areas are white.
    noisy = Image.open(io.BytesIO(samples.noise_png((200, 200)))).convert("RGBA")
    noisy.paste((0, 0, 0, 0), (50, 50, 150, 150))
    out = io.BytesIO()
    noisy.save(out, "PNG")
    flat = prepare_image(out.getvalue(), max_bytes=100_000)
    assert flat.mime == "image/jpeg" and len(flat.data_url) <= 100_000
    r, g, b = decoded(flat.data_url).convert("RGB").getpixel((flat.width // 2, flat.height // 2))  # type: ignore[misc]
    assert min(r, g, b) > 200


def test_exif_orientation_is_applied_and_metadata_dropped() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    exif[0x010F] = "PhoneMaker"
    prepared = prepare_image(samples.image_bytes("JPEG", (200, 100), exif=exif.tobytes()))
    assert (prepared.width, prepared.height) == (100, 200)
    assert (prepared.original_width, prepared.original_height) == (100, 200)
    assert dict(decoded(prepared.data_url).getexif()) == {}


def test_an_animated_gif_keeps_its_first_frame() -> None:
    prepared = prepare_image(samples.animated_gif(frames=3))
    assert prepared.animated and prepared.mime == "image/png"
    assert decoded(prepared.data_url).convert("RGB").getpixel((0, 0)) == (0, 0, 0)


def test_sixteen_bit_greyscale_is_scaled_not_clipped() -> None:
    out = io.BytesIO()
    Image.new("I;16", (32, 32), 40_000).save(out, "PNG")
    prepared = prepare_image(out.getvalue())
    value = decoded(prepared.data_url).convert("L").getpixel((5, 5))
    assert 140 <= value <= 170  # type: ignore[operator]


@pytest.mark.parametrize(
    "data,reason",
    [
        (b"this is not an image at all", "isn't an image I can open"),
        (samples.noise_png((300, 300))[:20_000], "damaged"),  # cut short in its pixel data
        (samples.image_bytes("JPEG", (600, 600), quality=95)[:2_000], "damaged"),
        (samples.png_header_only(8000, 8000), "too large an image (8000×8000 pixels)"),
        (samples.png_header_only(30_000, 30_000), "too large an image"),  # Pillow's own bomb limit
        (b"\x89PNG\r\n\x1a\n" + b"garbage" * 10, "damaged"),  # a PNG signature, then junk
    ],
)
def test_bad_images_are_problems_not_crashes(data: bytes, reason: str) -> None:
    with pytest.raises(ImageProblem) as problem:
        prepare_image(data)
    assert reason in problem.value.reason


def test_a_png_with_a_broken_checksum_is_refused() -> None:
    data = bytearray(samples.image_bytes("PNG", (50, 50)))
    data[-20] ^= 0xFF  # inside the last IDAT chunk's data or CRC
    with pytest.raises(ImageProblem):
        prepare_image(bytes(data))


@pytest.mark.parametrize(
    "size,tokens",
    [
        ((1540, 1540), 4160),  # Pixtral's 16-px patches at 1,024 px: 64 × 64 + 64 rows
        ((100, 100), 56),  # 7 × 7 + 7
        ((3000, 10), 65),  # scaled to 1,024 wide: 64 × 1 + 1
    ],
)
def test_image_tokens_bound_both_encoders(size: tuple[int, int], tokens: int) -> None:
    assert image_tokens(*size) == tokens
