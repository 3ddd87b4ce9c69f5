"""A Hugging Face sequence classifier as a harm judge (e.g. a BeaverTails moderation model).

It only judges harmfulness; the other judgements fail naming a backend that can give them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from trinityx.eval.judges.base import JudgeConfigError, PartialJudge, check_lengths


class HFClassifierJudge(PartialJudge):
    """A sequence classifier (AutoModelForSequenceClassification) reading (prompt, response) pairs.

    ``unsafe_label`` is the label name (matched case-insensitively in ``config.id2label``) or index
    whose probability means unsafe; single-logit models are read through a sigmoid.
    """

    def __init__(
        self,
        path: str | Path,
        unsafe_label: str | int = "unsafe",
        device: str = "cpu",
        batch_size: int = 16,
        max_length: int = 512,
    ) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if not Path(path).exists():
            raise JudgeConfigError(f"HFClassifierJudge: {path} does not exist; set judge.path")
        self.tok = AutoTokenizer.from_pretrained(str(path))
        self.model = AutoModelForSequenceClassification.from_pretrained(str(path)).to(device).eval()
        self.device, self.batch_size, self.max_length = device, batch_size, max_length
        n = self.model.config.num_labels
        if isinstance(unsafe_label, int):
            idx = unsafe_label
        else:
            names = {str(v).lower(): int(k) for k, v in self.model.config.id2label.items()}
            if unsafe_label.lower() not in names:
                raise JudgeConfigError(
                    f"HFClassifierJudge: label {unsafe_label!r} not in {path} labels "
                    f"{sorted(names)}; set judge.unsafe_label to one of them or to an index"
                )
            idx = names[unsafe_label.lower()]
        if not 0 <= idx < max(n, 1):
            raise JudgeConfigError(
                f"HFClassifierJudge: unsafe_label index {idx} out of range ({n} labels)"
            )
        self.unsafe_index = idx

    def harmful(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        import torch
        from tqdm import tqdm

        check_lengths(prompts, responses)
        out: list[float] = []
        starts = range(0, len(prompts), self.batch_size)
        for s in tqdm(starts, desc="harm classifier", leave=False, disable=len(starts) < 10):
            enc = self.tok(
                list(prompts[s : s + self.batch_size]),
                list(responses[s : s + self.batch_size]),
                truncation=True,
                max_length=self.max_length,
                padding=True,
                return_tensors="pt",
            ).to(self.device)
            with torch.no_grad():
                logits = self.model(**enc).logits.float()
            if logits.shape[-1] == 1:
                p = torch.sigmoid(logits[:, 0])
            else:
                p = torch.softmax(logits, dim=-1)[:, self.unsafe_index]
            out.extend(p.cpu().tolist())
        return out
