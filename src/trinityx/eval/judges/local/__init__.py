"""Local, CPU-trainable judges: sentence embeddings + scikit-learn heads, stored without pickle.

They stand in for GPT-judge / GPT-info (TruthfulQA), a harm classifier (BeaverTails) and the
AlpacaEval GPT-4 annotator when no API judge is configured, so every benchmark can run offline.
Each judge is validated on held-out *groups* (questions, prompts, instructions, generators), never
rows: the same question with another answer must not leak into the test side.

* ``train``: the entry point, ``train_judge(kind, ...)``;
* ``data``: readers of the judge training files (TruthfulQA judge rows, AlpacaEval annotations,
  SPARD pairs);
* ``encoders``: texts -> vectors (``HashingEncoder``, ``SentenceEncoder``, ``CachedEncoder``);
* ``features``: the linear heads' feature recipes and the TruthfulQA reference table;
* ``fitting``: the shared classifier, group splits and the L2-strength search;
* ``folder``: the artifact folder (judge.json + head.safetensors), written atomically;
* ``trained``: ``TrainedJudge``, a fitted linear head, and loading any artifact;
* ``train_qa`` / ``train_harm`` / ``train_pairwise``: one trainer per linear kind;
* ``helpfulness`` / ``train_helpfulness`` / ``text_features`` / ``trees`` / ``calibration``: the
  ``helpfulness`` judge (boosted trees over MiniLM and surface features, validated on held-out
  generators; the harness's default for alpaca_eval);
* ``backend``: ``LocalJudge``, the trained heads behind the ``Judge`` interface.

The encoder is injectable (any ``texts -> np.ndarray`` callable with a ``name``) so tests use a
cheap hashing encoder and never need the MiniLM wheel.
"""
