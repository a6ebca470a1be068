"""RMCG example: the paper's model and baselines built from graphvision, with a training CLI.

Run ``python examples/rmcg/train.py --help``; the modules are ``data``, ``models``, ``metrics``,
``train`` and ``compare``.
"""
