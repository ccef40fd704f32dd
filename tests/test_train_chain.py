"""End to end with the tiny configs: synth -> build -> train vae -> t2rgba -> t2l -> i2l -> decompose (CLI)."""

from __future__ import annotations

import json
from pathlib import Path

from layered.cli import main
from layered.stack import LayerStack

CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"


def test_chain_runs_end_to_end(tmp_path):
    synth = ["-o", str(tmp_path / "psd"), "--count", "4", "--seed", "3", "--size", "48", "--style", "flat"]
    assert main(["psd", "synth", *synth]) == 0
    assert main(["psd", "build", str(tmp_path / "psd"), "-o", str(tmp_path / "ds"), "--max-layers", "4"]) == 0
    data = ["--data", str(tmp_path / "ds"), "--max-steps", "2"]
    assert main(["train", "vae", str(CONFIGS / "tiny_vae.yaml"), *data, "--output-dir", str(tmp_path / "vae")]) == 0
    vae = tmp_path / "vae" / "vae"
    previous = None
    for stage in ("t2rgba", "t2l", "i2l"):
        args = ["train", "mmdit", str(CONFIGS / f"tiny_{stage}.yaml"), *data, "--vae", str(vae)]
        args += ["--output-dir", str(tmp_path / stage)]
        if previous:
            args += ["--init-from", str(previous)]
        assert main(args) == 0
        previous = tmp_path / stage
        assert (previous / "pipeline" / "model_index.json").is_file()
    # Each stage started from the previous one: i2l's transformer config is t2rgba's, and the VAE is ours.
    config = json.loads((previous / "pipeline" / "vae" / "config.json").read_text())
    assert config == json.loads((vae / "config.json").read_text()) | {"_name_or_path": config.get("_name_or_path")}
    image = next((tmp_path / "psd").glob("*.png"), None) or _composite_png(tmp_path)
    out = tmp_path / "layers"
    args = ["decompose", str(image), "-o", str(out), "--model", str(previous / "pipeline"), "--layers", "2"]
    assert main([*args, "--steps", "2", "--method", "model"]) == 0
    folders = [p.parent for p in out.rglob("layers.json")]
    assert folders, list(out.rglob("*"))
    stack = LayerStack.load(folders[0])
    assert 1 <= len(stack) <= 2


def _composite_png(tmp_path: Path) -> Path:
    import io

    import pyarrow.parquet as pq
    from PIL import Image

    row = pq.read_table(next((tmp_path / "ds").glob("*.parquet"))).slice(0, 1).to_pylist()[0]
    path = tmp_path / "input.png"
    Image.open(io.BytesIO(row["composite"]["bytes"])).save(path)
    return path
