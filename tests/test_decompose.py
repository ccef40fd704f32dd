"""`layered.decompose`: the one layer-count rule (CLI, editor, classic, pipeline), settings checks, hooks,
the pipeline cache, and the same layers from the CLI and the editor for the same settings."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tiny_pipeline import make_tiny_pipeline

from layered import limits
from layered.app import decompose as editor
from layered.cli import main
from layered.decompose import Cancelled, Settings, decomposer, load_model
from layered.errors import InputError
from layered.limits import MAX_LAYERS, parse_layers
from layered.stack import LayerStack

ROOT = Path(__file__).resolve().parents[1]
RULE = "layers must be 'auto' or a whole number from 1 to 20, got"


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    """A small flat design (two shapes over a background) with some noise, as a PNG."""
    rng = np.random.default_rng(0)
    rgb = np.full((24, 40, 3), (30, 90, 200), np.uint8)
    rgb[4:14, 3:20] = (250, 10, 10)
    rgb[10:20, 22:36] = (240, 240, 30)
    rgb[20:, :6] = rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    path = tmp_path_factory.mktemp("image") / "design.png"
    Image.fromarray(rgb).save(path)
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model") / "tiny"
    make_tiny_pipeline(seed=11).save_pretrained(folder)
    return folder


def _rgba(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGBA"))


def _same_layers(a: LayerStack, b: LayerStack) -> None:
    assert len(a) == len(b) and a.size == b.size
    for x, y in zip(a.layers, b.layers, strict=True):
        np.testing.assert_array_equal(x.pixels, y.pixels)
        assert x.bbox == y.bbox


# ---- the layer-count rule ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("auto", "auto"), (" AUTO ", "auto"), (None, "auto"), ("", "auto"), (1, 1), ("3", 3), (3.0, 3), (20, 20)],
)
def test_accepted_layer_counts(value, expected):
    assert parse_layers(value) == expected


@pytest.mark.parametrize("value", [0, -1, 21, "21", 2.5, "many", True, float("nan")])
def test_rejected_layer_counts_name_the_rule(value):
    with pytest.raises(InputError) as caught:
        parse_layers(value)
    assert str(caught.value) == f"{RULE} {value!r}"


def test_the_cap_is_the_papers_maximum():
    assert MAX_LAYERS == 20
    assert limits.CLASSIC_AUTO_LAYERS <= MAX_LAYERS and limits.MODEL_AUTO_LAYERS <= MAX_LAYERS


def test_cli_editor_classic_and_pipeline_share_the_rule(image, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["decompose", str(image), "--layers", "21"])
    assert caught.value.code == 2
    assert f"{RULE} '21'" in capsys.readouterr().err
    with pytest.raises(InputError, match=f"^{RULE} '21'$"):
        editor.Settings(layers="21")
    from layered.classic import decompose_classic

    with pytest.raises(InputError, match=f"^{RULE} 21$"):
        decompose_classic(_rgba(image), 21)
    with pytest.raises(ValueError, match=f"^{RULE} 21$"):
        make_tiny_pipeline()(Image.open(image), layers=21)
    assert main(["decompose", str(image), "--layers", "20", "--method", "classic", "-o", str(image.parent / "o")]) == 0


# ---- settings ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("steps", 1, "steps must be a whole number from 2 to 1000, got 1"),
        ("seed", -1, "seed must be a whole number from 0 to"),
        ("guidance", 0.5, "guidance must be a number from 1.0 to 20.0, got 0.5"),
        ("resolution", 8, "resolution must be a whole number from 16 to 4096, got 8"),
        ("method", "magic", "method must be one of classic, peel, model, got 'magic'"),
        ("offload", "disk", "offload must be one of none, model, sequential, group"),
    ],
)
def test_bad_settings_name_the_allowed_range(field, value, message):
    with pytest.raises(InputError, match=message):
        Settings(**{field: value})


def test_settings_from_form_values():
    settings = Settings(method=" Model ", model="", layers="4", steps="20", seed="7", resolution="0", prompt=" a ")
    picked = (settings.method, settings.model, settings.layers, settings.steps, settings.seed)
    assert picked == ("model", "demo", 4, 20, 7)
    assert settings.resolution is None and settings.prompt == "a" and settings.refine is True
    assert Settings(seed=12345678901234567).seed == 12345678901234567  # exact, not through a float


def test_importing_it_loads_no_torch():
    code = "import sys, layered.decompose, layered.app.decompose\nassert 'torch' not in sys.modules"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


# ---- the same decomposition from the CLI and the editor ---------------------------------------------


def _editor_hooks():
    seen: list[tuple[float, str]] = []
    return seen, (lambda fraction, text: seen.append((fraction, text))), threading.Event()


def test_cli_and_editor_give_the_same_classic_layers(image, tmp_path, capsys):
    assert main(["decompose", str(image), "-o", str(tmp_path), "--method", "classic", "--layers", "3"]) == 0, (
        capsys.readouterr().err
    )
    seen, progress, cancel = _editor_hooks()
    ours = editor.decompose_image(_rgba(image), Settings(method="classic", layers=3), progress, cancel)
    _same_layers(LayerStack.load(tmp_path / "design"), ours)
    assert seen == [(0.1, "classic decomposition")]
    raw = decomposer(Settings(layers=3, refine=False))(_rgba(image))
    assert raw.refined is False and ours.refined is True


def test_cli_and_editor_give_the_same_model_layers(image, model_dir, tmp_path, capsys):
    args = ["--model", str(model_dir), "--steps", "2", "--layers", "2", "--seed", "3", "--prompt", "p"]
    assert main(["decompose", str(image), "-o", str(tmp_path), *args]) == 0, capsys.readouterr().err
    seen, progress, cancel = _editor_hooks()
    settings = Settings(method="model", model=str(model_dir), layers=2, steps=2, seed=3, prompt="p")
    ours = editor.decompose_image(_rgba(image), settings, progress, cancel)
    _same_layers(LayerStack.load(tmp_path / "design"), ours)
    assert seen[-2:] == [(0.5, "denoising step 1 of 2"), (1.0, "denoising step 2 of 2")]


# ---- hooks and the cache ----------------------------------------------------------------------------


def test_cancel_stops_both_methods(image, model_dir):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        decomposer(Settings(layers=2), cancel=cancel)(_rgba(image))
    model = Settings(method="model", model=str(model_dir), layers=2, steps=2, prompt="p")
    with pytest.raises(Cancelled):
        decomposer(model, cancel=cancel)(_rgba(image))


def test_pipelines_load_once_per_process(model_dir):
    settings = Settings(method="model", model=str(model_dir), device="cpu")
    found = []
    threads = [threading.Thread(target=lambda: found.append(load_model(settings))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 3 and all(pipe is found[0] for pipe in found)
    assert load_model(settings) is found[0]


def test_classic_marks_its_opaque_plate_as_the_background(image):
    stack = decomposer(Settings(method="classic", layers=3))(_rgba(image))
    plate = stack[0]
    assert plate.kind == "background" and plate.pixels[..., 3].min() == 255
    assert plate.bbox == (0, 0, stack.width, stack.height)
    assert all(layer.kind is None for layer in stack[1:])  # no kind it cannot infer
