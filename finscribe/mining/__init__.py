"""Hard-sample mining (the seed's public API):

    from finscribe.mining import log_error, classify_error
    error_type = classify_error(pred, gt)
    if error_type != "OTHER":
        log_error(image_path, gt, pred, error_type)        # into data/hard_samples
"""

from finscribe.mining.error_classifier import ErrorType, classify_error, find_errors
from finscribe.mining.error_logger import log_error, read_error_log
from finscribe.mining.replay_dataset import build_hard_sample_dataset, mix_datasets

__all__ = ["ErrorType", "build_hard_sample_dataset", "classify_error", "find_errors", "log_error", "mix_datasets",
           "read_error_log"]
