"""An example lancer model provider: see model.py."""
