"""LayeredPipeline against diffusers' own pipeline conventions, loaded the generic way.

Every pipeline here comes from `DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)` on a folder
that `save_pretrained` wrote (tiny random components, tests/tiny_pipeline.py), with the network cut off.
The conventions are the ones diffusers' common pipeline tests check: save/load round trips, dict vs tuple,
batch-first arrays, `num_images_per_prompt`, batch == single runs, callbacks, CFG, dtypes and offloading.
"""

from __future__ import annotations

import json
import logging
import socket

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline, QwenImageLayeredPipeline
from PIL import Image
from tiny_pipeline import make_tiny_pipeline

from layered.models import DEMO_DIR, load_pipeline
from layered.pipeline import PIPELINE_CLASS_NAME, PIPELINE_MODULE, LayeredPipeline

STEPS = 2
SIZE = 32  # the tiny pipeline's working size: 32 x 32 px, 4 x 4 latents


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No network: any connection attempt fails (everything here must load from local folders)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*_args, **_kwargs):
        raise OSError("network access in an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def _image(seed=0, size=(SIZE, SIZE)):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    pixels[: size[1] // 2, : size[0] // 2] = (200, 30, 30)
    return Image.fromarray(pixels)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _load(folder, **kwargs):
    pipe = DiffusionPipeline.from_pretrained(folder, trust_remote_code=True, **kwargs)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _run(pipe, image, **kwargs):
    kwargs.setdefault("prompt", None if "prompt_embeds" in kwargs else "a red square")
    kwargs.setdefault("layers", 2)
    kwargs.setdefault("num_inference_steps", STEPS)
    kwargs.setdefault("generator", _gen())
    kwargs.setdefault("output_type", "np")
    return pipe(image, **kwargs)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "pipeline"
    make_tiny_pipeline(seed=0, default_resolution=SIZE).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def pipe(folder):
    return _load(folder)


# ------------------------------------------------------------------------------------------- loading


def test_saved_folder_loads_through_diffusion_pipeline(folder, pipe):
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == PIPELINE_CLASS_NAME and index["default_resolution"] == SIZE
    assert (folder / f"{PIPELINE_MODULE}.py").is_file()
    assert type(pipe) is LayeredPipeline and pipe.config.default_resolution == SIZE
    reference = _run(make_tiny_pipeline(seed=0, default_resolution=SIZE), _image()).images
    np.testing.assert_allclose(_run(pipe, _image()).images, reference, rtol=0, atol=1e-6)
    # diffusers' own gate on code shipped in a folder: a clear error, not an AttributeError
    with pytest.raises(ValueError, match="trust_remote_code"):
        DiffusionPipeline.from_pretrained(folder)
    stock = QwenImageLayeredPipeline.from_pretrained(folder, trust_remote_code=True)
    assert isinstance(stock, QwenImageLayeredPipeline)
    exact = QwenImageLayeredPipeline.from_pipe(pipe)  # the stock class itself, on the same weights
    assert type(exact) is QwenImageLayeredPipeline and exact.transformer is pipe.transformer


def test_stock_folders_still_load(tmp_path):
    """A folder the stock pipeline wrote (the Hub's Qwen/Qwen-Image-Layered layout) loads as either class."""
    source = make_tiny_pipeline(seed=2)
    QwenImageLayeredPipeline(**source.components).save_pretrained(tmp_path / "stock")
    index = json.loads((tmp_path / "stock" / "model_index.json").read_text())
    assert index["_class_name"] == "QwenImageLayeredPipeline" and "default_resolution" not in index
    stock = DiffusionPipeline.from_pretrained(tmp_path / "stock", processor=None)  # stock: processor not optional
    assert type(stock) is QwenImageLayeredPipeline
    ours = LayeredPipeline.from_pretrained(tmp_path / "stock")
    assert type(ours) is LayeredPipeline and ours.config.default_resolution == 640  # the real model's size
    for name, tensor in source.transformer.state_dict().items():
        torch.testing.assert_close(ours.transformer.state_dict()[name], tensor, rtol=0, atol=0)


def test_layered_pipeline_loads_without_running_the_folder_code(folder, tmp_path):
    copy = tmp_path / "copy"
    LayeredPipeline.from_pretrained(folder).save_pretrained(copy)
    (copy / f"{PIPELINE_MODULE}.py").write_text("raise RuntimeError('the folder code was executed')\n")
    loaded = LayeredPipeline.from_pretrained(copy)  # no flag: the class the folder names is this one
    assert type(loaded) is LayeredPipeline
    with pytest.raises(RuntimeError, match="folder code was executed"):
        DiffusionPipeline.from_pretrained(copy, trust_remote_code=True)


def test_round_trip_without_optional_components(tmp_path):
    bare = make_tiny_pipeline(seed=1, text_encoder=False, default_resolution=SIZE)
    bare.save_pretrained(tmp_path / "bare")
    index = json.loads((tmp_path / "bare" / "model_index.json").read_text())
    assert index["text_encoder"] == index["tokenizer"] == index["processor"] == [None, None]
    loaded = _load(tmp_path / "bare")
    assert type(loaded) is LayeredPipeline
    assert loaded.text_encoder is None and loaded.tokenizer is None and loaded.processor is None
    np.testing.assert_allclose(_run(loaded, _image()).images, _run(bare, _image()).images, rtol=0, atol=1e-6)


def test_trainer_and_export_folders_load_through_diffusion_pipeline(folder, tmp_path):
    from training.export_pipeline import export_pipeline
    from training.models import build_pipeline, save_pipeline

    source = LayeredPipeline.from_pretrained(folder)
    parts = {k: v for k, v in source.components.items()}
    save_pipeline(build_pipeline(**parts, resolution=48), tmp_path / "trained")
    trained = _load(tmp_path / "trained")
    assert type(trained) is LayeredPipeline and trained.config.default_resolution == 48
    export_pipeline(tmp_path / "trained", tmp_path / "fp16", "float16")
    half = _load(tmp_path / "fp16", dtype=torch.float16)
    assert type(half) is LayeredPipeline and half.transformer.dtype == torch.float16
    for name, tensor in source.transformer.state_dict().items():
        torch.testing.assert_close(half.transformer.state_dict()[name], tensor.half(), rtol=0, atol=0)


def test_demo_model_decomposes_the_bundled_example():
    """The shipped demo folder through the generic loader decomposes examples/design_1.png, offline."""
    image = Image.open(DEMO_DIR.parents[2] / "examples" / "design_1.png")
    generic = _load(DEMO_DIR)
    assert type(generic) is LayeredPipeline
    out = _run(generic, image, prompt=None)
    assert out.images.shape == (1, 2, 64, 64, 4) and np.isfinite(out.images).all()
    assert out.images[0, :, :, :, 3].max() > 0.5  # visible layers, not an empty stack
    assert out.stacks[0].size == image.size
    ours = load_pipeline("demo")  # what `layered decompose` loads: the same weights, the same layers
    ours.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(out.images, _run(ours, image, prompt=None).images)


# ------------------------------------------------------------------------------------------- outputs


def test_uniform_batches_are_batch_first_arrays(pipe):
    images = [_image(1), _image(2)]
    gens = lambda: [_gen(1), _gen(2)]  # noqa: E731
    np_out = _run(pipe, images, generator=gens()).images
    pt_out = _run(pipe, images, generator=gens(), output_type="pt").images
    pil_out = _run(pipe, images, generator=gens(), output_type="pil").images
    assert isinstance(np_out, np.ndarray) and np_out.shape == (2, 2, SIZE, SIZE, 4)
    assert isinstance(pt_out, torch.Tensor) and pt_out.shape == (2, 2, 4, SIZE, SIZE)
    np.testing.assert_allclose(pt_out.permute(0, 1, 3, 4, 2).numpy(), np_out, atol=1e-6)
    assert isinstance(pil_out, list) and [len(row) for row in pil_out] == [2, 2]
    for row, layers in zip(np_out, pil_out, strict=True):
        np.testing.assert_array_equal(np.stack([np.asarray(im) for im in layers]), (row * 255).round())
    # the second row is the second image's single run
    np.testing.assert_allclose(np_out[1], _run(pipe, images[1], generator=_gen(2)).images[0], atol=1e-5)


def test_mixed_batches_are_lists(pipe):
    images = [_image(1), _image(2, size=(SIZE * 2, SIZE))]
    by_size = _run(pipe, images, generator=[_gen(1), _gen(2)], resolution=64).images
    assert isinstance(by_size, list) and [a.shape for a in by_size] == [(2, 64, 64, 4), (2, 48, 96, 4)]
    by_count = _run(pipe, [_image(1), _image(2)], layers=[2, 3], output_type="pt").images
    assert isinstance(by_count, list) and [tuple(t.shape) for t in by_count] == [(2, 4, 32, 32), (3, 4, 32, 32)]


def test_dict_and_tuple_outputs_are_equivalent(pipe):
    out = _run(pipe, [_image(1), _image(2)], output_type="pt", generator=[_gen(1), _gen(2)])
    images, stacks = _run(
        pipe, [_image(1), _image(2)], output_type="pt", generator=[_gen(1), _gen(2)], return_dict=False
    )
    torch.testing.assert_close(images, out.images, rtol=0, atol=0)
    assert out[0] is out.images and len(stacks) == len(out.stacks) == 2
    for a, b in zip(stacks, out.stacks, strict=True):
        np.testing.assert_array_equal(a.composite(), b.composite())


def test_num_images_per_prompt(pipe):
    images = [_image(1), _image(2)]
    out = _run(pipe, images, prompt=["a", "b"], num_images_per_prompt=2, generator=[_gen(i) for i in range(4)])
    assert out.images.shape == (4, 2, SIZE, SIZE, 4) and len(out.stacks) == 4
    # input-major: row 3 is the second image with the fourth generator
    single = _run(pipe, images[1], prompt="b", generator=_gen(3)).images[0]
    np.testing.assert_allclose(out.images[3], single, rtol=0, atol=1e-5)
    assert np.abs(out.images[2] - out.images[3]).max() > 1e-3  # two samples of one image differ


def test_batch_of_three_identical_to_single_runs(pipe):
    images = [_image(1), _image(2), _image(3)]
    prompts = ["a red square", "a red", 100 * "very long "]  # padded and masked in the batch
    batch = _run(pipe, images, prompt=prompts, generator=[_gen(i) for i in range(3)]).images
    assert batch.shape[0] == 3
    for i in range(3):
        single = _run(pipe, images[i], prompt=prompts[i], generator=_gen(i)).images[0]
        np.testing.assert_allclose(batch[i], single, rtol=0, atol=1e-4)


# ------------------------------------------------------------------------------------------- prompts


@pytest.mark.usefixtures("folder")
def test_encode_prompt_output_is_accepted_as_prompt_embeds(pipe):
    prompts = ["a cat", "a dog on a mat with a hat"]
    embeds, mask = pipe.encode_prompt(prompts, num_images_per_prompt=2)
    assert embeds.shape[0] == mask.shape[0] == 4
    # prompt-major rows (the stock pipeline repeats the mask batch-major, so its rows 1 and 2 swap masks)
    assert torch.equal(mask[0], mask[1]) and torch.equal(mask[2], mask[3]) and not torch.equal(mask[1], mask[2])
    for i, prompt in enumerate(prompts):
        alone, alone_mask = pipe.encode_prompt(prompt)
        n = alone.shape[1]
        torch.testing.assert_close(embeds[2 * i + 1, :n], alone[0], rtol=0, atol=1e-6)
        assert alone_mask.shape == (1, n) and alone_mask.all() and int(mask[2 * i].sum()) == n
    # a pipeline without text encoder gives the same layers from the embeddings: nothing is re-encoded
    parts = {**pipe.components, "text_encoder": None, "tokenizer": None}
    text_free = LayeredPipeline(**parts, default_resolution=SIZE)
    text_free.set_progress_bar_config(disable=True)
    images, gens = [_image(1), _image(2)], lambda: [_gen(i) for i in range(4)]  # noqa: E731
    from_text = _run(pipe, images, prompt=prompts, num_images_per_prompt=2, generator=gens()).images
    kwargs = dict(prompt_embeds=embeds, prompt_embeds_mask=mask, num_images_per_prompt=2, generator=gens())
    np.testing.assert_allclose(_run(text_free, images, **kwargs).images, from_text, rtol=0, atol=1e-5)


def test_true_cfg_on_and_off(pipe):
    image = _image()
    plain = _run(pipe, image).images
    # off: true_cfg_scale 1 ignores the negative prompt
    off = _run(pipe, image, negative_prompt="blurry", true_cfg_scale=1.0).images
    np.testing.assert_array_equal(off, plain)
    on = _run(pipe, image, negative_prompt="blurry", true_cfg_scale=4.0).images
    assert np.abs(on - plain).max() > 1e-3
    # uncond + s * (cond - uncond) == cond when the negative prompt is the prompt (normalised or not)
    for normalize in (False, True):
        same = _run(pipe, image, negative_prompt="a red square", true_cfg_scale=4.0, cfg_normalize=normalize)
        np.testing.assert_allclose(same.images, plain, rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------------------- callbacks


def test_callbacks_read_and_change_the_documented_tensors(pipe):
    assert pipe._callback_tensor_inputs == ["latents", "prompt_embeds"]
    seen = []

    def read(_p, _step, _timestep, tensors):
        seen.append(sorted(tensors))
        return {}

    _run(pipe, _image(), callback_on_step_end=read, callback_on_step_end_tensor_inputs=["latents"])
    _run(pipe, _image(), callback_on_step_end=read, callback_on_step_end_tensor_inputs=pipe._callback_tensor_inputs)
    assert seen == [["latents"]] * STEPS + [["latents", "prompt_embeds"]] * STEPS

    def zero_last(p, step, _timestep, tensors):
        return {"latents": torch.zeros_like(tensors["latents"])} if step == p.num_timesteps - 1 else {}

    latent = _run(pipe, _image(), output_type="latent", callback_on_step_end=zero_last).images
    assert isinstance(latent, torch.Tensor) and latent.shape == (1, 8, 3, 4, 4) and latent.abs().sum() == 0

    def raise_guidance(p, _step, _timestep, tensors):
        p._guidance_scale += 1.0
        return tensors

    _run(pipe, _image(), guidance_scale=2.0, callback_on_step_end=raise_guidance)
    assert pipe.guidance_scale == 2.0 + pipe.num_timesteps

    def swap_text(_p, _step, _timestep, tensors):
        return {"prompt_embeds": torch.zeros_like(tensors["prompt_embeds"])}

    swapped = _run(pipe, _image(), callback_on_step_end=swap_text, callback_on_step_end_tensor_inputs=["prompt_embeds"])
    assert np.abs(swapped.images - _run(pipe, _image()).images).max() > 1e-4  # step 2 saw the new embeddings
    with pytest.raises(ValueError, match="callback_on_step_end_tensor_inputs"):
        _run(pipe, _image(), callback_on_step_end=read, callback_on_step_end_tensor_inputs=["noise"])


# ------------------------------------------------------------------------------------------- dtypes, memory


def test_to_dtype_and_layerwise_casting(folder):
    reference = _run(_load(folder), _image()).images
    pipe = _load(folder).to(dtype=torch.bfloat16)
    assert {m.dtype for m in (pipe.vae, pipe.transformer, pipe.text_encoder)} == {torch.bfloat16}
    bf16 = _run(pipe, _image(), output_type="pt").images
    assert bf16.dtype == torch.bfloat16 and (bf16.float().permute(0, 1, 3, 4, 2).numpy() - reference).std() < 0.05
    pipe.transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=torch.bfloat16)
    assert pipe.transformer.transformer_blocks[0].attn.to_q.weight.dtype == torch.float8_e4m3fn
    fp8 = _run(pipe, _image()).images
    assert np.abs(fp8 - reference).mean() < 0.05


def test_group_offload_matches_no_offload(folder):
    reference = _run(_load(folder), _image()).images
    for kind in ({"offload_type": "block_level", "num_blocks_per_group": 1}, {"offload_type": "leaf_level"}):
        pipe = _load(folder)
        pipe.transformer.enable_group_offload(torch.device("cpu"), **kind)
        np.testing.assert_allclose(_run(pipe, _image()).images, reference, rtol=0, atol=1e-6)
    pipe = _load(folder)
    pipe.enable_group_offload(onload_device="cpu", offload_device="cpu", offload_type="leaf_level")
    np.testing.assert_allclose(_run(pipe, _image()).images, reference, rtol=0, atol=1e-6)


def test_memory_switches_work_or_raise_diffusers_errors(folder, caplog):
    reference = _run(_load(folder), _image()).images
    pipe = _load(folder)
    with caplog.at_level(logging.WARNING):
        pipe.enable_attention_slicing(slice_size=1)
    assert "attention slicing has no effect" in caplog.text  # no component slices: said, not silent
    np.testing.assert_array_equal(_run(pipe, _image()).images, reference)
    pipe = _load(folder)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="requires accelerator"):
            pipe.enable_model_cpu_offload()
    pipe.enable_model_cpu_offload(device="cpu")
    np.testing.assert_allclose(_run(pipe, _image()).images, reference, rtol=0, atol=1e-6)
    balanced = _load(folder, device_map="balanced")
    assert type(balanced) is LayeredPipeline
    np.testing.assert_allclose(_run(balanced, _image()).images, reference, rtol=0, atol=1e-6)
