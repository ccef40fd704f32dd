"""This folder's diffusers custom pipeline: `layered.LayeredPipeline` (pip install layered).

    DiffusionPipeline.from_pretrained(this_folder, trust_remote_code=True)
"""

from layered.pipeline import LayeredPipeline

__all__ = ["LayeredPipeline"]
