"""Procedural non-human bodies: quadrupeds, birds, limbless chains (snakes), many-legged spiders and insects.

All face -Y with Z up and their left side at +X, in arbitrary body units (about 1 = body length); the
canonical transform rescales them anyway. Joint names say left/right and front/back so evaluation tools can
read a skeleton without knowing the generator. Every body of a category has the same joints (names and
tree), so a category's poses can be stacked and regressed; only proportions, thickness and colours vary.
Each builder also states its pose limits: degrees about the rest x (left-right), y (back-front) and z (up)
axes; unnamed bones stay rigid.
"""

from __future__ import annotations

import numpy as np

from .body import Body, Part, capsule_on_bone, ellipsoid_on_bone
from .palette import bone, pose_limits, random_colors, rig_from_table

SIDES = (("left", 1.0), ("right", -1.0))
SNAKE_SEGMENTS = 12


def build_quadruped(rng: np.random.Generator, body_id: str) -> Body:
    """Dog/horse/cat-like: long or short legs, neck and tail; 25 joints."""
    length = rng.uniform(0.8, 1.2)                    # hips-to-chest distance
    leg = rng.uniform(0.45, 1.1) * length             # leg length, short (dachshund) to long (horse)
    width = rng.uniform(0.1, 0.16) * length           # half distance between left and right legs
    girth = rng.uniform(0.13, 0.22) * length
    neck_len, head_len = rng.uniform(0.2, 0.45) * length, rng.uniform(0.18, 0.3) * length
    tail_len = rng.uniform(0.15, 0.7) * length
    top = leg + girth * 0.5
    rows: list[tuple[str, str | None, tuple[float, float, float]]] = [
        ("hips", None, (0.0, 0.5 * length, top)),
        ("spine", "hips", (0.0, 0.0, top + 0.03 * length)),
        ("chest", "spine", (0.0, -0.5 * length, top)),
        ("neck", "chest", (0.0, -0.5 * length - 0.35 * neck_len, top + 0.9 * neck_len)),
        ("head", "neck", (0.0, -0.5 * length - 0.35 * neck_len - 0.45 * head_len, top + 0.9 * neck_len + 0.15 * head_len)),
        ("snout", "head", (0.0, -0.5 * length - 0.35 * neck_len - 1.2 * head_len, top + 0.9 * neck_len - 0.05 * head_len)),
        ("tail_1", "hips", (0.0, 0.5 * length + 0.35 * tail_len, top + 0.05 * tail_len)),
        ("tail_2", "tail_1", (0.0, 0.5 * length + 0.7 * tail_len, top - 0.1 * tail_len)),
        ("tail_3", "tail_2", (0.0, 0.5 * length + 1.0 * tail_len, top - 0.3 * tail_len)),
    ]
    for side, sx in SIDES:
        for end, anchor, y in (("front", "chest", -0.5 * length), ("back", "hips", 0.5 * length)):
            knee_y = y + (0.04 if end == "front" else -0.08) * leg
            ankle_y = y + (0.0 if end == "front" else 0.06) * leg
            rows += [
                (f"{end}_{side}_top", anchor, (sx * width, y, top - 0.15 * girth)),
                (f"{end}_{side}_knee", f"{end}_{side}_top", (sx * width, knee_y, top - 0.5 * leg)),
                (f"{end}_{side}_ankle", f"{end}_{side}_knee", (sx * width, ankle_y, 0.12 * leg)),
                (f"{end}_{side}_paw", f"{end}_{side}_ankle", (sx * width, ankle_y - 0.08 * leg, 0.0)),
            ]
    rig = rig_from_table(rows)
    c = random_colors(rng, ("coat", "belly", "legs", "accent"))
    leg_r = rng.uniform(0.22, 0.38) * girth
    parts: list[Part] = [
        ellipsoid_on_bone(rig, bone(rig, "spine"), "rump", (girth * 1.05, girth, 0.42 * length), c["coat"],
                          at=0.35, lateral_hint=(1, 0, 0), blend_tail=0.1 * length),
        ellipsoid_on_bone(rig, bone(rig, "chest"), "ribcage", (girth * 1.1, girth * 1.1, 0.42 * length),
                          c["belly"], at=0.65, lateral_hint=(1, 0, 0), blend_head=0.1 * length),
        capsule_on_bone(rig, bone(rig, "neck"), "neck", 0.55 * girth, 0.4 * girth, c["coat"],
                        blend_head=0.1 * length, blend_tail=0.05 * length),
        ellipsoid_on_bone(rig, bone(rig, "head"), "skull", (0.45 * girth, 0.45 * girth, 0.5 * head_len),
                          c["coat"], at=0.8, blend_head=0.04 * length),
        capsule_on_bone(rig, bone(rig, "snout"), "muzzle", 0.28 * girth, 0.2 * girth, c["accent"], start=0.1),
        capsule_on_bone(rig, bone(rig, "tail_1"), "tail_base", 0.16 * girth, 0.12 * girth, c["coat"],
                        blend_tail=0.05 * tail_len),
        capsule_on_bone(rig, bone(rig, "tail_2"), "tail_mid", 0.12 * girth, 0.09 * girth, c["coat"],
                        blend_head=0.05 * tail_len, blend_tail=0.05 * tail_len),
        capsule_on_bone(rig, bone(rig, "tail_3"), "tail_tip", 0.09 * girth, 0.05 * girth, c["accent"],
                        blend_head=0.05 * tail_len),
    ]
    for side, sx in SIDES:
        parts.append(ellipsoid_on_bone(rig, bone(rig, "head"), f"{side}_ear", (0.08 * girth, 0.05 * girth, 0.25 * girth),
                                       c["accent"], at=0.9, offset=(sx * 0.3 * girth, 0.0, 0.45 * girth),
                                       direction=(sx * 0.4, 0.2, 1.0)))
        for end in ("front", "back"):
            parts += [
                capsule_on_bone(rig, bone(rig, f"{end}_{side}_knee"), f"{end}_{side}_upper", 1.25 * leg_r, leg_r,
                                c["legs"], blend_tail=0.06 * leg),
                capsule_on_bone(rig, bone(rig, f"{end}_{side}_ankle"), f"{end}_{side}_lower", leg_r, 0.75 * leg_r,
                                c["legs"], blend_head=0.06 * leg, blend_tail=0.03 * leg),
                capsule_on_bone(rig, bone(rig, f"{end}_{side}_paw"), f"{end}_{side}_foot", 0.8 * leg_r, 0.7 * leg_r,
                                c["accent"], blend_head=0.03 * leg),
            ]
    rules = {"spine": ((-10, -5, -15), (10, 5, 15)), "chest": ((-10, -5, -15), (10, 5, 15)),
             "neck": ((-35, -10, -35), (30, 10, 35)), "head": ((-30, -10, -25), (30, 10, 25)),
             "tail_1": ((-40, -10, -45), (30, 10, 45)), "tail_2": ((-30, -10, -40), (30, 10, 40)),
             "tail_3": ((-30, -10, -40), (30, 10, 40))}
    for side, _ in SIDES:
        for end in ("front", "back"):
            rules[f"{end}_{side}_knee"] = ((-40, -8, -8), (40, 8, 8))          # swing fore/aft
            rules[f"{end}_{side}_ankle"] = ((-50, -3, -3), (50, 3, 3)) if end == "front" else ((-50, -3, -3), (20, 3, 3))
            rules[f"{end}_{side}_paw"] = ((-40, 0, 0), (30, 0, 0))
    return Body("quadruped", body_id, rig, tuple(parts), pose_limits(rig, rules))


