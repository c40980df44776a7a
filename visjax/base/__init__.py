"""The floor every other layer stands on: argument checks, pytree and data helpers, chunked
batching, atomic IO and the jaxpr interpreter. Imports nothing else from visjax."""

__all__: list[str] = []
