"""Comparisons with PyTorch peer libraries (Captum, pytorch-grad-cam, Zennit, Lucent, ...).

Needs the ``peers`` extra (``make test-peers`` installs it). :mod:`benchmarks.peers.bridge` imports
torch safely and rebuilds visjax zoo models in PyTorch with the same weights.
"""
