"""Reading untrusted inputs and writing outputs safely (JSON, TOML, atomic files and directories)."""
