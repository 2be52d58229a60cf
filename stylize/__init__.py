"""stylize: neural style transfer (Gatys et al.) faithful to the classic PyTorch recipe.

>>> from stylize import stylize
>>> result = stylize("content.jpg", "style.jpg", "out.png", steps=100)
"""

__version__ = "0.1.0"

from .config import Config, build_config  # noqa: E402
from .errors import StylizeError  # noqa: E402
from .transfer import RunResult, run, stylize  # noqa: E402

__all__ = ["Config", "RunResult", "StylizeError", "build_config", "run", "stylize", "__version__"]
