"""Model registry: a name (`demo`, `qwen-image-layered`) or a local folder -> a diffusers pipeline folder.

Light to import; `load_pipeline` imports torch and diffusers when called. Nothing is downloaded unless the
Hub is reachable and the user asked for a Hub model; offline and not cached gives one clear message.
"""

from __future__ import annotations

import os
from pathlib import Path

from layered.errors import InputError

DEMO_DIR = Path(__file__).resolve().parent / "assets" / "demo"
HUB_MODELS = {"qwen-image-layered": "Qwen/Qwen-Image-Layered"}
MODEL_NAMES = ("demo", *HUB_MODELS)
MODEL_INDEX = "model_index.json"


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _how_to_get(repo_id: str) -> str:
    return (
        f"download it once with `hf download {repo_id}` (about 54 GB; needs a GPU to run) and run again, "
        "or use --method classic"
    )


def resolve_model(model: str | os.PathLike) -> str:
    """A local folder holding `model_index.json` for `model` (a registry name, a Hub id or a folder).

    Raises InputError with what to do when the model is not there (no demo yet, not cached offline...).
    """
    text = str(model)
    if text == "demo":
        if not (DEMO_DIR / MODEL_INDEX).is_file():
            raise InputError(
                "the demo model is not shipped yet (layered/assets/demo is missing): use --method classic, "
                "or --model qwen-image-layered / --model PATH_TO_A_MODEL_FOLDER"
            )
        return str(DEMO_DIR)
    path = Path(text).expanduser()
    if path.exists():
        if not (path / MODEL_INDEX).is_file():
            raise InputError(f"{path}: not a diffusers pipeline folder (no {MODEL_INDEX})")
        return str(path)
    repo_id = HUB_MODELS.get(text.lower(), text)
    if repo_id.count("/") != 1 or text.startswith((".", "/", "~")):
        raise InputError(f"unknown model {text!r}: use {', '.join(MODEL_NAMES)}, a Hub id or a model folder")
    return _hub_snapshot(repo_id)


def _hub_snapshot(repo_id: str) -> str:
    """The cached snapshot of `repo_id`; downloads only when online and not cached."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return snapshot_download(repo_id, local_files_only=True)
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
        pass
    if _hub_offline():
        raise InputError(
            f"model {repo_id} is not in the Hugging Face cache and HF_HUB_OFFLINE is set: {_how_to_get(repo_id)}"
        )
    try:
        return snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja"])
    except Exception as exc:  # network down, repo gated/missing: say what to do, not a traceback
        raise InputError(
            f"model {repo_id} is not cached and could not be downloaded ({type(exc).__name__}): {_how_to_get(repo_id)}"
        ) from None


def load_pipeline(model: str | os.PathLike = "demo", dtype=None, **kwargs):
    """`LayeredPipeline.from_pretrained` on the resolved folder (safetensors only); `dtype` e.g. torch.bfloat16."""
    from layered.pipeline import LayeredPipeline

    folder = resolve_model(model)
    if dtype is not None:
        kwargs["dtype"] = dtype
    try:
        return LayeredPipeline.from_pretrained(folder, use_safetensors=True, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{folder}: cannot load the pipeline ({exc})") from None
