"""Synthesis methods: the contract (`base`), the registry (`registry`) and one module per method or family.

    from core.methods import get_method, all_methods, available_methods
"""
from .base import Context, MethodSpec, NoParams, SampleBatch, Sampler
from .registry import PLUGINS_ENV, all_methods, available_methods, get_method, method_names, plugin_errors, register

__all__ = ["Context", "MethodSpec", "NoParams", "PLUGINS_ENV", "SampleBatch", "Sampler", "all_methods",
           "available_methods", "get_method", "method_names", "plugin_errors", "register"]