def build_bird(rng: np.random.Generator, body_id: str) -> Body:
    """Winged: a round body, neck, head and beak, two three-segment wings, two legs, a tail; 22 joints."""
    body_len = rng.uniform(0.35, 0.55)
    span = rng.uniform(0.5, 1.0)                      # one wing's length
    leg = rng.uniform(0.15, 0.4)
    neck_len = rng.uniform(0.08, 0.3)
    girth = rng.uniform(0.1, 0.16)
    tail_len = rng.uniform(0.15, 0.35)
    z0 = leg + girth
    rows: list[tuple[str, str | None, tuple[float, float, float]]] = [
        ("pelvis", None, (0.0, 0.3 * body_len, z0)),
        ("chest", "pelvis", (0.0, -0.3 * body_len, z0 + 0.1 * body_len)),
        ("neck", "chest", (0.0, -0.45 * body_len, z0 + 0.1 * body_len + neck_len)),
        ("head", "neck", (0.0, -0.45 * body_len - 0.12, z0 + 0.15 * body_len + neck_len)),
        ("beak", "head", (0.0, -0.45 * body_len - 0.12 - rng.uniform(0.06, 0.18), z0 + 0.12 * body_len + neck_len)),
        ("tail", "pelvis", (0.0, 0.3 * body_len + tail_len, z0 - 0.02)),
    ]
    for side, sx in SIDES:
        shoulder = np.array([sx * 0.6 * girth, -0.2 * body_len, z0 + 0.15 * body_len])
        rows += [
            (f"{side}_shoulder", "chest", tuple(shoulder)),
            (f"{side}_elbow", f"{side}_shoulder", tuple(shoulder + [sx * 0.35 * span, 0.03, 0.0])),
            (f"{side}_wrist", f"{side}_elbow", tuple(shoulder + [sx * 0.7 * span, 0.0, 0.0])),
            (f"{side}_wingtip", f"{side}_wrist", tuple(shoulder + [sx * 1.0 * span, 0.08, 0.0])),
            (f"{side}_hip", "pelvis", (sx * 0.45 * girth, 0.2 * body_len, z0 - 0.5 * girth)),
            (f"{side}_knee", f"{side}_hip", (sx * 0.5 * girth, 0.1 * body_len, z0 - 0.5 * girth - 0.45 * leg)),
            (f"{side}_ankle", f"{side}_knee", (sx * 0.5 * girth, 0.2 * body_len, 0.05 * leg)),
            (f"{side}_toe", f"{side}_ankle", (sx * 0.5 * girth, 0.2 * body_len - 0.12, 0.0)),
        ]
    rig = rig_from_table(rows)
    c = random_colors(rng, ("plumage", "wing", "beak", "legs"))
    thin = rng.uniform(0.025, 0.04)
    chord = rng.uniform(0.08, 0.16)
    parts: list[Part] = [
        ellipsoid_on_bone(rig, bone(rig, "chest"), "body", (girth, girth * 1.1, 0.55 * body_len + 0.5 * girth),
                          c["plumage"], at=0.5, lateral_hint=(1, 0, 0), direction=(0, -1, 0.2)),
        capsule_on_bone(rig, bone(rig, "neck"), "neck", 0.45 * girth, 0.35 * girth, c["plumage"],
                        blend_head=0.05, blend_tail=0.03),
        ellipsoid_on_bone(rig, bone(rig, "head"), "head", (0.55 * girth, 0.55 * girth, 0.8 * girth), c["plumage"],
                          at=0.7, blend_head=0.03, direction=(0, -1, 0)),
        capsule_on_bone(rig, bone(rig, "beak"), "beak", 0.22 * girth, 0.05 * girth, c["beak"], start=0.05),
        ellipsoid_on_bone(rig, bone(rig, "tail"), "tail_fan", (0.6 * girth, thin, 0.5 * tail_len),
                          c["wing"], at=0.6, lateral_hint=(1, 0, 0), direction=(0, 1, 0)),
    ]
    for side, sx in SIDES:
        for name, start_chord, end_chord in (("elbow", 1.0, 0.9), ("wrist", 0.9, 0.75), ("wingtip", 0.75, 0.35)):
            b = bone(rig, f"{side}_{name}")
            seg = float(np.linalg.norm(rig.bone_tails[b] - rig.bone_heads[b]))
            parts.append(ellipsoid_on_bone(rig, b, f"{side}_wing_{name}", (0.5 * chord * (start_chord + end_chord), thin, 0.62 * seg),
                                           c["wing"], at=0.5, lateral_hint=(0, 1, 0),
                                           blend_head=0.04 if name != "elbow" else 0.0, blend_tail=0.04 if name != "wingtip" else 0.0))
        parts += [
            capsule_on_bone(rig, bone(rig, f"{side}_knee"), f"{side}_thigh", 0.3 * girth, 0.18 * girth, c["plumage"],
                            blend_tail=0.03),
            capsule_on_bone(rig, bone(rig, f"{side}_ankle"), f"{side}_shank", 0.14 * girth, 0.12 * girth, c["legs"],
                            blend_head=0.03),
            capsule_on_bone(rig, bone(rig, f"{side}_toe"), f"{side}_toes", 0.12 * girth, 0.1 * girth, c["legs"]),
        ]
    rules = {"chest": ((-10, -5, -10), (10, 5, 10)), "neck": ((-35, -10, -40), (35, 10, 40)),
             "head": ((-30, -15, -35), (30, 15, 35)), "tail": ((-25, -10, -20), (25, 10, 20))}
    for side, sx in SIDES:
        rules[f"{side}_elbow"] = ((-20, -60, -35), (20, 60, 25))               # flap (about y), sweep (about z)
        rules[f"{side}_wrist"] = ((-15, -30, -50), (15, 30, 20)) if sx > 0 else ((-15, -30, -20), (15, 30, 50))
        rules[f"{side}_wingtip"] = ((-10, -20, -30), (10, 20, 20)) if sx > 0 else ((-10, -20, -20), (10, 20, 30))
        rules[f"{side}_knee"] = ((-40, -5, -5), (30, 5, 5))
        rules[f"{side}_ankle"] = ((-20, -5, -5), (50, 5, 5))
        rules[f"{side}_toe"] = ((-20, 0, 0), (20, 0, 0))
    return Body("bird", body_id, rig, tuple(parts), pose_limits(rig, rules))


