"""layered: layered image decomposition with diffusion (Qwen-Image-Layered on diffusers).

Importing this package is light (numpy and Pillow only); the diffusion pipeline imports torch and
diffusers on first use.
"""

from layered.errors import InputError, LayeredError
from layered.stack import Layer, LayerStack, composite

__version__ = "0.1.0"

__all__ = ["Layer", "LayerStack", "LayeredPipeline", "LayeredError", "InputError", "composite", "__version__"]


def __getattr__(name: str):
    if name == "LayeredPipeline":  # heavy: torch + diffusers, only when asked for
        from layered.pipeline import LayeredPipeline

        return LayeredPipeline
    raise AttributeError(f"module 'layered' has no attribute {name!r}")
