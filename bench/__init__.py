"""Benchmarks of the bot: `python -m bench` (or `make bench`) runs them and rewrites RESULTS.md.

Each benchmark is a function taking its sizes and returning a result dataclass, so the smoke
test (tests/test_bench_smoke.py) can run it with tiny sizes and keep it from rotting.

`make bench` measures two codebases side by side: the code of this checkout and a `git
worktree` of the issue's starting commit (bench/codebase.py). The harness is always this
checkout's `bench`; a child process (bench/child.py) points the imports of everything else at
the chosen codebase through the BENCH_CODE variable read here, before anything imports the bot.
"""

import os
import sys

# Every process the harness starts (`python -m bench.…`) imports this package first, so the
# codebase under test goes to the front of sys.path before `bot`, `handlers`, `storage`,
# `playground`, `tests` or `migrations` is imported. The editable install's finder sits at the
# end of sys.meta_path, so a package found on sys.path wins over it.
_CODE = os.environ.get("BENCH_CODE")
if _CODE and (not sys.path or sys.path[0] != _CODE):
    sys.path.insert(0, _CODE)
