"""visjax: a JAX-first library for looking inside neural networks."""

from visjax.model import Model as Model
from visjax.model import as_model as as_model
from visjax.model import tag as tag

__version__ = "0.1.0"
__all__ = ["Model", "as_model", "tag"]
