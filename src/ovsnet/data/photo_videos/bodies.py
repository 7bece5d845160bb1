"""The shape families of the photo style: bipeds, quadrupeds, branches, holed outlines, crescents, stars.

Thin parts, holes and articulated limbs are what real objects have and the toy stars lack; each family is a
:class:`~ovsnet.data.photo_videos.shapes.Shape` drawn from the video's rng.
"""

from __future__ import annotations

import math

import numpy as np

from ovsnet.data.photo_videos.shapes import Part, Shape, ellipse
from ovsnet.data.procedural.config import PhotoConfig, SyntheticConfig
from ovsnet.data.procedural.outlines import StarOutline, concave_amp


class _Biped(Shape):
    """A person-like body: torso, head, two jointed legs in a walking gait and 0-2 jointed swinging arms."""

    kind = "limbs"

    def __init__(self, rng: np.random.Generator, limbs: int, swing: float, omega: float) -> None:
        super().__init__()
        u = lambda a, b: float(rng.uniform(a, b))  # noqa: E731
        self.tw, self.th = u(0.34, 0.46), u(0.68, 0.82)
        self.hr = u(0.24, 0.32)
        self.upright = True
        phase = u(0, 2 * math.pi)
        amp = swing * u(0.7, 1.0)
        for side in (-1, 1):  # legs, in antiphase; the knee flexes a quarter cycle later
            leg = phase + (0.0 if side < 0 else math.pi)
            hip = (side * 0.55 * self.tw, 0.8 * self.th)
            thigh = self.root(hip, math.pi / 2 - side * 0.08, u(0.62, 0.78), (0.16, 0.12), amp, omega, leg)
            self.child(thigh, 1.0, 0.3, u(0.58, 0.72), (0.12, 0.09), 0.3, omega, leg + math.pi / 2)
        for k, side in enumerate((-1, 1)[: limbs - 2]):  # arms swing against the leg of the same side
            arm = phase + (math.pi if side < 0 else 0.0)
            shoulder = (side * 0.85 * self.tw, -0.72 * self.th)
            angle = math.pi / 2 - side * u(0.2, 0.5)
            upper = self.root(shoulder, angle, u(0.46, 0.58), (0.11, 0.09), 0.8 * amp, omega, arm + 0.3 * k)
            self.child(upper, 1.0, -0.35 * side, u(0.42, 0.52), (0.09, 0.07), 0.25, omega, arm + math.pi / 2)
        self.mirror = bool(rng.random() < 0.5)
        self.info = {"body": "biped", "limbs": limbs, "holes": 0}

    def body(self, t: int) -> list[Part]:
        head_y = -self.th - 0.85 * self.hr
        return [Part(ellipse(0, 0, self.tw, self.th)), Part(ellipse(0, head_y, self.hr, self.hr * 1.1))]

    def body_reach(self) -> float:
        return self.th + 1.85 * self.hr * 1.1


class _Quadruped(Shape):
    """An animal seen from the side: torso, a nodding neck and head, 2-4 jointed legs in a gait, a tail."""

    kind = "limbs"

    def __init__(self, rng: np.random.Generator, limbs: int, swing: float, omega: float) -> None:
        super().__init__()
        u = lambda a, b: float(rng.uniform(a, b))  # noqa: E731
        self.bw, self.bh = 1.0, u(0.36, 0.46)
        self.upright = True
        phase = u(0, 2 * math.pi)
        amp = swing * u(0.6, 0.9)
        neck = self.root(
            (0.72, -0.5 * self.bh), -u(0.8, 1.2), u(0.45, 0.6), (0.2, 0.14), 0.12, omega / 2, phase
        )
        self.child(neck, 1.0, u(0.9, 1.3), u(0.32, 0.42), (0.19, 0.08))  # the head, snout tapering
        legs = 4 if limbs == 4 else 2  # diagonal pairs move together
        for x, offset in [(0.62, 0.0), (-0.62, math.pi), (0.48, math.pi), (-0.74, 0.0)][:legs]:
            leg = phase + offset
            upper = self.root((x, 0.55 * self.bh), math.pi / 2, u(0.42, 0.55), (0.15, 0.11), amp, omega, leg)
            self.child(upper, 1.0, 0.0, u(0.38, 0.5), (0.1, 0.07), 0.3, omega, leg - math.pi / 2)
        angle, length = math.pi + u(0.4, 0.9), u(0.4, 0.6)
        tail = self.root(
            (-0.92, -0.2 * self.bh), angle, length, (0.08, 0.04), 0.35, 1.7 * omega, u(0, 2 * math.pi)
        )
        if limbs == 3:  # a jointed tail is the third limb
            self.child(tail, 1.0, -0.4, u(0.3, 0.45), (0.04, 0.025), 0.4, 1.7 * omega, u(0, 2 * math.pi))
        self.mirror = bool(rng.random() < 0.5)
        self.info = {"body": "quadruped", "limbs": limbs, "holes": 0}

    def body(self, t: int) -> list[Part]:
        return [Part(ellipse(0, 0, self.bw, self.bh))]

    def body_reach(self) -> float:
        return self.bw


