"""Small protocols through which a lower layer hands its progress to a higher one.

:func:`visjax.zoo.train` saves checkpoints through a :class:`CheckpointWriter` without knowing
who writes them: the caller passes, for example, a :class:`visjax.landscape.trajectory.
TrajectoryWriter`, so the zoo never imports a method package.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class CheckpointWriter(Protocol):
    """Anything that stores a parameter pytree under an integer step.

    Example:
      >>> class Keep:
      ...     def __init__(self):
      ...         self.steps = []
      ...     def save(self, step, params):
      ...         self.steps.append(step)
      >>> isinstance(Keep(), CheckpointWriter)
      True
    """

    def save(self, step: int, params: Any) -> Any:
        """Store ``params`` as step ``step``."""
