"""Augmentations aimed at what goes wrong between a background reference and a later frame.

All functions take and return uint8 BGR images (HxWx3) or masks (HxW, 0/255) and a numpy
Generator, so a sample is reproducible from its seed.
"""

from __future__ import annotations

import cv2
import numpy as np


def affine(scale: float, angle_deg: float, tx: float, ty: float, center=(0.0, 0.0)) -> np.ndarray:
    """2x3 matrix: rotate/scale about `center` (source pixels), then translate (output pixels)."""
    m = cv2.getRotationMatrix2D(center, angle_deg, scale)
    m[0, 2] += tx
    m[1, 2] += ty
    return m


def compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The 2x3 affine that applies b first, then a."""
    a3 = np.vstack([a, [0, 0, 1]])
    b3 = np.vstack([b, [0, 0, 1]])
    return (a3 @ b3)[:2]


def warp(image: np.ndarray, m: np.ndarray, size: tuple[int, int], border: int | None = None) -> np.ndarray:
    """Warp into an output of size (w, h); borders replicate (a real camera never shows black), or
    take the value `border` (a pasted person's mask: nothing outside the picture they came from)."""
    flags = cv2.INTER_LINEAR
    if border is not None:
        return cv2.warpAffine(image, m, size, flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=border)
    return cv2.warpAffine(image, m, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)


def photometric(img: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """Exposure, contrast, gamma and white-balance jitter, as auto-exposure cameras produce."""
    gamma = np.exp(rng.uniform(-0.25, 0.25) * strength)
    gain = np.exp(rng.uniform(-0.35, 0.35) * strength)
    wb = np.exp(rng.uniform(-0.08, 0.08, size=3) * strength)
    contrast = np.exp(rng.uniform(-0.2, 0.2) * strength)
    shift = rng.uniform(-0.04, 0.04) * strength
    # Every step is a per-channel function of the value, so one 256-entry table per channel does it.
    x = np.power(np.arange(256, dtype=np.float32) / 255.0, gamma)
    x = (x - 0.45) * contrast + 0.45
    lut = np.stack([x * gain * wb[c] + shift for c in range(3)], 1)
    lut = np.clip(lut * 255.0 + 0.5, 0, 255).astype(np.uint8).reshape(256, 1, 3)
    return cv2.LUT(img, lut)


def sensor_noise(img: np.ndarray, rng: np.random.Generator, max_sigma: float = 5.0) -> np.ndarray:
    sigma = rng.uniform(0, max_sigma)
    if sigma < 0.5:
        return img
    # OpenCV's generator is ~10x faster than numpy's here; seeding it keeps samples reproducible.
    cv2.setRNGSeed(int(rng.integers(2**31 - 1)))
    noise = np.empty(img.shape, np.float32)
    # One mean and sigma per channel: scalars would fill only the first (blue) channel of a 3-channel array.
    cv2.randn(noise, (0.0,) * img.shape[2], (float(sigma),) * img.shape[2])
    return cv2.add(img, noise, dtype=cv2.CV_8U)


def blur(img: np.ndarray, rng: np.random.Generator, max_sigma: float = 1.2) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, max_sigma))


def jpeg(img: np.ndarray, rng: np.random.Generator, lo: int = 35, hi: int = 90) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(lo, hi))])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else img


