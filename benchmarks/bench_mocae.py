"""Speed and memory of TrinityX (MoCaE) against the bare backbone and the prior MoE approaches.

Thin wrapper around `trinityx.bench` (also `trinityx bench`); see docs/performance.md.

    python benchmarks/bench_mocae.py --backbone smollm2-135m-instruct --repeats 5 \
        --batch-sizes 1,8 --new-tokens 32 --out runs/bench
"""

from __future__ import annotations

from trinityx.bench import main

if __name__ == "__main__":
    main()