class _Branch(Shape):
    """A plant-like shape: a swaying trunk of three segments, thin branches and twigs, leaves at the tips."""

    kind = "branch"

    def __init__(self, rng: np.random.Generator, swing: float, omega: float) -> None:
        super().__init__()
        u = lambda a, b: float(rng.uniform(a, b))  # noqa: E731
        phase = u(0, 2 * math.pi)
        widths = (0.24, 0.18, 0.13, 0.08)
        trunk = self.root(
            (0.0, 0.9),
            -math.pi / 2 + u(-0.25, 0.25),
            u(0.52, 0.62),
            widths[:2],
            0.125 * swing,
            0.6 * omega,
            phase,
        )
        for k in (1, 2):  # the sway grows and lags towards the top
            trunk = self.child(
                trunk,
                1.0,
                u(-0.3, 0.3),
                u(0.52, 0.62),
                widths[k : k + 2],
                0.25 * swing * (0.5 + k),
                0.6 * omega,
                phase - 0.6 * k,
            )
        side = 1 if rng.random() < 0.5 else -1
        tips = [trunk]
        for j in range(int(rng.integers(2, 6))):
            branch = self.child(
                int(rng.integers(0, 3)),
                u(0.35, 0.95),
                side * u(0.5, 1.05),
                u(0.4, 0.7),
                (0.09, 0.045),
                0.35 * swing,
                omega * u(0.8, 1.3),
                phase - 0.5 * j,
            )
            tips.append(branch)
            if rng.random() < 0.5:
                tips.append(
                    self.child(
                        branch,
                        u(0.45, 0.8),
                        -side * u(0.4, 0.8),
                        u(0.22, 0.35),
                        (0.05, 0.025),
                        0.4 * swing,
                        1.4 * omega,
                        phase - 0.5 * j - 1.0,
                    )
                )
            side = -side
        for tip in tips:  # a leaf: a capsule that swells from its stalk
            size = u(0.28, 0.4)
            self.child(tip, 1.0, u(-0.5, 0.5), size, (0.03, 0.45 * size), 0.3 * swing, 1.6 * omega, u(0, 6.3))
        self.mirror = bool(rng.random() < 0.5)
        self.info = {"body": "branch", "limbs": 0, "holes": 0, "branches": len(tips) - 1}


class _Holed(Shape):
    """A rounded outline (superellipse with bumps) pierced by 1-3 holes that pulse and drift."""

    kind = "holes"

    def __init__(self, rng: np.random.Generator, holes: int, cfg: SyntheticConfig) -> None:
        super().__init__()
        u = lambda a, b: float(rng.uniform(a, b))  # noqa: E731
        self.ey = u(0.65, 1.0)
        self.power = u(2.0, 4.0)
        self.bumps = int(rng.integers(3, 7))
        self.bump_amp, self.bump_phase = u(0.03, 0.08), u(0, 2 * math.pi)
        self.drift = u(-1, 1) * cfg.deform_speed
        self.theta = np.linspace(0.0, 2.0 * math.pi, 72, endpoint=False)
        self.holes: list[tuple[float, float, float, float, float, float, float]] = []
        base = u(0, 2 * math.pi)
        for k in range(holes):
            if holes == 1:
                rho, dist = u(0.35, 0.5), u(0.0, 0.1)
            else:
                rho, dist = u(0.17, 0.24), 0.42
            angle = base + 2 * math.pi * k / holes + u(-0.3, 0.3)
            self.holes.append(
                (
                    dist * math.cos(angle),
                    dist * math.sin(angle) * self.ey,
                    rho * self.ey,
                    u(0.75, 1.0),
                    u(0, math.pi),
                    2 * math.pi / u(*cfg.scale_period),
                    u(0, 2 * math.pi),
                )
            )
        self.info = {"body": "holed", "limbs": 0, "holes": holes}

    def body(self, t: int) -> list[Part]:
        th, p = self.theta, self.power
        c, s = np.cos(th), np.sin(th)
        r = (np.abs(c) ** p + np.abs(s / self.ey) ** p) ** (-1.0 / p)
        r = r * (1.0 + self.bump_amp * np.cos(self.bumps * th + self.bump_phase + self.drift * t))
        holes = []
        for x, y, rho, ratio, rot, freq, phase in self.holes:
            size = rho * (1.0 + 0.15 * math.sin(freq * t + phase))
            wob = 0.04 * math.sin(0.7 * freq * t + phase)
            holes.append(ellipse(x + wob, y - wob, size, size * ratio, 24, rot + 0.3 * math.sin(freq * t)))
        return [Part(np.stack([r * c, r * s], axis=1), holes)]

    def body_reach(self) -> float:
        return 2**0.5 * (1.0 + self.bump_amp)


