"""The one PSD reading core, split by level as psd-tools splits its own code (no torch; psd-tools loads when used).

- file structure: `header` (the 26-byte header, checked before psd-tools allocates anything; the parse under
  a budget) and `writer` (an RGBA document of pixel layers, written record by record);
- layers (psd-tools' API): `layers` (the merge rules' questions about one layer or group) and `tree` (the walk
  and the merges);
- compositing: `render` (psd-tools renders, plain pixel layers read directly), `color` (ICC profiles, 16/32-bit,
  CMYK, one documented rule for untagged CMYK) and `fidelity` (the check against the stored composite);
- the readings: `extract` (the stack and its reference; the dataset builder's reading) and `reader` (the
  editor's: what you open is what Photoshop shows, every simplification noted), which `layered.formats.psd`
  serves to the editor and the CLI. `psd_pipeline` keeps only the dataset: curation, sampling, shards.
"""
