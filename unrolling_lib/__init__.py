"""unrolling_lib: the library behind the Unrolling SGD book (Thudi et al., "Unrolling SGD: Understanding
Factors Influencing Machine Unlearning").

One module per concept of the paper; every chapter of the book calls into it. Start with
``unrolling_lib.setup`` (profiles, device, seeding).
"""

from .profiles import PROFILES, ParameterError, RunConfig, setup

__version__ = "0.1.0"
__all__ = ["PROFILES", "ParameterError", "RunConfig", "setup", "__version__"]
