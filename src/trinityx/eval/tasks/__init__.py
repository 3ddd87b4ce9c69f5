"""The benchmarks, one task per file (load + requests + score, like lm-evaluation-harness tasks).

| benchmark       | file          | requests      | metrics                                          |
|-----------------|---------------|---------------|--------------------------------------------------|
| alpaca_eval     | alpaca_eval   | generate      | win rate % vs text-davinci-003 (ties 1/2) + CI; LC win rate |
| beavertails     | beavertails   | generate      | unsafe % (judge), refusal % (keywords), both per category |
| truthfulqa_mc   | truthfulqa    | loglikelihood | MC1 / MC2 % as lm-eval (six-shot QA primer, last 409 = test) |
| truthfulqa_gen  | truthfulqa    | generate      | % true, % informative, TI = % true and informative |
| hh_harmless     | hh_rlhf       | loglikelihood | % pairs with log P(chosen) > log P(rejected) (ties 1/2) |
| refusal_harmful | refusal       | generate      | % of Do-Not-Answer requests refused (higher is better) |
| over_refusal    | refusal       | generate      | % of benign-but-edgy questions refused (lower is better) |
| spard_pref      | spard         | loglikelihood | % SPARD pairs with log P(safe) > log P(unsafe)   |

* ``base``: ``Benchmark`` (the spec), ``EvalContext``, ``BenchmarkResult`` and the scoring helpers;
* ``registry``: ``BENCHMARKS``, the one map from benchmark names to specs (used by the harness,
  the eval config check, the explorer, the experiment and the tests), its aliases, and every
  evaluation prompt of a data folder.
"""
