"""The platform's own tooling, importable by scripts and tests alike (`python -m scripts --help`)."""
