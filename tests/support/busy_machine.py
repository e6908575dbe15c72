"""A test-only plugin: the machine's load average as $DEFECTAUG_TEST_LOAD says (a busy machine on demand, for the
process that imports it: the worker and its job processes load it through DEFECTAUG_PLUGINS). Nothing else."""
from __future__ import annotations

import os

_load = os.environ.get("DEFECTAUG_TEST_LOAD")
if _load:
    os.getloadavg = lambda: (float(_load),) * 3
