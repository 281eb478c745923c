"""benchrun.changes: from numbers to decisions — change points in a history of results, Bencher's
threshold models, and the A/B comparison behind `benchrun compare` and `benchrun report`.

  change_points(values, *, alpha, min_size)   E-divisive means on ranks (detect.py, energy.py,
                                              significance.py)
  ChangePointDetector(*, alpha, min_size)     the same, updated as points are appended
                                              (incremental.py)
  thresholds.Threshold / thresholds.MODELS    static, percentage, z_score, t_test, log_normal,
                                              iqr, delta_iqr (thresholds.py)
  compare(a, b, ...) -> Comparison            median change, bootstrap CI, Mann-Whitney U,
                                              verdict, minimum detectable change (compare.py)

docs/regressions.md has the rules and the measured precision, recall and false-alarm rates.
"""

from benchrun.changes import thresholds
from benchrun.changes.compare import Comparison, compare
from benchrun.changes.detect import change_points
from benchrun.changes.incremental import ChangePointDetector
from benchrun.changes.thresholds import MODELS, Threshold, ThresholdResult

__all__ = [
    "MODELS",
    "ChangePointDetector",
    "Comparison",
    "Threshold",
    "ThresholdResult",
    "change_points",
    "compare",
    "thresholds",
]
