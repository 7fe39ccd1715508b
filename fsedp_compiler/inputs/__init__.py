"""What users bring: model specs, targets (TOML and presets), routing traces, Hugging Face configs."""
