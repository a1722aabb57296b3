"""Inside bpy: import a bundle and check what Blender's mirror tools need from a mirror-symmetric rig.

    python check_mirror.py BUNDLE_DIR
Prints one result line (addon_env.emit): how many bones carry a side suffix, which of them Blender's own name
flipping (bpy.utils.flip_name) cannot pair, the largest head/tail distance between a bone mirrored across the
armature's X = 0 and its partner, and a left bone's rotation next to its partner's after Paste Pose Flipped.
"""

from __future__ import annotations

import sys
from pathlib import Path

import addon_env
import bpy
from mathutils import Vector


def main(bundle_dir: Path) -> None:
    addon_env.fresh_scene()
    addon_env.enable_from_source()
    addon = addon_env.addon_module()
    bundle = addon.bundle.read_bundle(bundle_dir)
    _, _, built = addon.scene_build.import_bundle(bpy.context, bundle, "mirrored")
    armature = built.armature
    bones = armature.data.bones
    sided = [bone.name for bone in bones if bone.name.endswith((".L", ".R"))]
    unpaired = [name for name in sided if bpy.utils.flip_name(name) not in bones]
    error = 0.0
    for name in sided:
        bone, partner = bones[name], bones.get(bpy.utils.flip_name(name))
        if partner is None:
            continue
        for ours, theirs in ((bone.head_local, partner.head_local), (bone.tail_local, partner.tail_local)):
            error = max(error, (Vector((-ours.x, ours.y, ours.z)) - theirs).length)

    # Paste Pose Flipped: turn one left bone, copy it, paste it flipped: the right bone gets the mirrored turn
    bpy.context.view_layer.objects.active = armature
    left = next(name for name in sided if name.endswith(".L"))
    for pose_bone in armature.pose.bones:
        pose_bone.select = False
        pose_bone.rotation_mode = "QUATERNION"
    turned = armature.pose.bones[left]
    turned.rotation_quaternion = (0.9, 0.3, 0.2, 0.1)
    turned.rotation_quaternion.normalize()
    turned.select = True
    armature.data.bones.active = turned.bone
    bpy.ops.pose.copy()
    bpy.ops.pose.paste(flipped=True)
    right = armature.pose.bones[bpy.utils.flip_name(left)]
    addon_env.emit({"bones": len(bones), "sided": len(sided), "edit_mirror_x": armature.data.use_mirror_x, "unpaired": unpaired, "mirror_error": error,
                    "left": list(turned.rotation_quaternion), "right": list(right.rotation_quaternion)})


if __name__ == "__main__":
    main(Path(sys.argv[1]))
