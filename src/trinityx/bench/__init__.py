"""`trinityx bench`: speed and memory of TrinityX against the bare backbone and the prior MoEs.

`systems` builds each measured system behind one interface, `checks` confirms that systems which
must agree produce the same tokens, `report` turns timings into ratios, targets, a table and a
chart, and `run` is the runner and its command line.
"""

from trinityx.bench.run import add_arguments, main, make_prompts, run_bench

__all__ = ["add_arguments", "main", "make_prompts", "run_bench"]
