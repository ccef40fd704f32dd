"""LayeredPipeline against the stock diffusers pipeline, single-input runs and its own documented rules.

Every model here is the real diffusers/transformers class with a tiny random config (tests/tiny_pipeline.py).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_pipeline import make_tiny_pipeline, tiny_components

from layered.layer_tools import prune_layers
from layered.pipeline import FALLBACK_PROMPT, LayeredPipeline
from layered.pixels import resize_rgba

STEPS = 2


def _image(w=64, h=48, seed=0, mode="RGB"):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    pixels[: h // 2, : w // 2] = (200, 30, 30)
    return Image.fromarray(pixels).convert(mode)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def pipe():
    return make_tiny_pipeline(seed=0)


def _run(pipe, image, **kwargs):
    kwargs.setdefault("num_inference_steps", STEPS)
    kwargs.setdefault("generator", _gen())
    kwargs.setdefault("output_type", "pt")
    return pipe(image, **kwargs)


def test_batch_one_equals_stock_pipeline():
    from diffusers import QwenImageLayeredPipeline

    components = tiny_components(seed=1, downsample=4)  # 16x VAE keeps the stock 640 bucket cheap
    stock = QwenImageLayeredPipeline(**components)
    ours = LayeredPipeline(**components)
    for p in (stock, ours):
        p.set_progress_bar_config(disable=True)
    image = _image().convert("RGBA")  # the stock pipeline needs RGBA for the 4-channel VAE
    common = dict(layers=2, num_inference_steps=STEPS, output_type="pt", negative_prompt=" ", true_cfg_scale=2.0)
    expected = stock(image, "a red square", generator=_gen(5), resolution=640, **common).images[0]
    got = ours(image, "a red square", generator=_gen(5), resolution=640, refine=False, **common)
    assert got.images[0].shape == expected.shape == (2, 4, 544, 736)
    torch.testing.assert_close(got.images[0], expected, rtol=0, atol=1e-5)
    # unrefined, the stack is the same layers, at the input's size (premultiplied resize of the 8-bit outputs)
    pixels = (expected.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    stack = got.stacks[0]
    assert stack.size == image.size and len(stack) == 2
    for k in range(2):
        np.testing.assert_array_equal(stack.render_layer(k), resize_rgba(pixels[k], image.size))


def test_batch_of_three_matches_single_runs(pipe):
    images = [_image(64, 48, 1), _image(48, 64, 2), _image(64, 48, 3)]
    layers = [2, 3, 2]
    prompts = ["a cat", "a dog on a mat", "x"]  # different lengths: padded and masked in the batch
    batch = _run(pipe, images, prompt=prompts, layers=layers, generator=[_gen(10 + i) for i in range(3)])
    assert [len(s) for s in batch.images] == layers
    for i in range(3):
        single = _run(pipe, images[i], prompt=prompts[i], layers=layers[i], generator=_gen(10 + i))
        torch.testing.assert_close(batch.images[i], single.images[0], rtol=0, atol=1e-4)
        assert batch.stacks[i].size == images[i].size


def test_num_images_per_prompt_is_input_major(pipe):
    images = [_image(seed=1), _image(seed=2)]
    out = _run(
        pipe, images, prompt=["a", "b"], layers=2, num_images_per_prompt=2, generator=[_gen(i) for i in range(4)]
    )
    assert len(out.images) == len(out.stacks) == 4
    for row in range(4):
        single = _run(pipe, images[row // 2], prompt=["a", "b"][row // 2], layers=2, generator=_gen(row))
        torch.testing.assert_close(out.images[row], single.images[0], rtol=0, atol=1e-4)


def test_rgb_and_rgba_inputs(pipe):
    rgb = _image()
    opaque = _run(pipe, rgb.convert("RGBA"), prompt="p", layers=2).images[0]
    torch.testing.assert_close(_run(pipe, rgb, prompt="p", layers=2).images[0], opaque, rtol=0, atol=0)
    grey = _run(pipe, rgb.convert("L"), prompt="p", layers=2).images[0]  # grey and arrays work too
    assert grey.shape == opaque.shape
    # transparent pixels are flattened over `background`: same as flattening by hand (PIL reference)
    rgba = np.asarray(rgb.convert("RGBA")).copy()
    rgba[:, :20, 3] = 0
    rgba[:, 20:30, 3] = 128
    flat = Image.alpha_composite(Image.new("RGBA", rgb.size, (0, 90, 255, 255)), Image.fromarray(rgba))
    on_blue = _run(pipe, Image.fromarray(rgba), prompt="p", layers=2, background=(0, 90, 255)).images[0]
    torch.testing.assert_close(on_blue, _run(pipe, flat.convert("RGB"), prompt="p", layers=2).images[0])
    kept = _run(pipe, Image.fromarray(rgba), prompt="p", layers=2, background=None).images[0]
    assert not torch.allclose(kept, on_blue)


def test_output_types_agree(pipe):
    image = _image()
    pt = _run(pipe, image, prompt="p", layers=3).images[0]
    np_out = _run(pipe, image, prompt="p", layers=3, output_type="np").images[0]
    pil = _run(pipe, image, prompt="p", layers=3, output_type="pil").images[0]
    assert pt.shape == (3, 4, 48, 80)  # 64 px area at 4:3, sides multiples of 16
    np.testing.assert_allclose(np_out, pt.permute(0, 2, 3, 1).numpy(), atol=1e-6)
    assert [im.mode for im in pil] == ["RGBA"] * 3
    np.testing.assert_array_equal(np.stack([np.asarray(im) for im in pil]), (np_out * 255).round().astype(np.uint8))
    latent = _run(pipe, image, prompt="p", layers=3, output_type="latent")
    assert latent.stacks is None
    frames = latent.images[0]
    assert frames.shape == (8, 4, 48 // 8, 80 // 8)  # z_dim x (composite + 3 layers) x h x w
    # decoding the latents by hand (denormalise, drop the composite frame) gives the pt output
    vae = pipe.vae
    mean = torch.tensor(vae.config.latents_mean).view(-1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(-1, 1, 1, 1)
    decoded = vae.decode((frames * std + mean)[:, 1:].permute(1, 0, 2, 3).unsqueeze(2)).sample.squeeze(2)
    torch.testing.assert_close((decoded / 2 + 0.5).clamp(0, 1), pt, rtol=0, atol=1e-5)
    images, stacks = _run(pipe, image, prompt="p", layers=3, return_dict=False)
    assert isinstance(images, torch.Tensor) and images.shape == (1, 3, 4, 48, 80) and len(stacks) == 1
    torch.testing.assert_close(images[0], pt, rtol=0, atol=0)


def test_resolution_and_explicit_size(pipe):
    image = _image(64, 48)
    assert pipe.working_size(image.size) == (48, 80)
    assert pipe.working_size(image.size, 640) == (544, 736)  # the stock bucket rule
    assert pipe.working_size(image.size, 32) == (32, 32)
    out = _run(pipe, image, prompt="p", layers=2, height=48, width=64, refine=False)
    assert out.images[0].shape == (2, 4, 48, 64)
    # native size, unrefined: the stack is the model output itself, cropped (no resampling)
    pixels = (out.images[0].permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    for k in range(2):
        np.testing.assert_array_equal(out.stacks[0].render_layer(k), pixels[k])
    with pytest.raises(ValueError):
        _run(pipe, image, layers=2, height=40, width=64)


def test_prompt_rules(pipe, monkeypatch):
    image = _image()
    # no captioner: an empty prompt is the empty caption the trainer uses for dropped captions
    from training.encoding import encode_captions, pad_embeddings

    assert FALLBACK_PROMPT == ""
    dropped, dropped_mask = pad_embeddings(encode_captions(pipe, [""], "cpu"))
    fallback = _run(pipe, image, prompt_embeds=dropped, prompt_embeds_mask=dropped_mask, layers=2).images[0]
    torch.testing.assert_close(_run(pipe, image, prompt="", layers=2).images[0], fallback, rtol=0, atol=1e-6)
    torch.testing.assert_close(_run(pipe, image, prompt=None, layers=2).images[0], fallback, rtol=0, atol=1e-6)
    # prompt_embeds are used as given and never trigger the captioner
    embeds, mask = pipe.encode_prompt("a tree", device="cpu")
    from_text = _run(pipe, image, prompt="a tree", layers=2).images[0]
    monkeypatch.setattr(pipe, "processor", object())
    monkeypatch.setattr(pipe, "get_image_caption", lambda *_a, **_k: pytest.fail("captioner called"))
    from_embeds = _run(pipe, image, prompt_embeds=embeds, prompt_embeds_mask=mask, layers=2).images[0]
    torch.testing.assert_close(from_embeds, from_text, rtol=0, atol=1e-6)
    # with a captioner, an empty prompt is replaced by the caption
    monkeypatch.setattr(pipe, "get_image_caption", lambda *_a, **_k: "a tree")
    torch.testing.assert_close(_run(pipe, image, prompt=" ", layers=2).images[0], from_text, rtol=0, atol=1e-6)


def test_no_text_encoder_uses_zero_embeddings():
    pipe = make_tiny_pipeline(seed=2, text_encoder=False)
    image = _image()
    out = _run(pipe, image, layers=2).images[0]
    zeros = torch.zeros(1, 1, pipe.transformer.config.joint_attention_dim)
    torch.testing.assert_close(_run(pipe, image, prompt_embeds=zeros, layers=2).images[0], out, rtol=0, atol=0)
    with pytest.raises(ValueError, match="text encoder"):
        _run(pipe, image, layers=2, negative_prompt="blurry", true_cfg_scale=2.0)


def test_determinism_and_callbacks(pipe):
    image = _image()
    a = _run(pipe, image, prompt="p", layers=2).images[0]
    torch.testing.assert_close(_run(pipe, image, prompt="p", layers=2).images[0], a, rtol=0, atol=0)
    assert not torch.allclose(_run(pipe, image, prompt="p", layers=2, generator=_gen(1)).images[0], a)
    seen = []

    def callback(_p, step, _timestep, tensors):
        seen.append((step, tuple(tensors["latents"].shape), tuple(tensors.get("prompt_embeds", torch.zeros(1)).shape)))
        return {"latents": torch.zeros_like(tensors["latents"])} if step == STEPS - 1 else {}

    zeroed = _run(
        pipe, image, prompt="p", layers=2, callback_on_step_end=callback,
        callback_on_step_end_tensor_inputs=["latents", "prompt_embeds"],
    ).images[0]  # fmt: skip
    assert [s[0] for s in seen] == list(range(STEPS))
    assert seen[0][1][0] == 1 and seen[0][2][0] == 1
    # zero latents decode to the VAE's image of the latent mean, whatever the seed
    expected = _run(pipe, image, prompt="p", layers=2, generator=_gen(7), callback_on_step_end=callback).images[0]
    torch.testing.assert_close(zeroed, expected, rtol=0, atol=1e-6)
    with pytest.raises(ValueError):
        _run(pipe, image, layers=2, callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["noise"])


def test_auto_layers_prunes_the_fixed_run(pipe):
    image = _image()
    full = _run(pipe, image, prompt="p", layers=5, output_type="np", refine=False)
    auto = _run(pipe, image, prompt="p", layers="auto", max_layers=5, output_type="np", refine=False)
    expected, kept = prune_layers(full.stacks[0])
    stack = auto.stacks[0]
    assert 1 <= len(stack) <= 5 and not any(layer.is_empty for layer in stack)
    assert len(auto.images[0]) == len(stack) == len(kept)
    for a, b in zip(stack.layers, expected.layers, strict=True):
        np.testing.assert_array_equal(a.pixels, b.pixels)
    np.testing.assert_array_equal(auto.images[0], full.images[0][kept])


def test_recursive_decomposition(pipe):
    base = _run(pipe, _image(), prompt="p", layers=3, output_type="np").stacks[0]
    out = pipe.decompose_layer(base, 1, layers=2, prompt="p", num_inference_steps=STEPS, generator=_gen())
    new = len(out) - (len(base) - 1)
    assert 1 <= new <= 2
    assert out[0] is base[0] and out[-1] is base[2]
    assert all(layer.name.startswith("layer 1 / ") for layer in out.layers[1 : 1 + new])


def test_refined_stacks_recompose_each_input_at_its_own_size(pipe):
    """Default refine=True: stacks at each input's size add up to it (1/255), images stay at working size."""
    images = [_image(64, 48, 1), Image.fromarray(_rgba_input(72, 40))]
    out = _run(pipe, images, prompt="p", layers=[2, 3], output_type="np")
    for image, stack, layers in zip(images, out.stacks, out.images, strict=True):
        want = np.asarray(image.convert("RGBA")).astype(int)
        got = stack.composite().astype(int)
        assert stack.size == image.size and stack.refined is True
        assert stack.working_size == (layers.shape[2], layers.shape[1]) != image.size
        assert np.abs(got[..., 3] - want[..., 3]).max() <= 1
        shows = want[..., 3] > 0
        assert np.abs(got[..., :3] - want[..., :3])[shows].max() <= 1
    # the recursive split refines inside the layer it splits: the whole composite is unchanged
    split = pipe.decompose_layer(out.stacks[0], 1, layers=2, prompt="p", num_inference_steps=STEPS, generator=_gen())
    assert np.abs(split.composite().astype(int) - out.stacks[0].composite().astype(int)).max() <= 1


