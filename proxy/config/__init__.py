"""The rules file: model (frozen values) and loader (TOML -> model, every error listed)."""
