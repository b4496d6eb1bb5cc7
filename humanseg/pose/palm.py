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


class _Track:
    """One hand over time: its side, its two filters, where and when it was last seen."""

    def __init__(self, side: str, params: tuple[float, float, float]):
        self.side = side
        self.fx, self.fy = _OneEuro(*params), _OneEuro(*params)
        self.x = self.y = 0.0
        self.seen = -math.inf


class PalmSmoother:
    """Smooths palms over time (timestamps in seconds, passed in by the caller), one filter per hand:
    each palm goes on the hand of its side that was nearest, among those seen within `forget_after`
    seconds (the nearest pair first), so two people's left palms are kept apart; a palm no such hand
    is left for is a new hand and does not glide in from where another was."""

    def __init__(self, min_cutoff: float = 1.5, beta: float = 0.02, d_cutoff: float = 1.0,
                 forget_after: float = 0.5):
        self.params = (min_cutoff, beta, d_cutoff)
        self.forget_after = forget_after
        self._tracks: list[_Track] = []

    def reset(self) -> None:
        """Forget all history."""
        self._tracks.clear()

    def update(self, palms: list[Palm], timestamp: float) -> list[Palm]:
        """Filtered copies of `palms` (frame pixels) seen at `timestamp` seconds, in their order."""
        self._tracks = [t for t in self._tracks if timestamp - t.seen <= self.forget_after]
        pairs = sorted((math.hypot(palm.x - t.x, palm.y - t.y), i, j)
                       for i, palm in enumerate(palms) for j, t in enumerate(self._tracks) if t.side == palm.side)
        track_of: dict[int, _Track] = {}
        taken: set[int] = set()
        for _, i, j in pairs:
            if i not in track_of and j not in taken:
                track_of[i] = self._tracks[j]
                taken.add(j)
        out = []
        for i, palm in enumerate(palms):
            track = track_of.get(i)
            if track is None:  # a new hand: taken as it is
                track = _Track(palm.side, self.params)
                self._tracks.append(track)
            dt = 0.0 if track.seen == -math.inf else timestamp - track.seen
            track.x, track.y, track.seen = palm.x, palm.y, timestamp
            out.append(Palm(x=track.fx(palm.x, dt), y=track.fy(palm.y, dt), side=palm.side, score=palm.score))
        return out
