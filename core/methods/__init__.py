"""The method registry. `get_method(name)`, `method_names()`, `all_methods()`."""
from .base import (Context, MethodSpec, SampleBatch, Sampler, all_methods, build_params, get_method,
                   method_names, param, pick_device, register)

__all__ = ["Context", "MethodSpec", "SampleBatch", "Sampler", "all_methods", "build_params",
           "get_method", "method_names", "param", "pick_device", "register"]
