"""lancer: run a model on a freelance software task, record every step, grade the patch."""

__version__ = "0.1.0"