class _Crescent(Shape):
    """A thick arc, thinner towards its tips, whose opening widens and narrows (a claw, a bitten ring)."""

    kind = "crescent"

    def __init__(self, rng: np.random.Generator, cfg: SyntheticConfig) -> None:
        super().__init__()
        u = lambda a, b: float(rng.uniform(a, b))  # noqa: E731
        self.thick, self.tip = u(0.3, 0.5), u(0.3, 0.9)
        self.centre_angle = u(0, 2 * math.pi)
        self.span, self.span_amp = u(1.9, 2.6), u(0.15, 0.35)
        self.freq, self.phase = 2 * math.pi / u(*cfg.scale_period), u(0, 2 * math.pi)
        self.info = {"body": "crescent", "limbs": 0, "holes": 0}

    def body(self, t: int) -> list[Part]:
        half = min(self.span + self.span_amp * math.sin(self.freq * t + self.phase), 2.95)
        n = 40
        v = np.linspace(0.0, 1.0, n)
        angle = self.centre_angle - half + 2 * half * v
        width = self.thick * (self.tip + (1.0 - self.tip) * np.sin(math.pi * v) ** 0.7)
        outer = np.stack([np.cos(angle), np.sin(angle)], axis=1)
        inner = (1.0 - width)[:, None] * outer
        caps = []
        for idx, sign in ((-1, 1.0), (0, -1.0)):  # round tips: outer -> inner at the end, back at the start
            mid = (1.0 - width[idx] / 2) * outer[idx]
            tangent = angle[idx] + sign * math.pi / 2
            arc = tangent + np.linspace(-math.pi / 2, math.pi / 2, 7)[1:-1]
            caps.append(mid + width[idx] / 2 * np.stack([np.cos(arc), np.sin(arc)], axis=1))
        outline = np.concatenate([outer, caps[0], inner[::-1], caps[1]])
        return [Part(outline)]

    def body_reach(self) -> float:
        return 1.0


class _Star(Shape):
    """The toy generator's outline (:class:`~ovsnet.data.procedural.outlines.StarOutline`) as a photo shape."""

    kind = "star"

    def __init__(self, rng: np.random.Generator, cfg: SyntheticConfig) -> None:
        super().__init__()
        n = int(rng.integers(cfg.lobes[0], cfg.lobes[1] + 1))
        amp = concave_amp(float(rng.uniform(*cfg.lobe_amp)), n, cfg.deform_amp)
        phase = float(rng.uniform(0, 2 * math.pi))
        drift = float(rng.uniform(-1, 1)) * cfg.deform_speed
        amp_freq = 2 * math.pi / float(rng.uniform(*cfg.scale_period))
        amp_phase = float(rng.uniform(0, 2 * math.pi))
        k = rng.integers(2, 9, size=cfg.harmonics).astype(np.float64)
        k_amp = rng.uniform(0.3, 1.0, size=cfg.harmonics) * cfg.harmonic_amp
        k_phase = rng.uniform(0, 2 * math.pi, size=cfg.harmonics)
        k_drift = rng.uniform(-1, 1, size=cfg.harmonics) * cfg.deform_speed * 1.5
        self.star = StarOutline(
            n, amp, phase, drift, amp_freq, amp_phase, cfg.deform_amp, k, k_amp, k_phase, k_drift
        )
        self.theta = np.linspace(0.0, 2.0 * math.pi, cfg.vertices, endpoint=False)
        self.info = {"body": "star", "limbs": 0, "holes": 0, "lobes": n}

    def body(self, t: int) -> list[Part]:
        r = self.star.radius(self.theta, t)
        return [Part(np.stack([r * np.cos(self.theta), r * np.sin(self.theta)], axis=1))]

    def body_reach(self) -> float:
        return self.star.reach()


def make_shape(kind: str, rng: np.random.Generator, pcfg: PhotoConfig, cfg: SyntheticConfig) -> Shape:
    """A shape of family ``kind`` (see :data:`~ovsnet.data.procedural.config.KINDS`) with its gait drawn."""
    omega = 2 * math.pi / float(rng.uniform(*pcfg.gait_period))
    if kind == "limbs":
        limbs = int(rng.integers(pcfg.limbs[0], pcfg.limbs[1] + 1))
        if rng.random() < 0.5:
            return _Biped(rng, limbs, pcfg.limb_swing, omega)
        return _Quadruped(rng, limbs, pcfg.limb_swing, omega)
    if kind == "branch":
        return _Branch(rng, pcfg.limb_swing, omega)
    if kind == "holes":
        return _Holed(rng, int(rng.integers(pcfg.holes[0], pcfg.holes[1] + 1)), cfg)
    if kind == "crescent":
        return _Crescent(rng, cfg)
    return _Star(rng, cfg)
