"""The grader: a fresh sandbox, the patch, the hidden tests, a verdict."""

from grader.grade import Grade, grade

__all__ = ["Grade", "grade"]
