"""Numerics of the paper's theory, one module per result.

- ``toy``: the binary toy classifier of §6.2 (Eq. 11) and its closed-form minimum.
"""

from .toy import SCALINGS, SD_COEFFICIENT, toy_sd_loss, toy_sd_minimum

__all__ = ["SCALINGS", "SD_COEFFICIENT", "toy_sd_loss", "toy_sd_minimum"]
