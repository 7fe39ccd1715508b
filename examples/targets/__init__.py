"""Bundled target presets, installed as `fsedp_compiler.presets` (see pyproject.toml)."""
