"""Keypoints -> ground-truth joints regressors, fitted on the train split only (the evaluation protocol).

- linear: least squares without bias, Y = X W (X = flattened keypoints);
- mlp: two hidden layers of 50 ReLU units, full-batch L-BFGS with a small L2 penalty on standardised
  inputs/outputs (1e-4; leave-one-clip-out CV on the train split agrees, docs/training.md); the seed picks the
  initial weights (training/evaluate.py averages several).
Both take [N, K, 3] and return [N, J, 3].
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class LinearRegressor:
    def fit(self, keypoints: np.ndarray, joints: np.ndarray) -> "LinearRegressor":
        x = keypoints.reshape(len(keypoints), -1).astype(np.float64)
        y = joints.reshape(len(joints), -1).astype(np.float64)
        self.weights, *_ = np.linalg.lstsq(x, y, rcond=None)  # [3K, 3J]
        self.joint_count = joints.shape[1]
        return self

    def predict(self, keypoints: np.ndarray) -> np.ndarray:
        x = keypoints.reshape(len(keypoints), -1).astype(np.float64)
        return (x @ self.weights).reshape(len(keypoints), self.joint_count, 3)


class MlpRegressor:
    def __init__(self, hidden: tuple[int, int] = (50, 50), iterations: int = 500, weight_decay: float = 1e-4, seed: int = 0) -> None:
        self.hidden, self.iterations, self.weight_decay, self.seed = hidden, iterations, weight_decay, seed

    def fit(self, keypoints: np.ndarray, joints: np.ndarray) -> "MlpRegressor":
        x = keypoints.reshape(len(keypoints), -1).astype(np.float64)
        y = joints.reshape(len(joints), -1).astype(np.float64)
        self.x_mean, self.x_std = x.mean(0), x.std(0) + 1e-8
        self.y_mean, self.y_std = y.mean(0), y.std(0) + 1e-8
        self.joint_count = joints.shape[1]
        with torch.random.fork_rng():
            torch.manual_seed(self.seed)
            self.net = nn.Sequential(nn.Linear(x.shape[1], self.hidden[0]), nn.ReLU(), nn.Linear(self.hidden[0], self.hidden[1]),
                                     nn.ReLU(), nn.Linear(self.hidden[1], y.shape[1])).double()
        inputs = torch.from_numpy((x - self.x_mean) / self.x_std)
        targets = torch.from_numpy((y - self.y_mean) / self.y_std)
        # Full-batch L-BFGS with an L2 penalty: deterministic, and converges in a few hundred iterations.
        optimizer = torch.optim.LBFGS(self.net.parameters(), lr=1.0, max_iter=self.iterations, tolerance_grad=1e-9,
                                      tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")
        weights = [p for name, p in self.net.named_parameters() if name.endswith("weight")]

        def closure() -> torch.Tensor:
            optimizer.zero_grad(set_to_none=True)
            loss = ((self.net(inputs) - targets) ** 2).mean() + self.weight_decay * sum((w * w).sum() for w in weights)
            loss.backward()
            return loss

        optimizer.step(closure)
        return self

    @torch.no_grad()
    def predict(self, keypoints: np.ndarray) -> np.ndarray:
        x = keypoints.reshape(len(keypoints), -1).astype(np.float64)
        y = self.net(torch.from_numpy((x - self.x_mean) / self.x_std)).numpy() * self.y_std + self.y_mean
        return y.reshape(len(keypoints), self.joint_count, 3)

