"""A synthetic body: the true skeleton (a `Rig`) plus closed primitive parts riding on its bones.

Ground-truth skin weights come from construction, not from any skinning method under test: every vertex
belongs to the bone its part rides on, and only near a joint does it blend (smoothstep over `blend` units of
axial distance, 50/50 exactly at the joint) with the neighbouring bone, so elbows and knees bend smoothly
while the weights stay an honest description of how the body was built.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from backend.mesh import Mesh
from backend.rig import Rig, SkinWeights

from .shapes import ellipsoid, frame_from_direction, tapered_capsule


@dataclass(frozen=True)
class Part:
    """One closed primitive. Capsules run from `origin` along local +z for `size[2]`; ellipsoids are centred
    on `origin` with semi-axes `size` along the local axes."""

    name: str
    bone: int                      # the bone it rides on
    shape: str                     # "capsule" | "ellipsoid"
    origin: np.ndarray             # [3] rest-pose body space
    axes: np.ndarray               # [3, 3] rows: local x, y, z unit axes in body space
    size: np.ndarray               # [3] capsule: (radius at start, radius at end, length); ellipsoid: semi-axes
    color: np.ndarray              # [3] linear RGB in [0, 1]
    blend_head: float = 0.0        # blend with the parent bone within this distance of the bone's head
    blend_tail: float = 0.0        # blend with the only child bone within this distance of the bone's tail
    split_bone: int = -1           # if >= 0: vertices on local +x go to this bone (a pelvis shared by two hips)
    split_width: float = 0.0       # smoothstep half-width of that split, body units


@dataclass(frozen=True)
class Body:
    """A rest-pose body in its own units (metres for humans), facing -Y with Z up, left side at +X."""

    category: str
    body_id: str
    rig: Rig
    parts: tuple[Part, ...]
    pose_limits: np.ndarray        # [B, 2, 3] degrees: (low, high) rotation about the rest x, y, z axes
    units: str = "body"            # "metres" when sizes are physically meaningful
    extras: dict = field(default_factory=dict)  # category-specific facts (e.g. height_m) for joints.json

    def scaled(self, factor: float) -> "Body":
        """The same body uniformly scaled about the origin."""
        rig = Rig(self.rig.joints * factor, self.rig.parents, self.rig.names, self.rig.bone_names,
                  self.rig.bone_deforms)
        parts = tuple(replace(p, origin=p.origin * factor, size=np.asarray(p.size, dtype=np.float64) * factor,
                              blend_head=p.blend_head * factor, blend_tail=p.blend_tail * factor,
                              split_width=p.split_width * factor) for p in self.parts)
        return replace(self, rig=rig, parts=parts)


def capsule_on_bone(rig: Rig, bone: int, name: str, radius_start: float, radius_end: float, color,
                    blend_head: float = 0.0, blend_tail: float = 0.0, start: float = 0.0, end: float = 1.0,
                    lateral_hint=None) -> Part:
    """A capsule from fraction `start` to `end` of bone `bone` (0 = head joint, 1 = tail joint)."""
    head, tail = rig.bone_heads[bone], rig.bone_tails[bone]
    origin = head + start * (tail - head)
    length = float(np.linalg.norm(tail - head)) * (end - start)
    return Part(name, bone, "capsule", origin, frame_from_direction(tail - head, lateral_hint),
                np.array([radius_start, radius_end, length]), np.asarray(color, dtype=np.float64),
                blend_head, blend_tail)


def ellipsoid_on_bone(rig: Rig, bone: int, name: str, semi_axes, color, at: float = 0.5, offset=(0, 0, 0),
                      blend_head: float = 0.0, blend_tail: float = 0.0, lateral_hint=None,
                      direction=None) -> Part:
    """An ellipsoid centred at fraction `at` of the bone plus `offset` (body axes), local z along the bone
    (or along `direction` when given, e.g. a foot pointing forward).

    semi_axes = (x, y, z) in the local frame of `frame_from_direction`: x is the lateral hint (default the
    body's left-right axis), z the direction, y = z cross x (up for a bone pointing forward, -Y).
    """
    head, tail = rig.bone_heads[bone], rig.bone_tails[bone]
    centre = head + at * (tail - head) + np.asarray(offset, dtype=np.float64)
    axis = tail - head if direction is None else np.asarray(direction, dtype=np.float64)
    return Part(name, bone, "ellipsoid", centre, frame_from_direction(axis, lateral_hint),
                np.asarray(semi_axes, dtype=np.float64), np.asarray(color, dtype=np.float64),
                blend_head, blend_tail)


def _part_surface(part: Part) -> tuple[np.ndarray, np.ndarray]:
    """Vertices [V, 3] in body space and faces [F, 3] of one part."""
    if part.shape == "capsule":
        r0, r1, length = (float(x) for x in part.size)
        body_rings = int(np.clip(round(length / max(r0, r1, 1e-9) * 1.5), 2, 8))
        local, faces = tapered_capsule(length, r0, r1, segments=16, cap_rings=4, body_rings=body_rings)
    elif part.shape == "ellipsoid":
        local, faces = ellipsoid(part.size, segments=20, rings=11)
    else:
        raise ValueError(f"unknown part shape {part.shape!r}; expected 'capsule' or 'ellipsoid'")
    return local @ part.axes + part.origin, faces


def _smoothstep(u: np.ndarray) -> np.ndarray:
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


def _part_weights(rig: Rig, part: Part, vertices: np.ndarray, children: list[list[int]]) -> np.ndarray:
    """[V, B] dense weights of one part's vertices (rows sum to 1)."""
    num_vertices = len(vertices)
    dense = np.zeros((num_vertices, rig.num_bones))
    bone = part.bone
    head, tail = rig.bone_heads[bone], rig.bone_tails[bone]
    length = float(np.linalg.norm(tail - head))
    axial = (vertices - head) @ ((tail - head) / length)                # [V] distance along the bone
    own = np.ones(num_vertices)
    parent = int(rig.bone_parents[bone])
    if part.blend_head > 0 and parent >= 0 and rig.bone_deforms[parent]:
        to_parent = 1.0 - _smoothstep((axial + part.blend_head) / (2.0 * part.blend_head))
        dense[:, parent] += to_parent
        own -= to_parent
    kids = [c for c in children[bone] if rig.bone_deforms[c]]
    if part.blend_tail > 0 and len(kids) == 1:
        to_child = _smoothstep((axial - length + part.blend_tail) / (2.0 * part.blend_tail))
        to_child = np.minimum(to_child, own)                            # very short bones: never negative
        dense[:, kids[0]] += to_child
        own -= to_child
    if part.split_bone >= 0:
        side = (vertices - part.origin) @ part.axes[0]                  # [V] local x
        to_split = _smoothstep((side + part.split_width) / (2.0 * part.split_width))
        dense[:, part.split_bone] += own * to_split
        own = own * (1.0 - to_split)
    dense[:, bone] += own
    return dense


def skinned_mesh(body: Body) -> tuple[Mesh, SkinWeights, np.ndarray]:
    """The rest-pose mesh (a union of closed parts, vertex colours), its true weights and the part of each
    vertex ([V] int, index into body.parts)."""
    rig = body.rig
    children: list[list[int]] = [[] for _ in range(rig.num_bones)]
    for b, p in enumerate(rig.bone_parents.tolist()):
        if p >= 0:
            children[p].append(b)
    all_vertices, all_faces, all_weights, all_colors, part_ids = [], [], [], [], []
    offset = 0
    for index, part in enumerate(body.parts):
        vertices, faces = _part_surface(part)
        all_vertices.append(vertices)
        all_faces.append(faces + offset)
        all_weights.append(_part_weights(rig, part, vertices, children))
        all_colors.append(np.broadcast_to(np.append(part.color, 1.0), (len(vertices), 4)))
        part_ids.append(np.full(len(vertices), index))
        offset += len(vertices)
    mesh = Mesh(vertices=np.concatenate(all_vertices), faces=np.concatenate(all_faces),
                colors=np.concatenate(all_colors).astype(np.float32)).validate()
    weights = SkinWeights.from_dense(np.concatenate(all_weights), k=4)
    return mesh, weights, np.concatenate(part_ids)
