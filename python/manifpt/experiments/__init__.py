"""The studies, one module each, on the shared steps (steps.py):

    model_type     the paper's Table 1: which model made each image (ManiFPT vs the baselines)
    training_data  the paper's Table 5: which training set a model of one type was trained on
    layer_type     the paper's Table 6: NMI of artifact clusters against each design factor
    robustness     accuracy under JPEG, rescaling, blur, noise and crops of the test images
    open_set       leave-one-model-out: unknown generators, AUROC and thresholds
    wild           every image through random JPEG / resize / crop chains: attribution, real vs fake, open set

Each `run_<study>(data, out, ...)` returns a plain dict (also OUT/results.json) with its table's rows;
each module's COLUMNS (or SUMMARY_COLUMNS) is the printed layout of those rows.
"""
from .layer_type import run_layer_type
from .model_type import run_model_type
from .open_set import run_open_set
from .robustness import run_robustness
from .steps import resolve_device, table
from .training_data import run_training_data
from .wild import run_wild

__all__ = ["resolve_device", "run_layer_type", "run_model_type", "run_open_set", "run_robustness", "run_training_data",
           "run_wild", "table"]
