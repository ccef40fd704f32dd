"""RGBA-VAE and VLD-MMDiT training (diffusers models, accelerate)."""
