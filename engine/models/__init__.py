"""Generators (docs/science.md, 'Generators'): ``build_model`` and ``describe_model``."""

from engine.models.registry import BUILDERS, build_model, describe_model

__all__ = ["BUILDERS", "build_model", "describe_model"]
