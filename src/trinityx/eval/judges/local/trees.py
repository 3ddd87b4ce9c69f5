"""Gradient-boosted trees as plain arrays: fit with scikit-learn, store in safetensors, predict in numpy.

scikit-learn can only persist a ``HistGradientBoostingClassifier`` with pickle (or skops), and
loading either can run code. A fitted binary model is, however, just a baseline logit plus a sum
of regression trees; ``TreeEnsemble`` keeps exactly those arrays (one row per node, all trees
concatenated, ``roots`` giving each tree's first node) and walks them in numpy, so a judge head is
data only. ``from_sklearn`` reads the fitted predictors; predictions match ``predict_proba``.
"""

from __future__ import annotations

import numpy as np

NODE_FIELDS = ("feature", "threshold", "missing_left", "left", "right", "is_leaf", "value")


class TreeEnsemble:
    """Binary boosted trees: ``P(1) = sigmoid(baseline + sum_t leaf_t(x))``."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        missing = [k for k in (*NODE_FIELDS, "roots", "baseline") if k not in arrays]
        if missing:
            raise ValueError(f"tree ensemble arrays lack {missing}; retrain the judge")
        self.feature = arrays["feature"].astype(np.int64)  # (nodes,)
        self.threshold = arrays["threshold"].astype(np.float64)  # (nodes,)
        self.missing_left = arrays["missing_left"].astype(bool)
        self.left = arrays["left"].astype(np.int64)  # absolute node indices
        self.right = arrays["right"].astype(np.int64)
        self.is_leaf = arrays["is_leaf"].astype(bool)
        self.value = arrays["value"].astype(np.float64)
        self.roots = arrays["roots"].astype(np.int64)  # (trees,)
        self.baseline = float(np.asarray(arrays["baseline"]).reshape(-1)[0])
        self.n_features = int(np.asarray(arrays.get("n_features", [self.feature.max() + 1]))[0])

    @classmethod
    def from_sklearn(cls, model) -> TreeEnsemble:  # noqa: ANN001 (HistGradientBoostingClassifier)
        """Export a fitted binary, numerical-only ``HistGradientBoostingClassifier``."""
        if len(getattr(model, "classes_", ())) != 2 or model.n_trees_per_iteration_ != 1:
            raise ValueError("TreeEnsemble.from_sklearn: need a fitted binary classifier")
        parts, roots, offset = [], [], 0
        for (pred,) in model._predictors:  # one tree per boosting iteration (binary)
            nodes = pred.nodes
            if nodes["is_categorical"].any():
                raise ValueError("TreeEnsemble: categorical splits are not supported")
            roots.append(offset)
            parts.append(
                {
                    "feature": nodes["feature_idx"],
                    "threshold": nodes["num_threshold"],
                    "missing_left": nodes["missing_go_to_left"],
                    "left": nodes["left"].astype(np.int64) + offset,
                    "right": nodes["right"].astype(np.int64) + offset,
                    "is_leaf": nodes["is_leaf"],
                    "value": nodes["value"],
                }
            )
            offset += len(nodes)
        arrays = {k: np.concatenate([p[k] for p in parts]) for k in NODE_FIELDS}
        arrays["roots"] = np.asarray(roots, np.int64)
        arrays["baseline"] = np.asarray(model._baseline_prediction, np.float64).reshape(1)
        arrays["n_features"] = np.asarray([model.n_features_in_], np.int64)
        return cls(arrays)

    def arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        """Contiguous, safetensors-ready arrays (``prefix`` namespaces them inside one file)."""
        out = {
            "feature": self.feature, "threshold": self.threshold,
            "missing_left": self.missing_left.astype(np.uint8), "left": self.left,
            "right": self.right, "is_leaf": self.is_leaf.astype(np.uint8), "value": self.value,
            "roots": self.roots, "baseline": np.asarray([self.baseline]),
            "n_features": np.asarray([self.n_features], np.int64),
        }  # fmt: skip
        return {prefix + k: np.ascontiguousarray(v) for k, v in out.items()}

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        """Raw logit per row of ``x`` (N, n_features)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(
                f"tree ensemble expects (N, {self.n_features}) features, got {x.shape}"
            )
        rows = np.arange(len(x))
        out = np.full(len(x), self.baseline)
        for root in self.roots:
            node = np.full(len(x), root)  # (N,) current node of each row
            active = ~self.is_leaf[node]
            while active.any():
                n = node[active]
                v = x[rows[active], self.feature[n]]
                go_left = np.where(np.isnan(v), self.missing_left[n], v <= self.threshold[n])
                node[active] = np.where(go_left, self.left[n], self.right[n])
                active = ~self.is_leaf[node]
            out += self.value[node]
        return out

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """P(class 1) per row."""
        return 1.0 / (1.0 + np.exp(-self.decision_function(x)))
