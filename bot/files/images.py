"""Images for the model: decoded with Pillow, scaled down to what the model can use, re-encoded, base64'd.

Why 1,540 px on the longest side: Mistral's vision encoders (Mistral Small 3.x / Medium 3, per mistral-common's
`ImageConfig`: 14 px patches merged 2×2, `max_image_size` 1540) scale anything larger down to 1,540 px
themselves, so larger pixels are bytes on the wire and nothing more. Pixtral-era encoders stop at 1,024 px
and scale down the rest on their side, so 1,540 loses nothing on either.

Every image is re-encoded, never forwarded as it came: EXIF (GPS positions included) is dropped, the EXIF
orientation is applied so the model sees it upright, and only the formats below are decoded. Screenshots and
diagrams stay PNG (lossless keeps small text legible); photos become JPEG; a PNG too heavy for the request
falls back to JPEG. Blocking and CPU-bound: run `prepare_image` in a worker thread.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

MAX_SIDE = 1540
MAX_IMAGE_BYTES = 10 * 1024 * 1024  # per image, as its data: URL (REFERENCE.md: about 10 MB)
PNG_BUDGET = 3 * 1024 * 1024  # a PNG heavier than this at 1,540 px is photo-like: JPEG says it in a tenth
# Decoding allocates width × height × 4 bytes: 50 MP is 200 MB, beyond any phone camera's default output.
MAX_PIXELS = 50_000_000
JPEG_QUALITIES = (85, 70, 55)
# Formats Pillow may decode here (Image.open tries no other plugin: less parser surface on untrusted bytes).
DECODE_FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF")


class ImageProblem(Exception):
    """The image cannot be sent; `reason` completes "I skipped `x`: …" (see bot.files.notes)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PreparedImage:
    data_url: str  # data:image/png;base64,…
    mime: str  # image/png or image/jpeg
    width: int
    height: int
    original_width: int
    original_height: int
    encoded_bytes: int  # the image's bytes before base64
    animated: bool  # only the first frame was kept

    @property
    def chunk(self) -> dict[str, str]:
        return {"type": "image_url", "image_url": self.data_url}

    @property
    def downscaled(self) -> bool:
        return (self.width, self.height) != (self.original_width, self.original_height)

    @property
    def tokens(self) -> int:
        return image_tokens(self.width, self.height)


def image_tokens(width: int, height: int) -> int:
    """An upper bound on the context tokens an image costs, over Mistral's known vision encoders.

    Each encoder scales the image to fit its `max_image_size`, then spends a token per patch (16 px for
    Pixtral 12B; 14 px merged 2×2, so 28 px, for Mistral Small 3.x) plus one per row (row breaks, end).
    """
    worst = 0
    for patch, max_size in ((16, 1024), (28, 1540)):
        ratio = max(width / max_size, height / max_size, 1.0)
        w, h = max(round(width / ratio), 1), max(round(height / ratio), 1)
        columns, rows = math.ceil(w / patch), math.ceil(h / patch)
        worst = max(worst, columns * rows + rows)
    return worst


def prepare_image(
    data: bytes, *, max_side: int = MAX_SIDE, max_bytes: int = MAX_IMAGE_BYTES, max_pixels: int = MAX_PIXELS
) -> PreparedImage:
    """The image in `data`, scaled to fit `max_side`, as a data: URL of at most `max_bytes`; else `ImageProblem`."""
    try:
        with Image.open(io.BytesIO(data), formats=DECODE_FORMATS) as probe:
            width, height = probe.size
            if width * height > max_pixels:
                raise ImageProblem(f"it is too large an image ({width}×{height} pixels)")
            probe.verify()  # checksums and structure, without decoding every pixel (PNG's CRCs)
        # verify() leaves the image unusable: open it again to decode.
        with Image.open(io.BytesIO(data), formats=DECODE_FORMATS) as image:
            animated = bool(getattr(image, "is_animated", False))
            source_format = image.format or ""
            image.draft("RGB", (max_side, max_side))  # JPEG: decode at a reduced scale, far less memory and CPU
            image.load()
            if image.mode in ("RGB", "RGBA", "L", "LA"):
                # Shrunk first, in place: every copy after it (turned, converted, encoded) is small. A 4000×3000
                # PNG peaked at 120 MB above the bot's usual size the other way round.
                image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            frame = ImageOps.exif_transpose(image) or image
            turned = frame.size != image.size  # a quarter turn from the EXIF orientation swaps the sides
            original = (height, width) if turned else (width, height)
            frame = _normalize_mode(frame)  # palette and 16-bit images: converted before they are resampled
            frame.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)  # only ever shrinks, keeps the ratio
            encoded, mime = _encode(frame, photo=source_format in ("JPEG", "MPO"), max_bytes=max_bytes)
    except ImageProblem:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):  # the warning: where warnings are errors
        raise ImageProblem("it is too large an image to decode safely") from None
    except UnidentifiedImageError:
        raise ImageProblem("it isn't an image I can open (not PNG, JPEG, GIF or WebP, or damaged)") from None
    except (OSError, SyntaxError, ValueError, TypeError, IndexError, EOFError, MemoryError):
        # What Pillow's decoders raise on truncated or damaged data (SyntaxError: a broken PNG chunk).
        raise ImageProblem("it is damaged and couldn't be decoded") from None
    b64 = base64.b64encode(encoded).decode("ascii")
    return PreparedImage(
        data_url=f"data:{mime};base64,{b64}",
        mime=mime,
        width=frame.width,
        height=frame.height,
        original_width=original[0],
        original_height=original[1],
        encoded_bytes=len(encoded),
        animated=animated,
    )


def _normalize_mode(image: Image.Image) -> Image.Image:
    """RGB, or RGBA when the image has transparency (palette, grey and 16-bit images included)."""
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        return image if image.mode == "RGBA" else image.convert("RGBA")
    if image.mode.startswith("I"):
        # 16-bit greyscale: convert("L") would clip nearly every pixel to white; scale to 8 bits first.
        return image.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    if image.mode == "1":
        return image.convert("L")
    return image if image.mode in ("RGB", "L") else image.convert("RGB")


def _encode(image: Image.Image, *, photo: bool, max_bytes: int) -> tuple[bytes, str]:
    """PNG for screenshots and drawings, JPEG for photos or a PNG over budget, smaller until the URL fits."""
    budget = max_bytes * 3 // 4 - 64  # base64 grows by a third; room for the data: prefix
    if not photo:
        png = _save(image, "PNG", optimize=False, compress_level=6)
        if len(png) <= min(budget, PNG_BUDGET):
            return png, "image/png"
    flat = _flatten(image)
    while True:
        for quality in JPEG_QUALITIES:
            jpeg = _save(flat, "JPEG", quality=quality, optimize=True)
            if len(jpeg) <= budget:
                return jpeg, "image/jpeg"
        if max(flat.size) <= 256:
            raise ImageProblem("it is too large to send even when scaled down")
        flat = flat.resize((max(flat.width * 3 // 4, 1), max(flat.height * 3 // 4, 1)), Image.Resampling.LANCZOS)


def _flatten(image: Image.Image) -> Image.Image:
    """JPEG has no transparency: transparent areas become white (as Slack shows them), not black."""
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        return background
    return image if image.mode in ("RGB", "L") else image.convert("RGB")


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()
