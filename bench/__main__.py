"""``python -m bench`` (``make bench``): run every benchmark with its defaults, one after another.

Exits non-zero when any benchmark does (e.g. preflight missing its target).
"""

import importlib
import pkgutil
from pathlib import Path

failed = []
for info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda m: m.name):
    if info.name.startswith("_"):
        continue
    print(f"\n== bench.{info.name}", flush=True)
    if importlib.import_module(f"bench.{info.name}").main([]) != 0:
        failed.append(info.name)
if failed:
    print(f"\nbenchmarks that missed their target or failed: {', '.join(failed)}")
raise SystemExit(1 if failed else 0)
