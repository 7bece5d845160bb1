"""Motion planning shared by every style: smooth tracks, exits and re-entries, a scripted crossing, camera.

An actor of any style only needs the track fields of :class:`Actor` and an ``extent``; the planner fills the
tracks from the video's single rng, so a video is reproducible from ``(seed, index)`` alone.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from ovsnet.data.procedural.config import DISTRACTOR_BASE, SyntheticConfig


@dataclass(kw_only=True)
class Actor(ABC):
    """One shape (target or distractor) and its per-frame track; styles add the outline and the look."""

    code: int  # instance-map code: label id for targets, DISTRACTOR_BASE + j for distractors
    similar_to: int | None  # the target a distractor imitates
    radius: float  # nominal radius in pixels (spacing, margins, crossings)
    centre: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # (T, 2) x, y
    scale: np.ndarray = field(default_factory=lambda: np.zeros(0))
    angle: np.ndarray = field(default_factory=lambda: np.zeros(0))
    stretch: np.ndarray = field(default_factory=lambda: np.zeros(0))
    exits: list[tuple[int, int]] = field(default_factory=list)  # scripted fully-outside windows

    @property
    def is_distractor(self) -> bool:
        return self.code >= DISTRACTOR_BASE

    @property
    def label(self) -> int:
        return 0 if self.is_distractor else self.code

    @abstractmethod
    def extent(self, cfg: SyntheticConfig) -> float:
        """Upper bound of the distance from the centre to any drawn pixel over the whole video."""


A = TypeVar("A", bound=Actor)


def spread(index: int, fraction: float) -> bool:
    """True for an evenly spread ``fraction`` of indices (index 0 first), deterministic without an rng."""
    return math.ceil(round((index + 1) * fraction, 9)) > math.ceil(round(index * fraction, 9))


def hermite(times: np.ndarray, pos: np.ndarray, zero: np.ndarray, num_frames: int) -> np.ndarray:
    """Smooth (C1) track through keyframes: Catmull-Rom tangents, zero tangent where ``zero`` is set."""
    t = np.arange(num_frames, dtype=np.float64)
    if len(times) == 1:
        return np.repeat(pos[:1], num_frames, axis=0)
    m = np.zeros_like(pos)
    m[1:-1] = (pos[2:] - pos[:-2]) / (times[2:] - times[:-2])[:, None]
    m[0] = (pos[1] - pos[0]) / (times[1] - times[0])
    m[-1] = (pos[-1] - pos[-2]) / (times[-1] - times[-2])
    m[zero] = 0.0
    seg = np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 2)
    t0, dt = times[seg], times[seg + 1] - times[seg]
    s = ((t - t0) / dt)[:, None]
    s2, s3 = s * s, s * s * s
    return (
        (2 * s3 - 3 * s2 + 1) * pos[seg]
        + (s3 - 2 * s2 + s) * dt[:, None] * m[seg]
        + (-2 * s3 + 3 * s2) * pos[seg + 1]
        + (s3 - s2) * dt[:, None] * m[seg + 1]
    )


class Keys:
    """Motion keyframes of one actor: (time, position, zero tangent, free to move for a scripted crossing)."""

    def __init__(self, t: int, p: np.ndarray) -> None:
        self.items: list[tuple[int, np.ndarray, bool, bool]] = [(t, p, False, False)]

    @property
    def last(self) -> tuple[int, np.ndarray]:
        return self.items[-1][0], self.items[-1][1]

    def add(self, t: int, p: np.ndarray, zero: bool = False, free: bool = True) -> None:
        if t <= self.items[-1][0]:
            raise AssertionError("keyframes must be strictly increasing")  # programming error
        self.items.append((t, np.asarray(p, np.float64), zero, free))

    def track(self, num_frames: int) -> np.ndarray:
        times = np.array([k[0] for k in self.items], np.float64)
        pos = np.array([k[1] for k in self.items], np.float64)
        zero = np.array([k[2] for k in self.items], bool)
        return hermite(times, pos, zero, num_frames)


class Planner:
    """Draws every actor's track from the video's single rng (styles draw their shapes from it too)."""

    def __init__(
        self, rng: np.random.Generator, size: tuple[int, int], num_frames: int, cfg: SyntheticConfig
    ) -> None:
        self.rng, self.size, self.T, self.cfg = rng, size, num_frames, cfg

    def uniform(self, bounds: tuple[float, float]) -> float:
        return float(self.rng.uniform(bounds[0], bounds[1]))

    def transforms(self, actor: Actor) -> None:
        """Scale change, rotation and anisotropic stretch over time (the non-rigid parts live in geometry)."""
        cfg, rng, t = self.cfg, self.rng, np.arange(self.T, dtype=np.float64)
        actor.scale = np.exp(
            cfg.scale_amp
            * np.sin(2 * math.pi * t / self.uniform(cfg.scale_period) + rng.uniform(0, 2 * math.pi))
        )
        omega = math.radians(cfg.rotation_speed) * float(rng.uniform(-1, 1))
        actor.angle = rng.uniform(0, 2 * math.pi) + omega * t + 0.15 * np.sin(t / 7.0 + rng.uniform(0, 6.3))
        actor.stretch = np.exp(
            cfg.stretch_amp
            * np.sin(2 * math.pi * t / self.uniform(cfg.scale_period) + rng.uniform(0, 2 * math.pi))
        )

    # -- motion ---------------------------------------------------------------------------------------------
    def box(self, actor: Actor) -> tuple[np.ndarray, np.ndarray]:
        """Allowed range of an inside keyframe's centre: the shape may poke out a little, never leave."""
        h, w = self.size
        margin = 0.7 * actor.radius
        low = np.array([min(margin, w / 2), min(margin, h / 2)])
        return low, np.array([w, h], np.float64) - low

    def wander(self, keys: Keys, actor: Actor, t_end: int, others: Sequence[Actor] = ()) -> None:
        """Random inside keyframes up to ``t_end`` (inclusive), each step bounded by the wander speed.

        Of a few candidate keys the one farthest from the already planned ``others`` wins, so objects do not
        pile up (occlusions still happen, and the scripted crossing makes sure of one).
        """
        low, high = self.box(actor)
        step_max = self.cfg.max_speed * self.size[1]
        while keys.last[0] < t_end:
            t0, p0 = keys.last
            t1 = min(t0 + int(self.rng.integers(self.cfg.key_spacing[0], self.cfg.key_spacing[1] + 1)), t_end)
            delta = self.rng.uniform(low, high, size=(3, 2)) - p0
            dist = np.linalg.norm(delta, axis=1, keepdims=True)
            limit = step_max * (t1 - t0)
            cands = np.clip(p0 + delta * np.minimum(1.0, limit / np.maximum(dist, 1e-9)), low, high)
            if others:
                clearance = np.min(
                    [
                        np.linalg.norm(cands - o.centre[t1], axis=1) / (actor.radius + o.radius)
                        for o in others
                    ],
                    axis=0,
                )
                keys.add(t1, cands[int(np.argmax(clearance))])
            else:
                keys.add(t1, cands[0])

    def exit_cycles(self, keys: Keys, actor: Actor, others: Sequence[Actor] = ()) -> None:
        """Leave the frame, stay fully outside for a gap, come back; repeated every ``reentry_cycle`` frames."""
        cfg, rng, T = self.cfg, self.rng, self.T
        h, w = self.size
        out = actor.extent(cfg) + 2.0
        low, high = self.box(actor)
        cycles = max(1, T // cfg.reentry_cycle)
        length = T // cycles
        for c in range(cycles):
            base = c * length
            end = T - 1 if c == cycles - 1 else (c + 1) * length - 1
            span = end - base + 1
            exit_frames = max(2, round(span * float(rng.uniform(0.08, 0.15))))
            entry_frames = max(2, round(span * float(rng.uniform(0.08, 0.15))))
            gap = max(2, round(span * self.uniform(cfg.reentry_gap)))
            budget = span - 1 - (exit_frames + gap + entry_frames)
            if budget < 0:
                gap = max(1, gap + budget)
                budget = span - 1 - (exit_frames + gap + entry_frames)
                if budget < 0:
                    continue
            start = (
                base + int(rng.integers(0, budget // 2 + 1)) if c else int(rng.integers(0, budget // 3 + 1))
            )
            start = max(start, keys.last[0])
            if start > keys.last[0]:
                self.wander(keys, actor, start, others)
            _, pa = keys.last
            # the nearest border; both outside keys lie on that side, so the straight path between them
            # (zero tangents: a smoothstep along the segment) never touches the frame
            side = int(np.argmin([pa[0], w - pa[0], pa[1], h - pa[1]]))
            t_out, t_back, t_in = (
                start + exit_frames,
                start + exit_frames + gap,
                start + exit_frames + gap + entry_frames,
            )

            def outside(along: float, side: int = side) -> np.ndarray:
                if side == 0:
                    return np.array([-out, along])
                if side == 1:
                    return np.array([w + out, along])
                if side == 2:
                    return np.array([along, -out])
                return np.array([along, h + out])

            horizontal = side < 2
            extent_along = h if horizontal else w
            along_a = pa[1] if horizontal else pa[0]
            along_b = float(np.clip(along_a + rng.uniform(-0.2, 0.2) * extent_along, 0, extent_along))
            along_c = float(rng.uniform(0.15, 0.85) * extent_along)
            keys.add(t_out, outside(along_b), zero=True, free=False)
            keys.add(t_back, outside(along_c), zero=True, free=False)
            inward = float(rng.uniform(1.0, 1.6)) * actor.radius
            along_d = along_c + float(rng.uniform(-0.15, 0.15)) * extent_along
            if side == 0:
                pd = np.array([inward, along_d])
            elif side == 1:
                pd = np.array([w - inward, along_d])
            elif side == 2:
                pd = np.array([along_d, inward])
            else:
                pd = np.array([along_d, h - inward])
            keys.add(t_in, np.clip(pd, low, high))
            actor.exits.append((t_out, t_back))
        if keys.last[0] < T - 1:
            self.wander(keys, actor, T - 1, others)

    def initial_positions(self, actors: list[Actor]) -> list[np.ndarray]:
        """Frame-0 centres, spread apart by rejection sampling so the first-frame masks are representative."""
        placed: list[np.ndarray] = []
        for actor in actors:
            low, high = self.box(actor)
            best, best_gap = None, -np.inf
            for _ in range(60):
                p = self.rng.uniform(low, high)
                gap = min(
                    (
                        float(np.linalg.norm(p - q)) - 0.9 * (actor.radius + other.radius)
                        for q, other in zip(placed, actors, strict=False)
                    ),
                    default=np.inf,
                )
                if gap > best_gap:
                    best, best_gap = p, gap
                if gap >= 0:
                    break
            placed.append(best)
        return placed


def camera_track(
    rng: np.random.Generator, size: tuple[int, int], num_frames: int, cfg: SyntheticConfig
) -> np.ndarray:
    """(T, 3) pan x, pan y (pixels) and zoom (>= 1): smooth periodic camera motion."""
    h, w = size
    t = np.arange(num_frames, dtype=np.float64)
    periods = rng.uniform(cfg.camera_period[0], cfg.camera_period[1], size=3)
    phases = rng.uniform(0, 2 * math.pi, size=3)
    amps = rng.uniform(0.5, 1.0, size=3)
    pan_x = cfg.camera_pan * w * amps[0] * np.sin(2 * math.pi * t / periods[0] + phases[0])
    pan_y = cfg.camera_pan * h * amps[1] * np.sin(2 * math.pi * t / periods[1] + phases[1])
    zoom = 1.0 + cfg.camera_zoom * amps[2] * 0.5 * (1 + np.sin(2 * math.pi * t / periods[2] + phases[2]))
    return np.stack([pan_x, pan_y, zoom], axis=1)


def illumination_track(rng: np.random.Generator, cfg: SyntheticConfig, num_frames: int) -> np.ndarray:
    """(T,) global gain: a slow sinusoidal flicker of amplitude ``cfg.illumination``."""
    t = np.arange(num_frames, dtype=np.float64)
    return 1.0 + cfg.illumination * np.sin(2 * math.pi * t / float(rng.uniform(20, 60)) + rng.uniform(0, 6.3))


def cast(
    planner: Planner,
    index: int,
    num_objects: int,
    target: Callable[[int, float], A],
    distractor: Callable[[int, A, float], A],
) -> tuple[list[A], dict[str, Any]]:
    """Draw the targets and look-alike distractors of a video, then plan their tracks (:func:`animate`).

    ``target(code, area)`` builds a target covering ``area`` of the frame; ``distractor(code, ref, ratio)``
    builds a smaller look-alike of ``ref`` (``ratio`` of its area). Both styles share the sizing and the
    distractor draw, so they differ only in what an actor looks like.
    """
    rng, cfg = planner.rng, planner.cfg
    hi = min(cfg.object_area[1], cfg.max_total_area / num_objects)
    area_range = (min(cfg.object_area[0], hi), hi)
    targets = [target(k + 1, planner.uniform(area_range)) for k in range(num_objects)]
    distractors: list[A] = []
    if cfg.max_distractors and rng.random() < cfg.distractor_prob:
        for j in range(int(rng.integers(1, cfg.max_distractors + 1))):
            ref = targets[int(rng.integers(0, num_objects))]
            distractors.append(distractor(DISTRACTOR_BASE + j, ref, planner.uniform(cfg.distractor_area)))
    return animate(planner, targets, distractors, index)


def animate(
    planner: Planner, targets: list[A], distractors: list[A], index: int
) -> tuple[list[A], dict[str, Any]]:
    """Plan every actor's track: transforms, frame-0 spread, wander, scripted exit + re-entry and crossing.

    Shared by every style: an actor only needs ``code``, ``radius``, ``extent(cfg)`` and the track fields of
    :class:`Actor` (``centre``, ``scale``, ``angle``, ``stretch``, ``exits``). Returns the actors back to front
    and the scripted events.
    """
    rng, cfg, num_frames, num_objects = planner.rng, planner.cfg, planner.T, len(targets)
    actors = targets + distractors
    for actor in actors:
        planner.transforms(actor)
    starts = planner.initial_positions(actors)

    reentry = num_frames >= cfg.reentry_min_frames and spread(index, cfg.reentry_fraction)
    exit_actor = targets[int(rng.integers(0, num_objects))] if reentry else None
    order = [int(i) for i in rng.permutation(len(actors))]
    depth = [actors[i] for i in order if actors[i] is not exit_actor]
    if exit_actor is not None:
        depth.append(exit_actor)  # front-most: once back inside it is always visible
    keys: dict[int, Keys] = {}
    for k, (actor, start) in enumerate(zip(actors, starts, strict=True)):
        keys[actor.code] = Keys(0, start)
        if actor is exit_actor:
            planner.exit_cycles(keys[actor.code], actor, actors[:k])
        else:
            planner.wander(keys[actor.code], actor, num_frames - 1, actors[:k])
        actor.centre = keys[actor.code].track(num_frames)

    crossing = None
    if num_objects >= 2 and num_frames >= 3 and spread(index, cfg.occlusion_fraction):
        ranked = [a for a in depth if not a.is_distractor]
        pairs = [(f, b) for i, b in enumerate(ranked) for f in ranked[i + 1 :]]
        front, back = pairs[int(rng.integers(0, len(pairs)))]
        free = [i for i, item in enumerate(keys[front.code].items) if item[3] and item[0] > 0]
        if free:
            goal = float(rng.uniform(0.4, 0.9)) * (num_frames - 1)
            i = min(free, key=lambda i: abs(keys[front.code].items[i][0] - goal))
            t_key = keys[front.code].items[i][0]
            direction = rng.uniform(0, 2 * math.pi)
            offset = 0.3 * (front.radius + back.radius) * np.array([math.cos(direction), math.sin(direction)])
            low, high = planner.box(front)
            pos = np.clip(back.centre[t_key] + offset, low, high)
            keys[front.code].items[i] = (t_key, pos, False, True)
            front.centre = keys[front.code].track(num_frames)
            crossing = {"front": front.code, "back": back.code, "frame": int(t_key)}
    scripted = {"reentry_object": exit_actor.code if exit_actor else None, "crossing": crossing}
    return depth, scripted