def build_snake(rng: np.random.Generator, body_id: str) -> Body:
    """A limbless chain: head, neck and 12 body segments tapering to a tail tip; lies along +Y, head at -Y.

    The segment count is fixed so every snake has the same 14 joints (evaluation regresses a fixed skeleton);
    thickness, head size, taper and colours vary.
    """
    segments = SNAKE_SEGMENTS
    length = 1.0
    radius = rng.uniform(0.025, 0.05)
    seg_len = length / segments
    z = radius
    rows: list[tuple[str, str | None, tuple[float, float, float]]] = [
        ("head", None, (0.0, -0.5 * length - 2.0 * radius, z + 0.2 * radius)),
        ("neck", "head", (0.0, -0.5 * length, z)),
    ]
    previous = "neck"
    for i in range(1, segments + 1):
        name = f"body_{i:02d}" if i < segments else "tail_tip"
        rows.append((name, previous, (0.0, -0.5 * length + i * seg_len, z)))
        previous = name
    rig = rig_from_table(rows)
    c = random_colors(rng, ("scales", "pattern", "head"))
    head_size = radius * rng.uniform(1.2, 1.7)
    parts: list[Part] = [
        ellipsoid_on_bone(rig, bone(rig, "neck"), "skull", (head_size, 0.8 * head_size, 1.6 * head_size), c["head"],
                          at=0.15, direction=(0, -1, 0), blend_tail=radius),
    ]
    for i, name in enumerate(rig.bone_names[1:], start=1):
        t0, t1 = (i - 1) / segments, i / segments
        taper = lambda t: radius * (1.0 - 0.8 * t ** 1.5)  # noqa: E731
        color = c["pattern"] if i % 3 == 0 else c["scales"]
        parts.append(capsule_on_bone(rig, bone(rig, name), f"segment_{i:02d}", taper(t0), taper(t1), color,
                                     blend_head=0.5 * taper(t0), blend_tail=0.5 * taper(t1)))
    # Snakes bend side to side (about z) much more than up and down (about x).
    rules = {name: ((-12, -5, -40), (12, 5, 40)) for name in rig.bone_names[1:]}
    rules["neck"] = ((-30, -5, -30), (20, 5, 30))
    return Body("snake", body_id, rig, tuple(parts), pose_limits(rig, rules))


