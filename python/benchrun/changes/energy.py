"""The energy (E-divisive means) split statistic of a series, for every split at once.

Matteson & James (2014), "A nonparametric approach for multiple change point analysis of
multivariate data", with exponent alpha = 1 on univariate data. For a split of x[0:m] into
X = x[0:t] and Y = x[t:m]:

    E(t) = 2/(t (m-t)) B(t) - W_X(t) / C(t,2) - W_Y(t) / C(m-t,2)
    Q(t) = t (m-t) / m * E(t)

with B the sum of |x_i - y_j| over the pairs across the split and W_X, W_Y the sums of |.| over
the pairs within each side. Everything follows from one vector, L[t] = sum_{i<t} |x_i - x_t|
(the distances of each point to the points before it): W_X(t) = sum_{s<t} L[s], the row sums
R[t] = sum_i |x_i - x_t| come from one sort, W_Y(t) = sum_{s>=t} (R[s] - L[s]) and
B(t) = total - W_X(t) - W_Y(t). L is computed in blocks: each block's points are looked up in
the sorted prefix before it (searchsorted + prefix sums) and compared with each other directly,
so the cost is O(m^2 / block) element operations in numpy, not O(m^2) Python steps.
"""

from __future__ import annotations

import numpy as np

_BLOCK = 256


def left_distances(x: np.ndarray) -> np.ndarray:
    """L[t] = sum over i < t of |x[i] - x[t]|."""
    m = x.size
    out = np.empty(m)
    prefix = np.empty(0)
    csum = np.zeros(1)
    for start in range(0, m, _BLOCK):
        blk = x[start : start + _BLOCK]
        # Against the sorted prefix: below = count and sum of earlier values < v.
        k = np.searchsorted(prefix, blk, side="left")
        below_sum = csum[k]
        total = csum[-1]
        part = blk * k - below_sum + (total - below_sum) - blk * (prefix.size - k)
        # Within the block: the strictly lower triangle of the pairwise distances.
        d = np.abs(blk[:, None] - blk[None, :])
        part += np.tril(d, -1).sum(axis=1)
        out[start : start + blk.size] = part
        prefix = np.sort(np.concatenate([prefix, blk]), kind="mergesort")
        csum = np.concatenate([[0.0], np.cumsum(prefix)])
    return out


def row_sums(x: np.ndarray) -> np.ndarray:
    """R[t] = sum over all i of |x[i] - x[t]|, from one sort."""
    m = x.size
    order = np.argsort(x, kind="mergesort")
    s = x[order]
    cs = np.concatenate([[0.0], np.cumsum(s)])
    idx = np.arange(m)
    r = s * idx - cs[idx] + (cs[m] - cs[idx + 1]) - s * (m - 1 - idx)
    out = np.empty(m)
    out[order] = r
    return out


def split_statistic(x: np.ndarray, min_size: int) -> np.ndarray:
    """Q(t) for t = 0..m (NaN where a side would hold fewer than min_size points)."""
    m = x.size
    q = np.full(m + 1, np.nan)
    if m < 2 * min_size:
        return q
    left = left_distances(x)
    right = row_sums(x) - left
    wx = np.concatenate([[0.0], np.cumsum(left)])  # wx[t]: pairs within x[0:t]
    wy = np.concatenate([np.cumsum(right[::-1])[::-1], [0.0]])  # wy[t]: pairs within x[t:m]
    total = wx[m]
    t = np.arange(min_size, m - min_size + 1)
    a = t.astype(float)
    b = (m - t).astype(float)
    between = total - wx[t] - wy[t]
    e = 2.0 * between / (a * b) - wx[t] / (a * (a - 1) / 2) - wy[t] / (b * (b - 1) / 2)
    q[t] = a * b / m * e
    return q
