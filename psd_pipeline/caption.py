"""`--caption vlm`: caption the composite with a local Qwen2.5-VL checkpoint (optional, lazy)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

PROMPT = "Describe this image in one or two sentences."


def load_vlm_captioner(model_path: str | None) -> tuple[Callable[[dict], dict] | None, str]:
    """(captioner, "") when the model loads, else (None, why): captioning is optional."""
    if not model_path:
        return None, "--caption vlm needs --caption-model PATH (a local Qwen2.5-VL checkpoint)"
    if not Path(model_path).is_dir():
        return None, f"{model_path}: no such model folder"
    try:
        import torch
        from PIL import Image
        from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

        processor = AutoProcessor.from_pretrained(model_path, local_files_only=True)
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(model_path, local_files_only=True).eval()
    except Exception as exc:  # missing package, incomplete checkpoint: skip captions, keep building
        return None, f"cannot load a Qwen2.5-VL model from {model_path} ({type(exc).__name__}: {exc})"

    def caption(row: dict) -> dict:
        image = Image.open(io.BytesIO(row["composite"])).convert("RGB")
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT}]}]
        text = processor.apply_chat_template(messages, add_generation_prompt=True)
        inputs = processor(text=[text], images=[image], return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=64, do_sample=False)
        answer = processor.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)[0]
        meta = json.loads(row["meta"])
        meta["caption"] = answer.strip()
        return {**row, "meta": json.dumps(meta, ensure_ascii=False, sort_keys=True)}

    return caption, ""