def _rgba_input(width: int, height: int) -> np.ndarray:
    """An RGBA input with a transparent corner and a translucent band (refinement must match its alpha too)."""
    rgba = np.asarray(_image(width, height, 7).convert("RGBA")).copy()
    rgba[: height // 3, : width // 3, 3] = 0
    rgba[height // 2 :, :, 3] = 120
    return rgba


def test_offload_modes_match_no_offload():
    image = _image()
    reference = _run(make_tiny_pipeline(seed=3), image, prompt="p", layers=2).images[0]
    for mode in ("model", "sequential", "group"):
        pipe = make_tiny_pipeline(seed=3).configure_memory(offload=mode, device="cpu", vae_slicing=True)
        torch.testing.assert_close(_run(pipe, image, prompt="p", layers=2).images[0], reference, rtol=0, atol=1e-6)
    fp8 = make_tiny_pipeline(seed=3).configure_memory(layerwise_fp8=True, device="cpu", attention_backend="sdpa")
    assert fp8.transformer.transformer_blocks[0].attn.to_q.weight.dtype == torch.float8_e4m3fn
    rough = _run(fp8, image, prompt="p", layers=2).images[0]
    assert (rough - reference).abs().mean() < 0.05  # fp8 storage: close, not equal
    with pytest.raises(ValueError):
        make_tiny_pipeline().configure_memory(offload="disk")


def test_save_load_round_trip_and_dtypes(tmp_path, pipe):
    image = _image()
    reference = _run(pipe, image, prompt="p", layers=2).images[0]
    pipe.save_pretrained(tmp_path / "full")
    loaded = LayeredPipeline.from_pretrained(tmp_path / "full")
    loaded.set_progress_bar_config(disable=True)
    assert loaded.config.default_resolution == 64
    torch.testing.assert_close(_run(loaded, image, prompt="p", layers=2).images[0], reference, rtol=0, atol=1e-5)
    assert not list((tmp_path / "full").rglob("*.bin")) and list((tmp_path / "full").rglob("*.safetensors"))

    bare = make_tiny_pipeline(seed=4, text_encoder=False)
    bare.save_pretrained(tmp_path / "bare")
    index = json.loads((tmp_path / "bare" / "model_index.json").read_text())
    assert index["text_encoder"] == [None, None] and index["processor"] == [None, None]
    again = LayeredPipeline.from_pretrained(tmp_path / "bare")
    assert again.text_encoder is None and again.processor is None
    again.set_progress_bar_config(disable=True)
    torch.testing.assert_close(_run(again, image, layers=2).images[0], _run(bare, image, layers=2).images[0])

    bare.to(torch.float16).save_pretrained(tmp_path / "fp16")
    half = LayeredPipeline.from_pretrained(tmp_path / "fp16", dtype=torch.float16)
    assert half.transformer.dtype == torch.float16 and half.vae.dtype == torch.float16
    for name, tensor in bare.transformer.state_dict().items():
        torch.testing.assert_close(half.transformer.state_dict()[name], tensor, rtol=0, atol=0)
    bf16 = make_tiny_pipeline(seed=4, text_encoder=False).to(torch.bfloat16)
    out = _run(bf16, image, layers=2).images[0]
    assert out.dtype == torch.bfloat16
    assert (out.float() - _run(bare.to(torch.float32), image, layers=2).images[0]).abs().mean() < 0.05


def test_lora_loading(tmp_path):
    from peft import LoraConfig, get_peft_model_state_dict

    image = _image()
    adapted = make_tiny_pipeline(seed=5, text_encoder=False)
    base_out = _run(adapted, image, layers=2).images[0]
    config = LoraConfig(r=2, lora_alpha=2, target_modules=["to_q", "to_k", "to_v"], init_lora_weights=False)
    adapted.transformer.add_adapter(config)
    lora_out = _run(adapted, image, layers=2).images[0]
    assert not torch.allclose(lora_out, base_out)
    LayeredPipeline.save_lora_weights(tmp_path, transformer_lora_layers=get_peft_model_state_dict(adapted.transformer))
    fresh = make_tiny_pipeline(seed=5, text_encoder=False)
    fresh.load_lora_weights(tmp_path)
    torch.testing.assert_close(_run(fresh, image, layers=2).images[0], lora_out, rtol=0, atol=1e-5)


def test_bad_arguments(pipe):
    with pytest.raises(ValueError):
        pipe(None)
    with pytest.raises(ValueError):
        _run(pipe, _image(), layers=0)
    with pytest.raises(ValueError):
        _run(pipe, _image(), layers=2, output_type="jpeg")
    with pytest.raises(ValueError):
        _run(pipe, [_image(), _image()], layers=[2, 2, 2])


def test_one_step_is_refused_because_its_schedule_is_undefined(pipe):
    from diffusers import FlowMatchEulerDiscreteScheduler

    # The reason, from diffusers itself: a single sigma cannot be stretched to `shift_terminal` (0 / 0).
    scheduler = FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config)
    with np.errstate(all="ignore"):
        scheduler.set_timesteps(sigmas=[1.0], mu=1.0)
    assert torch.isnan(scheduler.sigmas[0])
    with pytest.raises(ValueError, match="num_inference_steps must be at least 2"):
        _run(pipe, _image(), layers=2, num_inference_steps=1)
    with pytest.raises(ValueError, match="num_inference_steps must be at least 2"):
        _run(pipe, _image(), layers=2, sigmas=[1.0])
    assert torch.isfinite(_run(pipe, _image(), layers=2, num_inference_steps=2).images[0]).all()
