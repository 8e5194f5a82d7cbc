"""The grader: a fresh sandbox, the patch, the hidden tests, a verdict."""

from lancer.grader.grade import Grade, grade

__all__ = ["Grade", "grade"]
