"""Palm centres from wrists and elbows, and a One-Euro filter that steadies them over time."""

from __future__ import annotations

import math

from humanseg.pose.keypoints import Palm, Pose

# The palm centre sits past the wrist by about half the forearm.
PALM_EXTENSION = 0.5


def palms_from_pose(pose: Pose, frame_width: int, frame_height: int, wrist_threshold: float = 0.3,
                    elbow_threshold: float = 0.3, extension: float = PALM_EXTENSION) -> list[Palm]:
    """Palm = wrist + extension * (wrist - elbow) per arm, in frame pixels; arms are independent."""
    palms = []
    for side in ("left", "right"):
        wrist = pose.keypoints.get(f"{side}_wrist")
        elbow = pose.keypoints.get(f"{side}_elbow")
        if wrist is None or elbow is None:
            continue
        if wrist.score < wrist_threshold or elbow.score < elbow_threshold:
            continue
        x = wrist.x + extension * (wrist.x - elbow.x)
        y = wrist.y + extension * (wrist.y - elbow.y)
        if not (0 <= x < frame_width and 0 <= y < frame_height):
            continue
        palms.append(Palm(x=x, y=y, side=side, score=min(wrist.score, elbow.score)))
    return palms


class _OneEuro:
    """One-Euro filter for one scalar: a low-pass whose cutoff (Hz) rises with the signal's speed."""

    def __init__(self, min_cutoff: float, beta: float, d_cutoff: float):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.value: float | None = None
        self.speed = 0.0

    @staticmethod
    def _alpha(cutoff: float, dt: float) -> float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: float, dt: float) -> float:
        if self.value is None or dt <= 0:
            self.value = x
            return x
        raw_speed = (x - self.value) / dt
        a_d = self._alpha(self.d_cutoff, dt)
        self.speed = a_d * raw_speed + (1 - a_d) * self.speed
        cutoff = self.min_cutoff + self.beta * abs(self.speed)
        a = self._alpha(cutoff, dt)
        self.value = a * x + (1 - a) * self.value
        return self.value


class PalmSmoother:
    """Smooths palms per side over time (timestamps in seconds, passed in by the caller); a side that
    is missing longer than `forget_after` seconds starts afresh, so a new hand does not glide in.
    One filter per side: for one person's palms (the capture tool decodes one pose); two people's left
    palms would be smoothed into each other."""

    def __init__(self, min_cutoff: float = 1.5, beta: float = 0.02, d_cutoff: float = 1.0,
                 forget_after: float = 0.5):
        self.params = (min_cutoff, beta, d_cutoff)
        self.forget_after = forget_after
        self._filters: dict[str, tuple[_OneEuro, _OneEuro]] = {}
        self._last_seen: dict[str, float] = {}

    def reset(self) -> None:
        """Forget all history."""
        self._filters.clear()
        self._last_seen.clear()

    def update(self, palms: list[Palm], timestamp: float) -> list[Palm]:
        """Filtered copies of `palms` (frame pixels) seen at `timestamp` seconds."""
        out = []
        for palm in palms:
            last = self._last_seen.get(palm.side)
            if last is None or timestamp - last > self.forget_after:
                self._filters[palm.side] = (_OneEuro(*self.params), _OneEuro(*self.params))
                dt = 0.0
            else:
                dt = timestamp - last
            fx, fy = self._filters[palm.side]
            out.append(Palm(x=fx(palm.x, dt), y=fy(palm.y, dt), side=palm.side, score=palm.score))
            self._last_seen[palm.side] = timestamp
        return out
