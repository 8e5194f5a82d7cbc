"""Fakes for tests: only the model is faked, at the HTTP wire level."""