def build_spider(rng: np.random.Generator, body_id: str) -> Body:
    """Many-legged, spider-like: 4 leg pairs, no antennae; 35 joints."""
    return _build_manylegged(rng, body_id, "spider", pairs=4)


def build_insect(rng: np.random.Generator, body_id: str) -> Body:
    """Many-legged, insect-like: 3 leg pairs and two antennae; 29 joints."""
    return _build_manylegged(rng, body_id, "insect", pairs=3)


def _build_manylegged(rng: np.random.Generator, body_id: str, category: str, pairs: int) -> Body:
    """Thorax, head, abdomen; each leg base, knee, ankle, tip (two categories so each has one skeleton)."""
    thorax_r = rng.uniform(0.08, 0.12)
    abdomen = rng.uniform(0.12, 0.25)
    leg_scale = rng.uniform(0.7, 1.3)
    z0 = rng.uniform(0.12, 0.25) * leg_scale + thorax_r
    rows: list[tuple[str, str | None, tuple[float, float, float]]] = [
        ("thorax", None, (0.0, 0.0, z0)),
        ("head", "thorax", (0.0, -thorax_r - 0.08, z0 + 0.01)),
        ("abdomen", "thorax", (0.0, thorax_r + 1.6 * abdomen, z0 + 0.25 * abdomen)),
    ]
    if pairs == 3:
        for side, sx in SIDES:
            rows.append((f"antenna_{side}", "head", (sx * 0.12, -thorax_r - 0.3, z0 + 0.18)))
    ys = np.linspace(-0.7, 0.7, pairs) * thorax_r
    for side, sx in SIDES:
        for i, y in enumerate(ys, start=1):
            splay = y / thorax_r                                       # legs fan out fore and aft
            reach = 0.35 * leg_scale
            base = np.array([sx * 0.8 * thorax_r, y, z0 - 0.2 * thorax_r])
            knee = base + [sx * 0.45 * reach, splay * 0.3 * reach, 0.35 * reach]
            ankle = knee + [sx * 0.4 * reach, splay * 0.3 * reach, -0.4 * reach]
            tip = np.array([ankle[0] + sx * 0.2 * reach, ankle[1] + splay * 0.15 * reach, 0.0])
            rows += [
                (f"leg_{side}{i}_base", "thorax", tuple(base)),
                (f"leg_{side}{i}_knee", f"leg_{side}{i}_base", tuple(knee)),
                (f"leg_{side}{i}_ankle", f"leg_{side}{i}_knee", tuple(ankle)),
                (f"leg_{side}{i}_tip", f"leg_{side}{i}_ankle", tuple(tip)),
            ]
    rig = rig_from_table(rows)
    c = random_colors(rng, ("carapace", "abdomen", "legs", "joints"))
    leg_r = rng.uniform(0.012, 0.022) * leg_scale
    parts: list[Part] = [
        # The leg-base bones never rotate, so the carapace rides on one of them and stays put with the legs.
        ellipsoid_on_bone(rig, bone(rig, "leg_left1_base"), "cephalothorax", (0.9 * thorax_r, 0.7 * thorax_r, thorax_r),
                          c["carapace"], at=0.0, lateral_hint=(1, 0, 0), direction=(0, -1, 0)),
        ellipsoid_on_bone(rig, bone(rig, "head"), "face", (0.6 * thorax_r, 0.5 * thorax_r, 0.55 * thorax_r), c["joints"],
                          at=0.8, lateral_hint=(1, 0, 0), direction=(0, -1, 0)),
        ellipsoid_on_bone(rig, bone(rig, "abdomen"), "abdomen", (abdomen * 0.8, 0.75 * abdomen, abdomen * 1.1),
                          c["abdomen"], at=0.0, offset=(0.0, thorax_r + abdomen, 0.15 * abdomen),
                          lateral_hint=(1, 0, 0)),
    ]
    if pairs == 3:
        for side, _ in SIDES:
            parts.append(capsule_on_bone(rig, bone(rig, f"antenna_{side}"), f"antenna_{side}", 0.8 * leg_r, 0.6 * leg_r,
                                         c["legs"], start=0.2))
    rules = {"head": ((-10, -5, -15), (10, 5, 15)), "abdomen": ((-20, -10, -20), (20, 10, 20))}
    for side, sx in SIDES:
        if pairs == 3:
            rules[f"antenna_{side}"] = ((-30, -20, -30), (30, 20, 30))
        for i in range(1, pairs + 1):
            leg = f"leg_{side}{i}"
            parts += [
                capsule_on_bone(rig, bone(rig, f"{leg}_knee"), f"{leg}_femur", 1.2 * leg_r, leg_r, c["legs"],
                                blend_tail=2 * leg_r),
                capsule_on_bone(rig, bone(rig, f"{leg}_ankle"), f"{leg}_tibia", leg_r, 0.8 * leg_r, c["joints"],
                                blend_head=2 * leg_r, blend_tail=2 * leg_r),
                capsule_on_bone(rig, bone(rig, f"{leg}_tip"), f"{leg}_tarsus", 0.8 * leg_r, 0.5 * leg_r, c["legs"],
                                blend_head=2 * leg_r),
            ]
            rules[f"{leg}_knee"] = ((-10, -20, -25), (10, 20, 25))                # raise (about y), swing (about z)
            rules[f"{leg}_ankle"] = ((-10, -25, -10), (10, 25, 10))
            rules[f"{leg}_tip"] = ((-10, -20, -10), (10, 20, 10))
    return Body(category, body_id, rig, tuple(parts), pose_limits(rig, rules))
