"""A set of 3D Gaussians as named parameters, and .ply I/O in the standard (Inria 3DGS) layout.

Parameters are stored pre-activation, as in 3DGS: log-scales, opacity logits, wxyz quaternions, SH
coefficients split into the DC term and the rest (they get different learning rates).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from backend.errors import KeyDiffError

from .render import Rendering, rasterize
from .sh import sh_to_rgb

PARAM_NAMES = ("means", "quats", "log_scales", "opacity_logits", "sh0", "shN")


@dataclass
class GaussianSet:
    means: Tensor           # [N, 3]
    quats: Tensor           # [N, 4] wxyz, not necessarily unit
    log_scales: Tensor      # [N, 3]
    opacity_logits: Tensor  # [N]
    sh0: Tensor             # [N, 1, 3]
    shN: Tensor             # [N, K-1, 3], K = (degree+1)²

    def __len__(self) -> int:
        return int(self.means.shape[0])

    @property
    def sh_degree(self) -> int:
        return int(round((self.shN.shape[1] + 1) ** 0.5)) - 1

    @property
    def scales(self) -> Tensor:
        return torch.exp(self.log_scales)

    @property
    def opacities(self) -> Tensor:
        return torch.sigmoid(self.opacity_logits)

    def params(self) -> dict[str, Tensor]:
        return {name: getattr(self, name) for name in PARAM_NAMES}

    def detached(self) -> "GaussianSet":
        return GaussianSet(**{k: v.detach().clone() for k, v in self.params().items()})

    def subset(self, index: Tensor) -> "GaussianSet":
        return GaussianSet(**{k: v[index] for k, v in self.params().items()})

    def colors_for(self, viewmats: Tensor) -> Tensor:
        """View-dependent colours [C, N, 3] for cameras with world-to-camera `viewmats` [C, 4, 4]."""
        coeffs = torch.cat([self.sh0, self.shN], dim=1)                               # [N, K, 3]
        if coeffs.shape[1] == 1:
            return sh_to_rgb(coeffs, self.means)[None].expand(viewmats.shape[0], -1, -1)
        centres = -(viewmats[:, :3, :3].transpose(1, 2) @ viewmats[:, :3, 3:]).squeeze(-1)  # [C, 3]
        dirs = torch.nn.functional.normalize(self.means[None] - centres[:, None], dim=-1)   # [C, N, 3]
        return sh_to_rgb(coeffs[None], dirs)

    def render(self, viewmats: Tensor, Ks: Tensor, width: int, height: int,
               background: float | None = 1.0, means: Tensor | None = None, **kwargs) -> Rendering:
        """Rasterize into C cameras; `means` overrides the centres (frosting computes them from the mesh)."""
        mu = self.means if means is None else means
        gs = self if means is None else GaussianSet(mu, self.quats, self.log_scales, self.opacity_logits,
                                                    self.sh0, self.shN)
        bg = None if background is None else torch.full((viewmats.shape[0], 3), float(background),
                                                        dtype=mu.dtype, device=mu.device)
        return rasterize(mu, self.quats, self.scales, self.opacities, gs.colors_for(viewmats), viewmats, Ks,
                         width, height, backgrounds=bg, **kwargs)


def save_ply(gaussians: GaussianSet, path: str | Path, means: Tensor | None = None,
             quats: Tensor | None = None, log_scales: Tensor | None = None) -> Path:
    """Binary little-endian 3DGS .ply (x y z nx ny nz f_dc_* f_rest_* opacity scale_* rot_*), atomically."""
    g = gaussians.detached()
    mu = (g.means if means is None else means).detach().cpu().numpy()
    q = (g.quats if quats is None else quats).detach().cpu().numpy()
    ls = (g.log_scales if log_scales is None else log_scales).detach().cpu().numpy()
    n = len(g)
    rest = g.shN.transpose(1, 2).reshape(n, -1).cpu().numpy()        # channel-major, as Inria writes it
    columns = (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
               + [f"f_rest_{i}" for i in range(rest.shape[1])]
               + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])
    data = np.concatenate([mu, np.zeros_like(mu), g.sh0[:, 0].cpu().numpy(), rest,
                           g.opacity_logits[:, None].cpu().numpy(), ls, q], axis=1).astype("<f4")
    header = "ply\nformat binary_little_endian 1.0\nelement vertex %d\n" % n
    header += "".join(f"property float {c}\n" for c in columns) + "end_header\n"
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "wb") as f:
        f.write(header.encode("ascii"))
        f.write(np.ascontiguousarray(data).tobytes())
    os.replace(tmp, path)
    return path


def load_ply(path: str | Path) -> GaussianSet:
    """Read a 3DGS .ply written by us or by the Inria code (float properties, binary little endian)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise KeyDiffError("unreadable_file", f"cannot read {path}: {exc.strerror}") from exc
    end = raw.find(b"end_header\n")
    if not raw.startswith(b"ply") or end < 0 or b"binary_little_endian" not in raw[:end]:
        raise KeyDiffError("unreadable_file", f"{path} is not a binary little-endian .ply")
    lines = raw[:end].decode("ascii", "replace").splitlines()
    count = next(int(l.split()[2]) for l in lines if l.startswith("element vertex"))
    props = [l.split()[2] for l in lines if l.startswith("property float")]
    needed = {"x", "f_dc_0", "opacity", "scale_0", "rot_0"}
    if not needed <= set(props) or len(props) != sum(l.startswith("property") for l in lines):
        raise KeyDiffError("unreadable_file", f"{path} lacks 3DGS float properties {sorted(needed)}")
    data = np.frombuffer(raw[end + len(b"end_header\n"):], dtype="<f4", count=count * len(props))
    table = {p: data.reshape(count, len(props))[:, i] for i, p in enumerate(props)}
    col = lambda *names: torch.from_numpy(np.stack([table[n] for n in names], axis=1).astype(np.float32))
    rest_names = sorted((p for p in props if p.startswith("f_rest_")), key=lambda p: int(p.split("_")[-1]))
    shN = col(*rest_names).reshape(count, 3, -1).transpose(1, 2) if rest_names else torch.zeros(count, 0, 3)
    return GaussianSet(means=col("x", "y", "z"), quats=col("rot_0", "rot_1", "rot_2", "rot_3"),
                       log_scales=col("scale_0", "scale_1", "scale_2"), opacity_logits=col("opacity")[:, 0],
                       sh0=col("f_dc_0", "f_dc_1", "f_dc_2")[:, None], shN=shN.contiguous())
