"""Batches as torch tensors, for trainers that have torch (the package does not depend on it).

Numeric columns become tensors sharing the numpy memory (``torch.from_numpy``: no copy unless a ``device`` is
named); object columns (string ids, JSON states) stay numpy arrays, since torch has no tensor of strings.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt


def to_tensors(batch: dict[str, npt.NDArray[Any]], device: Any = None) -> dict[str, Any]:
    try:
        import torch
    except ImportError as exc:
        raise RuntimeError("batches as tensors need torch: pip install torch") from exc
    out: dict[str, Any] = {}
    for name, column in batch.items():
        if column.dtype == object:
            out[name] = column
            continue
        tensor = torch.from_numpy(np.ascontiguousarray(column))
        out[name] = tensor if device is None else tensor.to(device)
    return out
