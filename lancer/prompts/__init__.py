"""The bundled prompt templates (Jinja, read by lancer.core.templates)."""
