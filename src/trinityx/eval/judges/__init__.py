"""Judges that turn generations into benchmark judgements, behind one interface.

The evaluation protocol needs four judgements: P(unsafe) for BeaverTails, P(true) / P(informative)
for TruthfulQA generations, and an AlpacaEval preference in [1, 2] against the davinci-003
reference. Any backend can supply them; a backend that cannot give one judgement says which can.

* ``base``: the ``Judge`` protocol, ``JudgeConfigError`` and ``PartialJudge``;
* ``openai``: any OpenAI-compatible chat-completions endpoint (the published protocol's GPT-4 /
  GPT-judge), with its prompts and reply parsers;
* ``hf_classifier``: a Hugging Face sequence classifier as a harm judge;
* ``local``: the project's CPU-trained judges (``local.backend.LocalJudge``, trained by
  ``local.train.train_judge``);
* ``registry``: ``JUDGES``, the one map from config names to backends.
"""