def low_resolution(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Down- and up-sample, as a cheaper camera with fewer pixels would look."""
    h, w = img.shape[:2]
    f = rng.uniform(0.4, 0.75)
    small = cv2.resize(img, (max(8, int(w * f)), max(8, int(h * f))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def camera_degrade(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random mix of blur, resolution loss, noise and JPEG, each applied independently per image."""
    if rng.random() < 0.2:
        img = blur(img, rng)
    if rng.random() < 0.15:
        img = low_resolution(img, rng)
    img = sensor_noise(img, rng)
    if rng.random() < 0.35:
        img = jpeg(img, rng)
    return img


def cast_shadow(frame: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Darken a blurred, shifted copy of the person's silhouette outside the person (labelled background)."""
    h, w = mask.shape
    if mask.max() == 0:
        return frame
    dx = rng.uniform(-0.15, 0.15) * w
    dy = rng.uniform(-0.05, 0.1) * h
    s = rng.uniform(0.9, 1.2)
    m = affine(s, rng.uniform(-10, 10), dx, dy, center=(w / 2, h))
    shadow = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0).astype(np.float32) / 255
    k = int(rng.uniform(0.02, 0.08) * w) | 1
    shadow = cv2.GaussianBlur(shadow, (k, k), 0)
    shadow *= 1.0 - mask.astype(np.float32) / 255
    depth = rng.uniform(0.15, 0.5)
    out = frame.astype(np.float32) * (1.0 - depth * shadow[..., None])
    return np.clip(out, 0, 255).astype(np.uint8)


def random_blob(h: int, w: int, rng: np.random.Generator, area: tuple[float, float]) -> np.ndarray:
    """A random convex-ish polygon mask (uint8 0/255) covering roughly `area` of the image."""
    frac = rng.uniform(*area)
    r = np.sqrt(frac * h * w / np.pi)
    cx, cy = rng.uniform(0, w), rng.uniform(h * 0.2, h)
    n = int(rng.integers(5, 10))
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    rad = r * rng.uniform(0.6, 1.4, n)
    pts = np.stack([cx + rad * np.cos(ang), cy + rad * rng.uniform(0.7, 1.6) * np.sin(ang)], 1)
    out = np.zeros((h, w), np.uint8)
    cv2.fillPoly(out, [pts.astype(np.int32)], 255)
    return out


def paste_object(target: np.ndarray, source: np.ndarray, rng: np.random.Generator,
                 keep: np.ndarray | None = None) -> np.ndarray:
    """Paste a random region of `source` into `target` (a moved object); pixels in `keep` stay."""
    h, w = target.shape[:2]
    blob = random_blob(h, w, rng, (0.02, 0.12))
    dx, dy = rng.uniform(-0.3, 0.3) * w, rng.uniform(-0.3, 0.3) * h
    src = warp(source, affine(1.0, 0, dx, dy), (w, h))
    alpha = cv2.GaussianBlur(blob, (3, 3), 0).astype(np.float32) / 255
    if keep is not None:
        alpha *= 1.0 - keep.astype(np.float32) / 255
    out = target.astype(np.float32) * (1 - alpha[..., None]) + src.astype(np.float32) * alpha[..., None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def camouflage(frame: np.ndarray, bkg: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Recolour part of the person with the wall's colour behind it (clothes the colour of the wall).

    The region keeps the person's own shading detail (frame minus its blur) on top of the blurred
    background, so it differs from the reference only weakly and shape has to carry the decision.
    The label does not change: it is still the person.
    """
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return frame
    h, w = mask.shape
    i = rng.integers(len(ys))
    r = np.sqrt(rng.uniform(0.05, 0.35) * len(ys) / np.pi)
    n = int(rng.integers(5, 10))
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    rad = r * rng.uniform(0.6, 1.4, n)
    pts = np.stack([xs[i] + rad * np.cos(ang), ys[i] + rad * rng.uniform(0.7, 1.8) * np.sin(ang)], 1)
    blob = np.zeros((h, w), np.uint8)
    cv2.fillPoly(blob, [pts.astype(np.int32)], 255)
    alpha = cv2.GaussianBlur(blob, (5, 5), 0).astype(np.float32) / 255 * (mask.astype(np.float32) / 255)
    alpha *= rng.uniform(0.5, 0.9)
    f = frame.astype(np.float32)
    k = int(0.04 * w) | 1
    target = cv2.GaussianBlur(bkg, (k, k), 0).astype(np.float32) + (f - cv2.GaussianBlur(f, (k, k), 0))
    out = f * (1 - alpha[..., None]) + target * alpha[..., None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
