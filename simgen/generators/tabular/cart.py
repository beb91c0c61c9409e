"""``tabular/cart-v1``: sequential CART synthesis in the style of synthpop (Nowok, Raab and Dibben, 2016).

Columns are visited in order. The first is drawn from its marginal (a random real value, with replacement). Each
later column has a decision tree fitted on the columns visited before it; a synthetic row is dropped down that
tree, and the column's value is a real *donor* value drawn at random from the leaf it lands in (synthpop's
``cart`` method with its default ``minbucket = 5``). Category columns use a classification tree, numbers and
datetimes a regression tree; missing values are ordinary donor values (trees route missing predictors with
scikit-learn's native missing-value support), so the missing-value rate and its dependence on other columns
are kept.

The trees come from scikit-learn, seeded from the ``rng`` given to ``fit``. The model file stores each tree as
plain arrays (children, split feature, threshold, where missing values go) and the donors of every leaf; sampling
walks those arrays with numpy (:func:`tree_apply`, checked against scikit-learn's ``apply``), so a loaded model
needs neither pickle nor scikit-learn.

**Conditional sampling**: conditioned columns that come first in the visit order are fixed and the rest is drawn
given them, which is exact. Fit with ``visit_order=[...]`` naming the columns you will condition on (a class
label, for instance). Conditions on later columns are met by rejection, with a bounded number of draws.

Synthetic values are real values, recombined: the model file holds the real table's values (as leaf donors).
Treat it like the real table.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from simgen.errors import did_you_mean
from simgen.generators.base import FittedModel, GeneratorError, ModelState, check_rng
from simgen.generators.tabular.metadata import TableMetadata, encode_table
from simgen.generators.tabular.model import (
    Condition,
    TabularModel,
    metadata_from_config,
    rejection_sample,
    require,
)

__all__ = ["Cart", "CartModel", "Tree", "tree_apply"]

_TREE_ARRAYS = ("left", "right", "feature", "threshold", "nan_left", "leaf_of_node", "leaf_ptr", "donors")


class Tree:
    """One column's tree as arrays, with the real donor values of each leaf.

    Attributes:
        left: Left child of each node (-1 at a leaf).
        right: Right child of each node (-1 at a leaf).
        feature: Predictor (position among the earlier columns) each node splits on.
        threshold: A row goes left when its predictor value, as float32, is ``<= threshold``.
        nan_left: A missing predictor value goes left.
        leaf_of_node: The leaf number of each node (-1 for inner nodes).
        leaf_ptr: Leaf ``l``'s donors are ``donors[leaf_ptr[l]:leaf_ptr[l + 1]]``.
        donors: Real values of the column (NaN = missing), grouped by leaf.
    """

    def __init__(
        self,
        left: np.ndarray,
        right: np.ndarray,
        feature: np.ndarray,
        threshold: np.ndarray,
        nan_left: np.ndarray,
        leaf_of_node: np.ndarray,
        leaf_ptr: np.ndarray,
        donors: np.ndarray,
    ) -> None:
        self.left, self.right, self.feature, self.threshold = left, right, feature, threshold
        self.nan_left, self.leaf_of_node, self.leaf_ptr, self.donors = nan_left, leaf_of_node, leaf_ptr, donors

    @staticmethod
    def single_leaf(donors: np.ndarray) -> Tree:
        """A tree with one leaf holding every donor: the first column's marginal."""
        return Tree(
            np.array([-1]),
            np.array([-1]),
            np.array([0]),
            np.array([0.0]),
            np.array([0], dtype=np.uint8),
            np.array([0]),
            np.array([0, len(donors)]),
            donors,
        )

    @staticmethod
    def from_sklearn(estimator: Any, predictors: np.ndarray, target: np.ndarray) -> Tree:
        """The fitted scikit-learn tree's structure, and the training rows' target values grouped by leaf."""
        t = estimator.tree_
        left = t.children_left.astype(np.int64)
        leaves = np.flatnonzero(left == -1)
        leaf_of_node = np.full(len(left), -1, dtype=np.int64)
        leaf_of_node[leaves] = np.arange(len(leaves))
        tree = Tree(
            left,
            t.children_right.astype(np.int64),
            t.feature.astype(np.int64),
            t.threshold.astype(np.float64),
            t.missing_go_to_left.astype(np.uint8),
            leaf_of_node,
            np.zeros(len(leaves) + 1, np.int64),
            np.empty(0),
        )
        leaf = leaf_of_node[tree.apply(predictors)]
        order = np.argsort(leaf, kind="stable")
        counts = np.bincount(leaf, minlength=len(leaves))
        if counts.min() < 1:  # cannot happen unless tree_apply disagrees with scikit-learn's own routing
            raise GeneratorError("a CART leaf received no training rows; tree_apply disagrees with scikit-learn")
        tree.leaf_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        tree.donors = target[order].astype(np.float64)
        return tree

    def apply(self, x: np.ndarray) -> np.ndarray:
        """The leaf node each row of ``x`` lands in (see :func:`tree_apply`)."""
        return tree_apply(self.left, self.right, self.feature, self.threshold, self.nan_left, x)

    def draw(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One donor per row of ``x``, uniformly from the leaf the row lands in."""
        leaf = self.leaf_of_node[self.apply(x)]
        start = self.leaf_ptr[leaf]
        count = self.leaf_ptr[leaf + 1] - start
        pick = start + np.minimum((rng.random(len(x)) * count).astype(np.int64), count - 1)
        return self.donors[pick]

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """The tree's arrays, named ``{prefix}_{name}``."""
        return {f"{prefix}_{name}": getattr(self, name) for name in _TREE_ARRAYS}

    @staticmethod
    def from_arrays(arrays: dict[str, np.ndarray], prefix: str, n_predictors: int) -> Tree:
        """Rebuild a tree, checking that its arrays form a valid binary tree over ``n_predictors`` predictors."""
        names = [f"{prefix}_{name}" for name in _TREE_ARRAYS]
        require(all(k in arrays for k in names), f"tree '{prefix}' is missing arrays")
        left, right, feature, threshold, nan_left, leaf_of_node, leaf_ptr, donors = (arrays[k] for k in names)
        n = len(left)
        require(
            n >= 1 and all(len(a) == n for a in (right, feature, threshold, nan_left, leaf_of_node)),
            f"tree '{prefix}': node arrays differ in length",
        )
        is_leaf = left == -1
        inner = ~is_leaf
        require(bool(np.all((right == -1) == is_leaf)), f"tree '{prefix}': a node has one child")
        # Children come after their parent (as scikit-learn builds them): walking down always ends at a leaf.
        nodes = np.arange(n)
        require(
            bool(
                np.all(
                    (left[inner] > nodes[inner])
                    & (left[inner] < n)
                    & (right[inner] > nodes[inner])
                    & (right[inner] < n)
                )
            ),
            f"tree '{prefix}': child indices out of order",
        )
        require(n_predictors > 0 or n == 1, f"tree '{prefix}': splits without predictors")
        require(
            bool(np.all((feature[inner] >= 0) & (feature[inner] < max(n_predictors, 1)))),
            f"tree '{prefix}': split feature out of range",
        )
        n_leaves = int(is_leaf.sum())
        require(
            bool(np.array_equal(leaf_of_node[is_leaf], np.arange(n_leaves)))
            and bool(np.all(leaf_of_node[inner] == -1)),
            f"tree '{prefix}': leaf numbers must count the leaves in order",
        )
        require(
            len(leaf_ptr) == n_leaves + 1
            and leaf_ptr[0] == 0
            and leaf_ptr[-1] == len(donors)
            and bool(np.all(np.diff(leaf_ptr) >= 1)),
            f"tree '{prefix}': every leaf needs donors",
        )
        return Tree(
            left.astype(np.int64),
            right.astype(np.int64),
            feature.astype(np.int64),
            threshold.astype(np.float64),
            nan_left.astype(np.uint8),
            leaf_of_node.astype(np.int64),
            leaf_ptr.astype(np.int64),
            donors.astype(np.float64),
        )


def tree_apply(
    left: np.ndarray, right: np.ndarray, feature: np.ndarray, threshold: np.ndarray, nan_left: np.ndarray, x: np.ndarray
) -> np.ndarray:
    """The leaf node each row of ``x`` reaches, walking all rows down the tree at once.

    Matches scikit-learn's ``tree_.apply``: predictors are compared as float32 (scikit-learn fits and predicts on
    float32 copies) against float64 thresholds, ``<=`` goes left, and a missing value goes where ``nan_left`` says.

    Args:
        left: Left child per node, -1 at leaves.
        right: Right child per node.
        feature: Predictor column per node.
        threshold: Split threshold per node.
        nan_left: 1 where a missing value goes left.
        x: Predictors, shape (rows, features); NaN = missing.

    Returns:
        Node indices, shape (rows,).
    """
    x32 = np.asarray(x, dtype=np.float32).astype(np.float64)
    node = np.zeros(len(x32), dtype=np.int64)
    active = np.arange(len(x32))
    go_nan = nan_left.astype(bool)
    while active.size:
        nd = node[active]
        inner = left[nd] != -1
        active, nd = active[inner], nd[inner]
        if not active.size:
            break
        v = x32[active, feature[nd]]
        with np.errstate(invalid="ignore"):
            go_left = np.where(np.isnan(v), go_nan[nd], v <= threshold[nd])
        node[active] = np.where(go_left, left[nd], right[nd])
    return node


class Cart:
    """``tabular/cart-v1``: sequential CART synthesis (see the module docstring).

    Args:
        min_samples_leaf: Fewest real rows in a leaf (synthpop's ``minbucket``); larger is smoother and more private.
        visit_order: Columns to visit first, in this order (the rest follow in table order). Put the columns you
            will condition on first.
        max_depth: Depth limit of each tree, or None.
    """

    name: ClassVar[str] = "tabular/cart-v1"
    model_class: ClassVar[type[FittedModel]]

    def __init__(
        self, *, min_samples_leaf: int = 5, visit_order: list[str] | None = None, max_depth: int | None = None
    ) -> None:
        if isinstance(min_samples_leaf, bool) or not isinstance(min_samples_leaf, int) or min_samples_leaf < 1:
            raise GeneratorError(f"min_samples_leaf: expected an integer >= 1, got {min_samples_leaf!r}")
        if max_depth is not None and (isinstance(max_depth, bool) or not isinstance(max_depth, int) or max_depth < 1):
            raise GeneratorError(f"max_depth: expected an integer >= 1 or None, got {max_depth!r}")
        self.min_samples_leaf = min_samples_leaf
        self.visit_order = list(visit_order or [])
        self.max_depth = max_depth

    def _order(self, metadata: TableMetadata) -> list[int]:
        names = [c.name for c in metadata.modelled]
        first = []
        for name in self.visit_order:
            if name not in names:
                hint = did_you_mean(name, names)
                why = "is an id column" if name in metadata.names else f"is not a modelled column{hint}"
                raise GeneratorError(f"visit_order: '{name}' {why}")
            if names.index(name) in first:
                raise GeneratorError(f"visit_order: '{name}' is listed twice")
            first.append(names.index(name))
        return first + [j for j in range(len(names)) if j not in first]

    def fit(self, table: Any, metadata: TableMetadata, rng: np.random.Generator) -> CartModel:
        """Fit one tree per column after the first.

        Args:
            table: The real table (a pandas DataFrame).
            metadata: Its metadata.
            rng: Seeds the trees (scikit-learn's ``random_state``).

        Returns:
            The fitted model.
        """
        from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

        check_rng(rng)
        x = encode_table(table, metadata)
        cols = metadata.modelled
        order = self._order(metadata)
        seeds = rng.integers(0, 2**31 - 1, size=len(order))
        trees = [Tree.single_leaf(x[:, order[0]].copy())] if order else []  # a table of ids only models nothing
        for p in range(1, len(order)):
            col = cols[order[p]]
            y = x[:, order[p]]
            predictors = x[:, order[:p]]
            kwargs = {
                "min_samples_leaf": self.min_samples_leaf,
                "max_depth": self.max_depth,
                "random_state": int(seeds[p]),
            }
            if col.discrete:
                est = DecisionTreeClassifier(**kwargs).fit(predictors, np.nan_to_num(y, nan=-1.0).astype(np.int64))
            else:
                # A missing target is a value far below the others, so the tree can separate missing from present.
                present = y[~np.isnan(y)]
                sentinel = present.min() - (present.max() - present.min()) - 1.0 if present.size else 0.0
                est = DecisionTreeRegressor(**kwargs).fit(predictors, np.nan_to_num(y, nan=sentinel))
            trees.append(Tree.from_sklearn(est, predictors, y))
        return CartModel(
            metadata, order=order, trees=trees, min_samples_leaf=self.min_samples_leaf, max_depth=self.max_depth
        )


class CartModel(TabularModel):
    """A fitted sequential CART model (see the module docstring)."""

    generator: ClassVar[str] = Cart.name

    def __init__(
        self,
        metadata: TableMetadata,
        *,
        order: list[int],
        trees: list[Tree],
        min_samples_leaf: int,
        max_depth: int | None,
    ) -> None:
        self.metadata = metadata
        self.order = order
        self.trees = trees
        self.min_samples_leaf = min_samples_leaf
        self.max_depth = max_depth

    def state(self) -> ModelState:
        """Configuration (metadata, visit order, options) and every tree's arrays."""
        config = {
            "metadata": self.metadata.to_dict(),
            "visit_order": [self.metadata.modelled[j].name for j in self.order],
            "min_samples_leaf": self.min_samples_leaf,
            "max_depth": self.max_depth,
        }
        arrays: dict[str, np.ndarray] = {}
        for p, tree in enumerate(self.trees):
            arrays.update(tree.arrays(f"t{p}"))
        return ModelState(config, arrays)

    @classmethod
    def from_state(cls, state: ModelState) -> CartModel:
        """Rebuild the model, checking every tree."""
        cfg, arr = state.config, state.arrays
        metadata = metadata_from_config(cfg)
        names = [c.name for c in metadata.modelled]
        visit = cfg.get("visit_order")
        require(
            isinstance(visit, list) and sorted(visit) == sorted(names) and len(set(visit)) == len(visit),
            "visit_order must list every modelled column once",
        )
        order = [names.index(v) for v in visit]
        require(len(arr) == len(_TREE_ARRAYS) * len(order), "unexpected arrays")
        trees = [Tree.from_arrays(arr, f"t{p}", p) for p in range(len(order))]
        leaf = cfg.get("min_samples_leaf")
        require(isinstance(leaf, int) and leaf >= 1, "min_samples_leaf must be a positive integer")
        depth = cfg.get("max_depth")
        require(depth is None or (isinstance(depth, int) and depth >= 1), "max_depth must be a positive integer")
        return cls(metadata, order=order, trees=trees, min_samples_leaf=leaf, max_depth=depth)

    def _synthesize(self, n: int, rng: np.random.Generator, fixed: dict[int, float]) -> np.ndarray:
        out = np.empty((n, len(self.order)))
        for p, (j, tree) in enumerate(zip(self.order, self.trees, strict=True)):
            if j in fixed:
                out[:, j] = fixed[j]
            else:
                out[:, j] = tree.draw(out[:, self.order[:p]], rng)
        return out

    def _sample_encoded(
        self, n: int, rng: np.random.Generator, conditions: list[Condition], max_draws: int
    ) -> np.ndarray:
        by_col = {c.index: c for c in conditions}
        # Conditions on the first columns visited are exact: fix them and draw the rest given them.
        fixed: dict[int, float] = {}
        for j in self.order:
            if j not in by_col:
                break
            fixed[j] = by_col[j].value
        later = [c for c in conditions if c.index not in fixed]
        if not later:
            return self._synthesize(n, rng, fixed)
        what = (
            "conditions "
            + ", ".join(f"{c.column.name}={c.given!r}" for c in later)
            + " (not first in visit_order, so met by rejection)"
        )
        return rejection_sample(
            lambda m: self._synthesize(m, rng, fixed),
            lambda rows: np.logical_and.reduce([c.matches(rows[:, c.index]) for c in later]),
            n,
            max_draws=max_draws,
            what=what,
        )


Cart.model_class = CartModel
