"""Generators (domain.md section 5): ``build_model(cfg, N)`` and ``describe_model(model)``."""

from engine.models.registry import BUILDERS, build_model, describe_model

__all__ = ["BUILDERS", "build_model", "describe_model"]
