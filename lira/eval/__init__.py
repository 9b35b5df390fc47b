"""lira's evaluation math: task metrics (ranx, scipy), paired bootstrap CIs, the bound diagnostics.

Pure functions only (arrays in, numbers/arrays out); the evaluate stage does the I/O and logging.
"""

from lira.eval.bootstrap import BootstrapResult, paired_bootstrap
from lira.eval.diagnostics import (
    anchoring_error,
    bound_report,
    empirical_lipschitz,
    error_bound,
    kernel_bound,
    output_gap,
    translation_distortion,
)
from lira.eval.metrics import (
    bitext_accuracy,
    bitext_hits,
    mc_accuracy,
    mean_metrics,
    retrieval_metrics,
    scores_to_run,
    sts_metrics,
)

__all__ = [
    "BootstrapResult",
    "anchoring_error",
    "bitext_accuracy",
    "bitext_hits",
    "bound_report",
    "empirical_lipschitz",
    "error_bound",
    "kernel_bound",
    "mc_accuracy",
    "mean_metrics",
    "output_gap",
    "paired_bootstrap",
    "retrieval_metrics",
    "scores_to_run",
    "sts_metrics",
    "translation_distortion",
]
