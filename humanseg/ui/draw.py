"""Drawing the capture screen onto a BGR uint8 frame in place (buttons, palms, countdown, text)."""

from __future__ import annotations

import unicodedata
from typing import Iterable, Sequence

import cv2
import numpy as np

from humanseg.ui.buttons import Button

FONT = cv2.FONT_HERSHEY_SIMPLEX
# BGR; the original tool's colours: Ext red, Sav/Bkg blue, a running button green.
BUTTON_COLOURS = {"ext": (0, 0, 230), "sav": (230, 80, 0), "bkg": (230, 80, 0)}
ACTIVE_COLOUR = (0, 190, 0)
PALM_COLOUR = (0, 0, 255)
BUTTON_OPACITY = 0.6


def text_scale(text: str, width: float, thickness: int) -> float:
    """Font scale at which `text` is `width` pixels wide."""
    (tw, _), _ = cv2.getTextSize(text, FONT, 1.0, thickness)
    return width / max(tw, 1)


def drawable(text: str) -> str:
    """text as OpenCV's fonts can draw it, ASCII alone: accents dropped ("bilder ü" as "bilder u"),
    any other character one "?" (OpenCV drew a "?" for each byte of its UTF-8, "??" for "ü"; a file
    name's undecodable byte, kept by Python as a surrogate, one "?" too)."""
    if text.isascii():
        return text
    plain = unicodedata.normalize("NFKD", text)
    return "".join(c if c.isascii() else "?" for c in plain if not unicodedata.combining(c))


def put_text(image: np.ndarray, text: str, org: tuple[int, int], scale: float, colour=(255, 255, 255),
             thickness: int = 2) -> None:
    """Text with a dark outline so it stays readable on any background; org is the baseline left."""
    text = drawable(text)
    cv2.putText(image, text, org, FONT, scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
    cv2.putText(image, text, org, FONT, scale, colour, thickness, cv2.LINE_AA)


def draw_button(image: np.ndarray, button: Button, active: bool = False, progress: float = 0.0) -> None:
    """A semi-transparent disc with its label; green while its countdown runs; an arc shows dwell."""
    r = int(round(button.radius))
    cx, cy = int(round(button.x)), int(round(button.y))
    colour = ACTIVE_COLOUR if active else BUTTON_COLOURS.get(button.name, (128, 128, 128))
    h, w = image.shape[:2]
    x0, y0 = max(0, cx - r - 1), max(0, cy - r - 1)
    x1, y1 = min(w, cx + r + 2), min(h, cy + r + 2)
    if x1 > x0 and y1 > y0:
        # Blend only the button's square: a full-frame addWeighted per button costs real FPS.
        roi = image[y0:y1, x0:x1]
        drawn = roi.copy()
        cv2.circle(drawn, (cx - x0, cy - y0), r, colour, -1, cv2.LINE_AA)
        cv2.addWeighted(drawn, BUTTON_OPACITY, roi, 1.0 - BUTTON_OPACITY, 0, dst=roi)
    cv2.circle(image, (cx, cy), r, (255, 255, 255), max(1, r // 20), cv2.LINE_AA)
    if progress > 0:
        cv2.ellipse(image, (cx, cy), (r, r), -90, 0, 360 * progress, (0, 255, 255), max(2, r // 8), cv2.LINE_AA)
    thickness = max(2, r // 16)
    scale = text_scale(button.label, 1.3 * r, thickness)
    (tw, th), _ = cv2.getTextSize(button.label, FONT, scale, thickness)
    put_text(image, button.label, (cx - tw // 2, cy + th // 2), scale, thickness=thickness)


def draw_palms(image: np.ndarray, palms: Iterable[tuple[float, float]], radius: int) -> None:
    """A filled red dot per palm (frame pixels)."""
    for x, y in palms:
        cv2.circle(image, (int(round(x)), int(round(y))), radius, PALM_COLOUR, -1, cv2.LINE_AA)
        cv2.circle(image, (int(round(x)), int(round(y))), radius, (255, 255, 255), 1, cv2.LINE_AA)


# The smallest font scale text is drawn at (about 8 px tall): a longer text is shortened instead.
MIN_TEXT_SCALE = 0.35


def shortened(text: str, width: float, thickness: int, scale: float = MIN_TEXT_SCALE) -> str:
    """text, or shortened to be at most `width` pixels wide at `scale`: its longest path (a word with a
    "/") loses its start ("saved .../set1/bkg.png", "save failed: .../set1/7.png: No space left on
    device"), so what the text says stays; failing that, its end goes ("...")."""
    def fits(candidate: str) -> bool:
        return cv2.getTextSize(candidate, FONT, scale, thickness)[0][0] <= width

    if fits(text):
        return text
    words = text.split(" ")
    paths = [i for i, word in enumerate(words) if "/" in word]
    if paths:
        at = max(paths, key=lambda i: len(words[i]))
        path = words[at]
        for cut in range(1, len(path)):
            candidate = " ".join(words[:at] + ["..." + path[cut:]] + words[at + 1:])
            if fits(candidate):
                return candidate
        words[at] = "..."
    text = " ".join(words)
    while text and not fits(text + "..."):
        text = text[:-1]
    return text + "..."


def draw_band_text(image: np.ndarray, text: str, centre_y: int, height: int, colour=(255, 255, 255)) -> None:
    """Text centred in a darkened horizontal band of `height` pixels around centre_y; one too long
    to read at MIN_TEXT_SCALE across the frame (a saved file's long path) is shortened in the middle."""
    h, w = image.shape[:2]
    y0 = max(0, centre_y - height // 2)
    y1 = min(h, y0 + height)
    band = image[y0:y1]
    band //= 2  # darken in place: cheap and keeps the picture visible underneath
    thickness = max(1, height // 14)
    text = shortened(drawable(text), 0.9 * w, thickness, min(MIN_TEXT_SCALE, height * 0.6 / 22))
    scale = min(text_scale(text, 0.9 * w, thickness), height * 0.6 / 22)
    (tw, th), _ = cv2.getTextSize(text, FONT, scale, thickness)
    put_text(image, text, ((w - tw) // 2, (y0 + y1 + th) // 2), scale, colour, thickness)


def draw_countdown(image: np.ndarray, seconds: int, what: str) -> None:
    """The countdown number drawn large in the middle of the frame with what it will save."""
    h, w = image.shape[:2]
    draw_band_text(image, str(seconds), int(h * 0.72), int(h * 0.28), (0, 255, 255))
    draw_band_text(image, what, int(h * 0.9), int(h * 0.08))


def draw_status(image: np.ndarray, text: str) -> None:
    """One status line at the bottom-left corner."""
    h, w = image.shape[:2]
    thickness = max(1, w // 640)
    scale = 0.55 * w / 640
    put_text(image, text, (int(0.02 * w), h - int(0.025 * h)), scale, thickness=thickness)


def draw_notices(image: np.ndarray, texts: Sequence[str]) -> None:
    """Messages and save confirmations as bands near the top of the frame."""
    h, w = image.shape[:2]
    band = max(18, int(h * 0.06))
    for i, text in enumerate(texts):
        draw_band_text(image, text, int(h * 0.28) + i * (band + 4), band)
