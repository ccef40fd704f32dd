"""The one PSD core, split by level as psd-tools splits its own code (no torch; psd-tools loads when used).

- file structure: `header` (the 26-byte header, checked before psd-tools allocates anything; the parse under
  a budget) and `writer` (an RGBA document of pixel layers, written record by record);
- layers: `layers` (which layers are plain pixels: their stored channels are what they show);
- what users touch (a `LayerStack` in, a `LayerStack` out) is `layered.formats.psd` for the editor and the
  CLI, and `psd_pipeline.extract` for the dataset builder; both stand on this package.
"""
