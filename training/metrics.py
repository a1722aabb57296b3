"""Pose errors as the unsupervised-keypoint literature reports them (all vectorised over samples).

- MPJPE: mean Euclidean joint error, no alignment.
- N-MPJPE: both poses made root-relative, then the prediction scaled by the least-squares factor
  s = <p, g> / <p, p> (Rhodin et al. / VideoPose3D); no rotation or translation.
- P-MPJPE: similarity Procrustes (rotation, uniform scale, translation) with reflection correction, so
  the aligned prediction is never a mirror image.
- mirror-min variants (BKinD-3D): per sample, the smaller error of the prediction and of the prediction
  with left/right joints swapped, for methods that may confuse the two sides.
"""

from __future__ import annotations

import numpy as np

from backend.errors import KeyDiffError


def _check(predicted: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    predicted, target = np.asarray(predicted, np.float64), np.asarray(target, np.float64)
    if predicted.shape != target.shape or predicted.ndim != 3 or predicted.shape[-1] != 3:
        raise KeyDiffError("invalid_argument", f"poses must both be [N, J, 3], got {predicted.shape} and {target.shape}")
    return predicted, target


def per_sample_mpjpe(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    predicted, target = _check(predicted, target)
    return np.linalg.norm(predicted - target, axis=-1).mean(axis=-1)  # [N]


def scale_align(predicted: np.ndarray, target: np.ndarray, root: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Root-relative poses with the prediction scaled by the least-squares factor. ([N, J, 3], [N, J, 3])"""
    predicted, target = _check(predicted, target)
    predicted = predicted - predicted[:, root : root + 1]
    target = target - target[:, root : root + 1]
    scale = (predicted * target).sum(axis=(1, 2)) / np.maximum((predicted * predicted).sum(axis=(1, 2)), 1e-12)  # [N]
    return scale[:, None, None] * predicted, target


def procrustes_align(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The similarity transform of `predicted` closest to `target` in least squares (no reflections). [N, J, 3]"""
    predicted, target = _check(predicted, target)
    mu_p, mu_t = predicted.mean(axis=1, keepdims=True), target.mean(axis=1, keepdims=True)
    p, t = predicted - mu_p, target - mu_t
    covariance = np.einsum("nji,njk->nik", p, t)  # [N, 3, 3] = P^T T
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.sign(np.linalg.det(np.einsum("nij,njk->nik", u, vt)))  # -1 where the best fit would mirror
    correction = np.ones_like(singular)
    correction[:, -1] = sign
    rotation = np.einsum("nij,nj,njk->nik", u, correction, vt)  # [N, 3, 3], applied as p @ R
    scale = (singular * correction).sum(axis=1) / np.maximum((p * p).sum(axis=(1, 2)), 1e-12)  # [N]
    return scale[:, None, None] * np.einsum("nji,nik->njk", p, rotation) + mu_t


def pose_errors(predicted: np.ndarray, target: np.ndarray, flip_permutation: np.ndarray | None = None, root: int = 0) -> dict[str, float]:
    """mpjpe, n_mpjpe, p_mpjpe (and *_mirror_min when a left/right joint permutation is given), in target units."""
    predicted, target = _check(predicted, target)
    variants = {"": predicted}
    if flip_permutation is not None:
        variants["_mirror"] = predicted[:, np.asarray(flip_permutation)]
    per_sample: dict[str, dict[str, np.ndarray]] = {}
    for suffix, pose in variants.items():
        scaled, root_relative = scale_align(pose, target, root)
        per_sample[suffix] = {
            "mpjpe": per_sample_mpjpe(pose, target),
            "n_mpjpe": per_sample_mpjpe(scaled, root_relative),
            "p_mpjpe": per_sample_mpjpe(procrustes_align(pose, target), target),
        }
    result = {name: float(values.mean()) for name, values in per_sample[""].items()}
    if flip_permutation is not None:
        for name in ("mpjpe", "n_mpjpe", "p_mpjpe"):
            result[f"{name}_mirror_min"] = float(np.minimum(per_sample[""][name], per_sample["_mirror"][name]).mean())
    return result


def flip_permutation_from_names(names: list[str]) -> np.ndarray | None:
    """Swap joints named left*/right* (or L*/R*, *_l/*_r, *.L/*.R); None if the skeleton has no sides."""
    lowered = [n.lower() for n in names]
    swaps = (("left", "right"), ("l_", "r_"), ("_l", "_r"), (".l", ".r"))
    permutation = np.arange(len(names))
    found = False
    for i, name in enumerate(lowered):
        for a, b in swaps:
            for source, dest in ((a, b), (b, a)):
                if source in name:
                    partner = name.replace(source, dest)
                    if partner in lowered:
                        permutation[i] = lowered.index(partner)
                        found = True
                        break
            if permutation[i] != i:
                break
    return permutation if found else None
